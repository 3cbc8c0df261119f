"""The LLM ranking step of a turn: prompts rendered from the settings, and the rerank itself.

Listwise (`rerank.txt`, one prompt over lettered candidates) or pointwise (`score.txt`, one
yes/no prompt per candidate); see `chatbot.ranking.rerank` for the scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatbot.ranking.prepare import Prepared
from chatbot.ranking.rerank import rerank, rerank_pointwise, rerank_user_text, score_user_text
from chatbot.timing import StageClock
from prompts.loader import render
from retrieval.types import Candidate, Item


def rerank_prompt(llm: Any, prompts: Any, conversation: str, items: Sequence[Item]) -> str:
    """The listwise prompt (`prompts`: the `PromptSettings`)."""
    p = prompts
    user_text = rerank_user_text(conversation, items, filename=p.rerank, directory=p.dir)
    return llm.chat_prompt(user_text, system=render("system", None, p.dir))


def score_prompt(llm: Any, prompts: Any, conversation: str, candidate: Candidate) -> str:
    """The pointwise prompt of one candidate (`prompts`: the `PromptSettings`)."""
    p = prompts
    user_text = score_user_text(
        conversation, candidate.item, candidate.signals, filename=p.score, directory=p.dir
    )
    return llm.chat_prompt(user_text, system=render("system", None, p.dir))


def rank_prepared(
    llm: Any, settings: Any, mode: str, prep: Prepared, clock: StageClock
) -> tuple[list[int], dict[str, int]]:
    """The LLM order of `prep.candidates` (a permutation of their indices) and its counters."""
    prior = settings.llm.rerank_prior
    if mode == "pointwise":
        prompts = [
            score_prompt(llm, settings.prompts, prep.conversation, c) for c in prep.candidates
        ]
        clock.lap("rerank_prompt")
        result = rerank_pointwise(llm, prompts, prior_weight=prior)
        clock.lap("rerank")
        return result.order, {"rerank_fallback": 0, "reason_fallback": 0}
    items = [c.item for c in prep.candidates]
    prompt = rerank_prompt(llm, settings.prompts, prep.conversation, items)
    clock.lap("rerank_prompt")
    result = rerank(llm, prompt, len(items), prior_weight=prior, mode=mode)
    clock.lap("rerank")
    return result.order, {"rerank_fallback": int(result.fallback), "reason_fallback": 0}
