"""Ranking and beyond-accuracy metrics: pure functions over item ids, no I/O.

Definitions (the README's table is generated from the same words):
- Recall@k is counted per gold item: the share of all gold items (over all turns) that appear
  in the top k of their turn's ranking.
- NDCG@k and MRR@k are computed per turn with binary relevance and averaged over turns that
  have at least one gold item.
- coverage: share of catalog items that appear in at least one recommended list.
- long_tail_share: share of recommended entries outside the 20% most popular catalog items.
- intra_list_diversity: mean pairwise cosine distance (1 - cos) between the embeddings of a
  list's items, averaged over lists with at least two items.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

HEAD_SHARE = 0.2  # the "head" is the 20% most popular catalog items


def hits_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> int:
    """How many of the gold items are in the top k (each gold item counted once)."""
    top = set(ranked[:k])
    return sum(1 for g in set(gold) if g in top)


def recall_at_k(rankings: Sequence[Sequence[str]], golds: Sequence[Sequence[str]], k: int) -> float:
    """Recall@k per gold item, micro-averaged over turns; 0.0 when there is no gold at all."""
    n_gold = sum(len(set(g)) for g in golds)
    if n_gold == 0:
        return 0.0
    hits = sum(hits_at_k(r, g, k) for r, g in zip(rankings, golds, strict=True))
    return hits / n_gold


def ndcg_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """NDCG@k of one turn, binary relevance; 0.0 when the turn has no gold."""
    relevant = set(gold)
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / idcg


def mrr_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Reciprocal rank of the first gold item within the top k, else 0.0."""
    relevant = set(gold)
    for i, item in enumerate(ranked[:k]):
        if item in relevant:
            return 1.0 / (i + 1)
    return 0.0


def mean_per_turn(
    fn, rankings: Sequence[Sequence[str]], golds: Sequence[Sequence[str]], k: int
) -> float:
    """Mean of a per-turn metric (`ndcg_at_k`, `mrr_at_k`) over turns that have gold items."""
    values = [fn(r, g, k) for r, g in zip(rankings, golds, strict=True) if g]
    return float(sum(values) / len(values)) if values else 0.0


def coverage(lists: Iterable[Sequence[str]], catalog_size: int) -> float:
    """Share of the catalog recommended at least once."""
    if catalog_size <= 0:
        return 0.0
    seen: set[str] = set()
    for items in lists:
        seen.update(items)
    return len(seen) / catalog_size


def head_items(popularity: Mapping[str, float], share: float = HEAD_SHARE) -> frozenset[str]:
    """The ceil(share * N) most popular of the N catalog items, ties broken by item id.

    Items with popularity <= 0 are never head items: with popularity learned from a few
    thousand dialogue turns most of a catalog has a count of 0, and "popular" among those
    would only mean "early in id order".
    """
    n_head = math.ceil(share * len(popularity))
    ordered = sorted(
        (i for i in popularity if popularity[i] > 0), key=lambda i: (-popularity[i], i)
    )
    return frozenset(ordered[:n_head])


def long_tail_share(lists: Iterable[Sequence[str]], head: frozenset[str]) -> float:
    """Share of recommended entries (with repeats across lists) that are not in `head`."""
    total = tail = 0
    for items in lists:
        for item in items:
            total += 1
            tail += item not in head
    return tail / total if total else 0.0


def list_diversity(vectors: np.ndarray) -> float | None:
    """Mean pairwise cosine distance of one list's embeddings; None for fewer than 2 items."""
    n = len(vectors)
    if n < 2:
        return None
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norms == 0, 1.0, norms)
    sims = v @ v.T
    upper = sims[np.triu_indices(n, k=1)]
    return float(np.mean(1.0 - upper))


def intra_list_diversity(lists_vectors: Iterable[np.ndarray]) -> float | None:
    """Mean of `list_diversity` over lists with at least two items; None if there are none."""
    values = [d for d in (list_diversity(v) for v in lists_vectors) if d is not None]
    return float(np.mean(values)) if values else None


def percentiles(values: Sequence[float], ps: Sequence[float] = (50, 95)) -> dict[str, float]:
    """{"p50": ..., "p95": ...} with linear interpolation; zeros for an empty input."""
    if not values:
        return {f"p{p:g}": 0.0 for p in ps}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{p:g}": float(np.percentile(arr, p)) for p in ps}
