"""`ItemStore`: the item index in Chroma, with atomic incremental re-indexing.

    store = ItemStore(".recochat/chroma", "items", load_embedder())   # or "http://localhost:8000"
    report = store.sync(load_catalog(path).items)
    hits = store.search("slow-burn heist", k=10, where={"year": {"$gte": 1990}})

Reads follow the active version's pointer; the versioned layout and the atomic `sync` /
`upsert` are in `retrieval.collection_versions`. A collection of at most
`exact_search_max_items` items is searched exactly (`retrieval.exact_search`: the same answer
whichever order a home indexed in, ties by id); a larger one through Chroma's HNSW graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from chromadb.api.models.Collection import Collection
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings

from retrieval.collection_versions import IO_BATCH, VersionedCollection, batches, to_item
from retrieval.exact_search import ExactIndex
from retrieval.types import Item

# Exact search up to this many items (benchmarks/exact_search_latency.py; docs/learned_ranking.md).
EXACT_SEARCH_MAX_ITEMS = 10_000


class ItemStore(VersionedCollection):
    """Items of one logical collection in Chroma: search, get, scan, stored vectors."""

    def __init__(
        self,
        location: str,
        collection: str,
        embedder: Embeddings,
        *,
        exact_search_max_items: int = EXACT_SEARCH_MAX_ITEMS,
    ) -> None:
        super().__init__(location, collection, embedder)
        self.exact_search_max_items = exact_search_max_items
        self._exact: tuple[Any, ExactIndex | None] | None = None  # (pointer, index or None)

    def search(
        self, query: str | list[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[Item, float]]:
        """The k items nearest to `query` (text or vector), as (item, cosine similarity)."""
        if k <= 0 or (isinstance(query, str) and not query.strip()):
            return []
        vector: list[float] | None = None if isinstance(query, str) else list(query)
        exact = self._exact_index()
        if exact is not None:
            if vector is None:
                vector = self.embedder.embed_query(str(query))
            return exact.search(vector, k, where=where)

        def run(_col: Collection, vs: Chroma) -> list[tuple[Item, float]]:
            nonlocal vector
            if vector is None:
                vector = self.embedder.embed_query(str(query))
            hits = vs.similarity_search_by_vector_with_relevance_scores(
                vector, k=k, filter=where or None
            )
            return [
                (to_item(str(doc.id), doc.page_content, doc.metadata), 1.0 - float(distance))
                for doc, distance in hits
            ]

        return self._read(run, [])

    def warm(self) -> None:
        """Build the exact index now (seconds for a 6.6k catalog), not in the first search."""
        self._exact_index()

    def _exact_index(self) -> ExactIndex | None:
        """The exact index of the active version (built once per version), or None above
        `exact_search_max_items` items or when nothing is indexed."""
        if self.exact_search_max_items <= 0:
            return None
        with self._guard():
            pointer = self._pointer()
        if pointer is None:
            return None
        cached = self._exact
        if cached is not None and cached[0] == pointer:
            return cached[1]
        items = self.all_items()
        index = None
        if 0 < len(items) <= self.exact_search_max_items:
            index = ExactIndex.from_items(items, self.embeddings([it.item_id for it in items]))
        self._exact = (pointer, index)
        return index

    def get(self, ids: Iterable[str]) -> list[Item]:
        """Items for `ids`, in that order; unknown ids are skipped."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []

        def run(col: Collection, _vs: Chroma) -> list[Item]:
            found: dict[str, Item] = {}
            for chunk in batches(wanted, IO_BATCH):
                got = col.get(ids=list(chunk), include=["documents", "metadatas"])
                for i, doc, md in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                    found[i] = to_item(i, doc, md)
            return [found[i] for i in wanted if i in found]

        return self._read(run, [])

    def all_items(self) -> list[Item]:
        """Every item of the active version, sorted by id (cached until the version changes)."""
        with self._guard():
            pointer = self._pointer()
        if pointer is None:
            return []
        if self._items_cache and self._items_cache[0] == pointer:
            return list(self._items_cache[1])

        def run(col: Collection, _vs: Chroma) -> list[Item]:
            items = [to_item(i, d, m) for i, d, m in self._scan(col, ["documents", "metadatas"])]
            return sorted(items, key=lambda it: it.item_id)

        items = self._read(run, [])
        self._items_cache = (pointer, items)
        return list(items)

    def embeddings(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors, row i for ids[i]; raises KeyError for an id not in the index."""
        if not ids:
            return np.zeros((0, 0), dtype=np.float32)

        def run(col: Collection, _vs: Chroma) -> np.ndarray:
            found: dict[str, Any] = {}
            for chunk in batches(list(dict.fromkeys(ids)), IO_BATCH):
                got = col.get(ids=list(chunk), include=["embeddings"])
                found.update(zip(got["ids"], got["embeddings"], strict=True))
            missing = [i for i in ids if i not in found]
            if missing:
                raise KeyError(f"not in the index: {missing[:5]}")
            return np.asarray([found[i] for i in ids], dtype=np.float32)

        return self._read(run, np.zeros((0, 0), dtype=np.float32))
