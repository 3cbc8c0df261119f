"""Metrics against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.metrics import (
    coverage,
    head_items,
    hits_at_k,
    intra_list_diversity,
    list_diversity,
    long_tail_share,
    mean_per_turn,
    mrr_at_k,
    ndcg_at_k,
    percentiles,
    recall_at_k,
)

RANKED = ["a", "b", "c", "d", "e"]


def test_recall_is_per_gold_item() -> None:
    rankings = [["a", "b", "c"], ["x", "y", "z"]]
    golds = [["b", "z", "q"], ["z"]]
    # k=1: turn 1 top {a} hits nothing, turn 2 top {x} nothing -> 0 / 4 gold items.
    assert recall_at_k(rankings, golds, 1) == 0.0
    # k=2: turn 1 {a,b} hits b (1 of 3); turn 2 {x,y} none -> 1 / 4 = 0.25.
    assert recall_at_k(rankings, golds, 2) == 0.25
    # k=3: turn 1 {a,b,c} hits b (z is not ranked, q never) -> 1; turn 2 hits z -> 1; 2/4 = 0.5.
    # A per-turn mean would give (1/3 + 1) / 2 = 0.667: the turn with more gold counts more here.
    assert recall_at_k(rankings, golds, 3) == 0.5
    assert recall_at_k([[]], [[]], 10) == 0.0
    assert hits_at_k(RANKED, ["a", "a"], 1) == 1  # a duplicated gold title counts once


def test_ndcg_binary() -> None:
    # gold {b, d}; b at rank 2, d at rank 4.
    # DCG@5 = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606
    # IDCG@5 (two relevant) = 1/log2(2) + 1/log2(3) = 1 + 0.630930 = 1.630930
    # NDCG = 1.061606 / 1.630930 = 0.650921
    assert ndcg_at_k(RANKED, ["b", "d"], 5) == pytest.approx(0.650921, abs=1e-6)
    # k=3: only b counts: DCG = 0.630930; IDCG = 1.630930 -> 0.386853
    assert ndcg_at_k(RANKED, ["b", "d"], 3) == pytest.approx(0.386853, abs=1e-6)
    # k=1 with gold at rank 1: DCG = 1, IDCG = min(1, 2 relevant) terms = 1 -> 1.0
    assert ndcg_at_k(RANKED, ["a", "d"], 1) == 1.0
    # a gold item that is not ranked still counts in IDCG: gold {a, zz}, k=5
    # DCG = 1; IDCG = 1 + 0.630930 -> 0.613147
    assert ndcg_at_k(RANKED, ["a", "zz"], 5) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(RANKED, [], 5) == 0.0


def test_mrr() -> None:
    assert mrr_at_k(RANKED, ["c", "e"], 10) == pytest.approx(1 / 3)  # first hit at rank 3
    assert mrr_at_k(RANKED, ["e"], 4) == 0.0  # rank 5 is outside the top 4
    assert mrr_at_k(RANKED, ["zz"], 10) == 0.0


def test_mean_per_turn_skips_turns_without_gold() -> None:
    # turn 1: first hit at rank 2 -> 0.5; turn 2: rank 1 -> 1.0; turn 3 has no gold: skipped.
    # mean = (0.5 + 1.0) / 2 = 0.75
    value = mean_per_turn(mrr_at_k, [RANKED, RANKED, RANKED], [["b"], ["a"], []], 10)
    assert value == 0.75
    assert mean_per_turn(mrr_at_k, [], [], 10) == 0.0


def test_coverage() -> None:
    # distinct recommended = {a, b, c} over a 10-item catalog = 0.3
    assert coverage([["a", "b"], ["b", "c"]], 10) == 0.3
    assert coverage([["a"]], 0) == 0.0


def test_long_tail_share() -> None:
    pop = {"a": 50, "b": 40, "c": 30, "d": 30, "e": 1, "f": 0, "g": 0, "h": 0, "i": 0, "j": 0}
    # 20% of 10 items = 2 head items: a (50) and b (40).
    assert head_items(pop) == frozenset({"a", "b"})
    # ceil(0.2 * 11) = 3; c and d tie at 30 -> the smaller id, c, wins.
    assert head_items({**pop, "k": 0}) == frozenset({"a", "b", "c"})
    # entries: a, c, e | b, a -> tail entries c, e = 2 of 5 = 0.4
    assert long_tail_share([["a", "c", "e"], ["b", "a"]], head_items(pop)) == 0.4
    assert long_tail_share([], head_items(pop)) == 0.0
    # ceil(0.2 * 6) = 2 head slots, but only one item has a count above 0 -> head {a}
    assert head_items({"a": 3, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0}) == frozenset({"a"})


def test_intra_list_diversity() -> None:
    x, y, xy = [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]
    # pairs: (x, y) cos 0 -> distance 1; (x, xy) cos 1/sqrt2 -> 1 - 0.707107 = 0.292893;
    # (y, xy) same 0.292893. Mean = (1 + 0.292893 + 0.292893) / 3 = 0.528595
    assert list_diversity(np.array([x, y, xy])) == pytest.approx(0.528595, abs=1e-6)
    # identical directions (scale ignored) -> distance 0
    assert list_diversity(np.array([x, [3.0, 0.0]])) == pytest.approx(0.0)
    assert list_diversity(np.array([x])) is None
    # lists: 0.528595 and 1.0 (x vs y); the single-item list is skipped -> mean 0.764298
    lists = [np.array([x, y, xy]), np.array([x, y]), np.array([x])]
    assert intra_list_diversity(lists) == pytest.approx(0.764298, abs=1e-6)
    assert intra_list_diversity([np.array([x])]) is None


def test_percentiles() -> None:
    # linear interpolation over [10, 20, 30, 40]: p50 at position 1.5 -> 25;
    # p95 at position 0.95 * 3 = 2.85 -> 30 + 0.85 * 10 = 38.5
    assert percentiles([40, 10, 30, 20]) == {"p50": 25.0, "p95": 38.5}
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0}
