"""Paired bootstrap by dialogue: is system A's lead over system B on the same turns real?

    per_turn = {"hits": [...], "gold": [...], "ndcg": [...]}   # one entry per turn, each system
    ci = recall_diff_ci(a_hits, b_hits, gold, dialog_ids)      # 95% interval of R(A) - R(B)

Turns of one dialogue are not independent, so whole dialogues are resampled (with
replacement), 10,000 draws with a fixed seed: the method of `benchmarks/paired_compare.py`.
Recall is micro-averaged (hits over gold items of the drawn turns); NDCG is the mean over
drawn turns that have gold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DRAWS = 10_000


def _draws(dialog_ids: Sequence[str], draws: int, seed: int) -> list[np.ndarray]:
    dialogues = sorted(set(dialog_ids))
    rows = {d: [] for d in dialogues}
    for n, d in enumerate(dialog_ids):
        rows[d].append(n)
    groups = [np.array(rows[d]) for d in dialogues]
    rng = np.random.default_rng(seed)
    return [
        np.concatenate([groups[j] for j in rng.integers(len(groups), size=len(groups))])
        for _ in range(draws)
    ]


def recall_diff_ci(
    a_hits: Sequence[int],
    b_hits: Sequence[int],
    gold: Sequence[int],
    dialog_ids: Sequence[str],
    *,
    draws: int = DRAWS,
    seed: int = 0,
) -> tuple[float, float]:
    """95% bootstrap interval of micro recall(A) - recall(B)."""
    a, b, g = np.asarray(a_hits), np.asarray(b_hits), np.asarray(gold)
    diffs = []
    for picked in _draws(dialog_ids, draws, seed):
        total = g[picked].sum()
        if total:
            diffs.append((a[picked].sum() - b[picked].sum()) / total)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def mean_diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    dialog_ids: Sequence[str],
    *,
    draws: int = DRAWS,
    seed: int = 0,
) -> tuple[float, float]:
    """95% bootstrap interval of mean(A) - mean(B) over turns (e.g. NDCG@10 of gold turns)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    means = [d[picked].mean() for picked in _draws(dialog_ids, draws, seed) if len(picked)]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)
