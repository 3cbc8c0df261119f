"""Prompt-templated LLM rerankers: listwise over lettered candidates, or pointwise yes/no.

The prompt lists candidates as `A. Title (year; genre, genre)`. In `logits` mode one forward
pass gives the model's next-token distribution over the letters; it is fused with the
retrieval order (a log-rank prior) into the final ranking. In `generate` mode the model writes
a letter list that is parsed; anything unparsable falls back to the logits/retrieval order and
is counted. In `pointwise` mode each candidate gets its own prompt (`prompts/score.txt`: the
conversation, a yes/no question, then the candidate and its retrieval evidence; the rows share
the keys/values of everything before the candidate) and is scored by log P(yes) over {yes, no}, fused with the same prior. Every mode's
output is a permutation of the candidates: nothing outside the candidate set can be returned.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prompts.loader import render
from retrieval.candidates import RRF_K
from retrieval.types import Item

LABELS = tuple(chr(ord("A") + i) for i in range(26))
_YEAR_IN_TITLE = re.compile(r"\(\d{4}\)\s*$")
# A letter list at the start of the answer or right after a colon: "C, A, F" / "Answer: B".
_LETTER_LIST = re.compile(r"(?:^|:\s*)([A-Z](?:\s*[,;>]\s*[A-Z])*)\s*(?:$|[.)\n])")


SCORE_LABELS = ("yes", "no")  # the pointwise answer; the score is log P(first) over both
# Retrieval signals shown to the pointwise reranker (`retrieval.candidates.SIGNALS`), in words.
EVIDENCE = (
    ("dense", "request"),
    ("liked", "similar titles"),
    ("cooc", "co-recommended"),
    ("popularity", "popular"),
)
BUCKETS = (3, 10, 50, 200)
ABOUT_WORDS = 30  # words of description an `{about}` score prompt shows


def format_candidate(label: str, item: Item) -> str:
    return f"{label}. {describe(item)}"


def describe(item: Item) -> str:
    """`Title (year; genre, genre)`, as a candidate is shown to the model."""
    details = []
    if item.year and not _YEAR_IN_TITLE.search(item.title):
        details.append(str(item.year))
    if item.genres:
        details.append(", ".join(item.genres[:2]))
    suffix = f" ({'; '.join(details)})" if details else ""
    return f"{item.title}{suffix}"


def about(item: Item, max_words: int = ABOUT_WORDS) -> str:
    """The start of the item's description (`metadata["description"]`, else its text)."""
    description = item.metadata.get("description")
    text = description if isinstance(description, str) and description.strip() else item.text
    words = text.split()
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


def rerank_user_text(
    conversation: str,
    items: Sequence[Item],
    *,
    filename: str | None = None,
    directory: Path | None = None,
) -> str:
    candidates = "\n".join(format_candidate(LABELS[i], it) for i, it in enumerate(items))
    return render("rerank", filename, directory, conversation=conversation, candidates=candidates)


def evidence(signals: Mapping[str, float]) -> str:
    """The retrieval evidence for a candidate, in words: the rank bucket of each signal.

    'request top 10, similar titles top 3, co-recommended none, popular top 50'
    """
    parts = []
    for name, label in EVIDENCE:
        score = signals.get(name)
        rank = round(1.0 / score) - RRF_K if score else None
        bucket = next((f"top {b}" for b in BUCKETS if rank is not None and rank <= b), "none")
        parts.append(f"{label} {bucket}")
    return ", ".join(parts)


def score_user_text(
    conversation: str,
    item: Item,
    signals: Mapping[str, float],
    *,
    filename: str | None = None,
    directory: Path | None = None,
) -> str:
    return render(
        "score", filename, directory, conversation=conversation, candidate=describe(item),
        evidence=evidence(signals), about=about(item),
    )  # fmt: skip


def score_target(good: bool) -> str:
    """The completion the pointwise reranker is trained to produce."""
    return SCORE_LABELS[0] if good else SCORE_LABELS[1]


def rerank_target(gold_positions: Sequence[int]) -> str:
    """The completion the reranker is trained to produce: the gold letters, best first."""
    return ", ".join(LABELS[i] for i in gold_positions)


def parse_ranking(text: str, n: int) -> list[int] | None:
    """Parse 'C, A, F' (or 'C') into candidate positions; None when nothing valid is found."""
    m = _LETTER_LIST.search(text.strip())
    if not m:
        return None
    seen: list[int] = []
    for token in re.findall(r"[A-Z]", m.group(1)):
        pos = ord(token) - ord("A")
        if pos < n and pos not in seen:
            seen.append(pos)
    return seen or None


def fuse(llm_logprobs: Sequence[float], prior_weight: float) -> list[float]:
    """LLM log-probability plus a retrieval prior of -w*log(1+rank) (candidates arrive ranked)."""
    return [lp - prior_weight * math.log1p(rank) for rank, lp in enumerate(llm_logprobs)]


@dataclass
class RerankResult:
    order: list[int]
    scores: list[float]
    fallback: bool = False


def rerank(
    llm,
    prompt: str,
    n: int,
    *,
    prior_weight: float = 1.0,
    mode: str = "logits",
    max_new_tokens: int = 12,
) -> RerankResult:
    """Rank `n` lettered candidates in `prompt` (already chat-formatted)."""
    labels = list(LABELS[:n])
    logprobs = llm.label_logprobs(prompt, labels)
    scores = fuse(logprobs, prior_weight)
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    if mode == "logits":
        return RerankResult(order=order, scores=scores)
    parsed = parse_ranking(llm.generate([prompt], max_new_tokens)[0], n)
    if parsed is None:
        return RerankResult(order=order, scores=scores, fallback=True)
    rest = [i for i in order if i not in parsed]
    return RerankResult(order=parsed + rest, scores=scores)


def rerank_pointwise(llm, prompts: Sequence[str], *, prior_weight: float = 1.0) -> RerankResult:
    """Rank candidates by log P(yes) of their own prompt (chat-formatted, retrieval order)."""
    rows = llm.label_logprobs_rows(list(prompts), list(SCORE_LABELS))
    scores = fuse([row[0] for row in rows], prior_weight)
    return RerankResult(
        order=sorted(range(len(scores)), key=lambda i: (-scores[i], i)), scores=scores
    )
