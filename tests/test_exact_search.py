"""Exact dense search: nearest first, ties by id, filters and blocked ids applied."""

from __future__ import annotations

import numpy as np

from retrieval.exact_search import ExactIndex
from retrieval.types import Item


def index() -> ExactIndex:
    items = [Item(f"m{n}", f"Film {n}", "", {"year": 1990 + n}) for n in range(6)]
    vectors = [[1, 0], [0, 1], [1, 1], [1, 0], [2, 0], [-1, 0]]  # m0, m3, m4 tie on [1, 0]
    return ExactIndex.from_items(reversed(items), list(reversed(vectors)))


def test_nearest_first_with_ties_in_id_order_whatever_the_build_order() -> None:
    hits = index().search([1.0, 0.0], k=4)
    assert [it.item_id for it, _ in hits] == ["m0", "m3", "m4", "m2"]
    assert hits[0][1] == 1.0 and abs(hits[3][1] - np.sqrt(0.5)) < 1e-6


def test_where_and_blocked_ids() -> None:
    hits = index().search([1.0, 0.0], k=2, where={"year": {"$gte": 1993}}, blocked={"m3"})
    assert [it.item_id for it, _ in hits] == ["m4", "m5"]
    assert index().search([1.0, 0.0], k=0) == []


def test_item_store_searches_exactly_below_the_threshold(demo_store, embedder) -> None:
    """`ItemStore.search` is exact up to `exact_search_max_items` (the demo catalog's 520),
    Chroma's HNSW above: both agree on the near neighbours, exact also on ties and order."""
    from retrieval.store import ItemStore

    exact = ExactIndex.from_store(demo_store)
    query = "a slow-burn heist in Los Angeles"
    vector = embedder.embed_query(query)
    served = demo_store.search(query, 25, {"year": {"$gte": 1990}})
    expected = exact.search(vector, 25, where={"year": {"$gte": 1990}})
    assert [it.item_id for it, _ in served] == [it.item_id for it, _ in expected]
    assert np.allclose([s for _, s in served], [s for _, s in expected], atol=1e-5)
    hnsw = ItemStore(demo_store.location, demo_store.collection, embedder, exact_search_max_items=0)
    assert hnsw._exact_index() is None
    approx = [it.item_id for it, _ in hnsw.search(vector, 10)]
    assert len(set(approx) & {it.item_id for it, _ in exact.search(vector, 10)}) >= 8
