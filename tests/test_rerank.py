"""Reranker prompt, parser and ranking with the real default LLM."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from chatbot.ranking.rerank import (
    LABELS,
    evidence,
    format_candidate,
    fuse,
    parse_ranking,
    rerank,
    rerank_pointwise,
    rerank_target,
    rerank_user_text,
    score_target,
    score_user_text,
)
from dialogues.transcript import format_conversation
from prompts.errors import PromptError
from prompts.loader import load_template, render
from retrieval.types import Item

SNAPSHOTS = Path(__file__).parent / "snapshots"
ITEMS = [
    Item("a", "Collateral", "", {"year": 2004, "genres": ["crime", "thriller"]}),
    Item("b", "Toy Story", "", {"year": 1995, "genres": ["animation", "family", "comedy"]}),
    Item("c", "The Shining (1980)", "", {"genres": ["horror"]}),
]


def _rendered(llm) -> str:
    conversation = format_conversation(
        [("user", "something like Heat"), ("assistant", "Sure."), ("user", "after 2000")]
    )
    return llm.chat_prompt(rerank_user_text(conversation, ITEMS), system=render("system"))


SIGNALS = [
    {"dense": 1 / 61, "liked": 1 / 65, "popularity": 1 / 100},
    {"cooc": 1 / 62},
    {},
]


def _score_prompts(llm) -> list[str]:
    conversation = format_conversation([("user", "something like Heat, after 2000")])
    return [
        llm.chat_prompt(score_user_text(conversation, it, sig), system=render("system"))
        for it, sig in zip(ITEMS, SIGNALS, strict=True)
    ]


def test_evidence_names_each_signal_s_rank_bucket():
    assert evidence(SIGNALS[0]) == (
        "request top 3, similar titles top 10, co-recommended none, popular top 50"
    )
    assert evidence({"cooc": 1 / (60 + 201)}) == (
        "request none, similar titles none, co-recommended none, popular none"
    )


def test_rerank_prompt_snapshot(llm):
    assert _rendered(llm) == (SNAPSHOTS / "rerank_prompt.txt").read_text(encoding="utf-8")


def test_reason_prompt_snapshot(llm):
    from chatbot.reply.reasons import reason_prompt

    got = reason_prompt(llm, ITEMS[0], "something like Heat")
    assert got == (SNAPSHOTS / "reason_prompt.txt").read_text(encoding="utf-8")


def test_candidate_lines_are_short():
    assert format_candidate("A", ITEMS[0]) == "A. Collateral (2004; crime, thriller)"
    assert format_candidate("C", ITEMS[2]) == "C. The Shining (1980) (horror)"  # no second year


def test_conversation_keeps_the_latest_turns():
    text = format_conversation([("user", "x" * 500), ("assistant", "y" * 500), ("user", "last")])
    assert text.endswith("User: last") and len(text) <= 720


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("C, A, B", 3, [2, 0, 1]),
        ("B", 3, [1]),
        ("The answer is: B, A", 3, [1, 0]),
        ("A movie about toys", 3, None),
        ("C, Z, A", 3, [2, 0]),
        ("Z, Q", 3, None),
        ("", 3, None),
        ("I think a movie", 3, None),
    ],
)
def test_parse_ranking(text, n, expected):
    assert parse_ranking(text, n) == expected


def test_target_and_fusion():
    assert rerank_target([2, 0]) == "C, A"
    assert fuse([0.0, 0.0], 1.0)[0] > fuse([0.0, 0.0], 1.0)[1]  # ties go to retrieval order


def test_real_llm_ranks_a_permutation_of_candidates(llm):
    result = rerank(llm, _rendered(llm), len(ITEMS))
    assert sorted(result.order) == [0, 1, 2] and not result.fallback
    assert len(result.scores) == 3


class _Garbling:
    """A model whose generated text is unparsable: the boundary this test is about."""

    def __init__(self, llm):
        self.llm = llm

    def label_logprobs(self, prompt, labels):
        return self.llm.label_logprobs(prompt, labels)

    def generate(self, prompts, max_new_tokens):
        return ["I would love to help! Here is a great movie: Avatar"]


def test_unparsable_generation_falls_back_and_is_counted(llm):
    result = rerank(_Garbling(llm), _rendered(llm), len(ITEMS), mode="generate")
    assert result.fallback and sorted(result.order) == [0, 1, 2]


def test_label_tokens_are_single_tokens(llm):
    assert len(set(llm.label_token_ids(list(LABELS)))) == 26


def test_prompt_variables_are_checked(tmp_path):
    (tmp_path / "rerank.txt").write_text("only {conversation}")
    with pytest.raises(PromptError, match="needs exactly"):
        load_template("rerank", None, tmp_path)
    with pytest.raises(PromptError, match="not found"):
        load_template("rerank", "missing.txt", tmp_path)


def test_score_prompt_may_show_the_description(tmp_path):
    item = Item("h", "Heat", "ignored text", {"year": 1995, "description": " ".join(["word"] * 40)})
    shown = score_user_text("User: a heist film", item, {}, filename="score_about.txt")
    assert f"About: {' '.join(['word'] * 30)} ...\n" in shown
    # Without a description the embedded text is shown; the default prompt shows neither.
    plain = Item("p", "Up", "A balloon house flies.", {})
    assert "About: A balloon house flies." in score_user_text(
        "", plain, {}, filename="score_about.txt"
    )
    assert "About" not in score_user_text("", plain, {})
    # `about` is optional for a score prompt and unknown to the other roles.
    (tmp_path / "score.txt").write_text("{conversation} {candidate} {evidence} {about} {extra}")
    with pytest.raises(PromptError, match="may also use \\['about'\\]"):
        load_template("score", None, tmp_path)
    (tmp_path / "rerank.txt").write_text("{conversation} {candidates} {about}")
    with pytest.raises(PromptError, match="needs exactly"):
        load_template("rerank", None, tmp_path)


def test_score_prompt_snapshot(llm):
    got = _score_prompts(llm)[0]
    assert got == (SNAPSHOTS / "score_prompt.txt").read_text(encoding="utf-8")
    assert score_target(True) == "yes" and score_target(False) == "no"


def test_pointwise_batch_equals_one_prompt_at_a_time(model_cache):
    """Rows share the conversation's keys/values and are padded: each must score as if alone
    (in fp32, so that only a masking or position bug, not bf16 rounding, can fail it)."""
    from inference.llm import load_llm
    from inference.settings import LLMSettings

    llm = load_llm(LLMSettings(dtype="float32"), model_cache)
    prompts = _score_prompts(llm)
    batch = llm.label_logprobs_rows(prompts, ["yes", "no"])
    alone = [llm.label_logprobs(p, ["yes", "no"]) for p in prompts]
    for got, want in zip(batch, alone, strict=True):
        assert got == pytest.approx(want, abs=1e-3)
        assert sum(math.exp(x) for x in got) == pytest.approx(1.0, abs=1e-4)


def test_real_llm_pointwise_ranks_a_permutation_fused_with_the_prior(llm):
    prompts = _score_prompts(llm)
    result = rerank_pointwise(llm, prompts, prior_weight=0.0)
    yes = [row[0] for row in llm.label_logprobs_rows(prompts, ["yes", "no"])]
    assert sorted(result.order) == [0, 1, 2]
    assert result.order == sorted(range(3), key=lambda i: (-yes[i], i))
    # An overwhelming prior keeps the retrieval order whatever the model says.
    assert rerank_pointwise(llm, prompts, prior_weight=1000.0).order == [0, 1, 2]
