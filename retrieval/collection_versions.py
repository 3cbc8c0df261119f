"""Versioned Chroma collections: atomic incremental re-indexing of one logical collection.

`VersionedCollection` is the writing side of `retrieval.store.ItemStore` (which adds the
reads). Layout: the logical collection `items` is a physical collection `items-v<N>`; the record
`active` in the collection `items-meta` holds {"version": N, "revision": R} and is the only
pointer readers follow, so it works the same against a Chroma server. `sync` builds `items-v<N+1>`
beside the active one (copying the stored embedding of every item whose content hash did not
change, embedding the rest), flips the pointer, then deletes the old version: a reader sees either
the old or the new complete version, and a crash mid-sync leaves the old one active (the half-built
one is removed by the next sync). `upsert` changes a few items in place and bumps the revision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings
from chromadb.errors import NotFoundError
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings
from tqdm.auto import tqdm

from retrieval.errors import RetrievalError, RetrievalUnavailable
from retrieval.types import Item

log = logging.getLogger(__name__)

INTERNAL_KEYS = ("title", "content_hash")  # stored in Chroma metadata, stripped on the way out
_POINTER_ID = "active"
_EMBED_BATCH = 512  # items embedded and written per Chroma call
IO_BATCH = 1000
_SPACE: Any = {"hnsw": {"space": "cosine"}}
T = TypeVar("T")


@dataclass(frozen=True)
class SyncReport:
    added: int
    updated: int
    deleted: int
    unchanged: int
    seconds: float
    total: int


@dataclass(frozen=True)
class _Pointer:
    version: int
    revision: int


def content_hash(item: Item) -> str:
    """Hash of everything stored for an item; equal hashes mean the stored embedding is valid."""
    payload = json.dumps([item.title, item.text, item.metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _connect(location: str) -> ClientAPI:
    settings = Settings(anonymized_telemetry=False)
    if location.startswith(("http://", "https://")):
        url = urlsplit(location)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=settings,
            )
        except Exception as e:  # chromadb raises ValueError/httpx errors for a dead server
            raise _unavailable(location) from e
    try:
        return chromadb.PersistentClient(path=location, settings=settings)
    except Exception as e:
        raise RetrievalError(
            f"cannot open the Chroma index at {location} ({e}): fix retrieval.chroma"
        ) from e


def _unavailable(location: str) -> RetrievalUnavailable:
    return RetrievalUnavailable(
        f"Chroma at {location} is unreachable: start it (`chroma run --path DIR --port N`) "
        "or fix retrieval.chroma"
    )


def batches(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


class VersionedCollection:
    """One logical collection in Chroma (a local path or an `http://host:port` server) as
    versioned physical collections behind a pointer; `sync` and `upsert` write it."""

    def __init__(self, location: str, collection: str, embedder: Embeddings) -> None:
        self.location = str(location)
        self.collection = collection
        self.embedder = embedder
        self._meta_name = f"{collection}-meta"
        self._version_re = re.compile(rf"^{re.escape(collection)}-v(\d+)$")
        self._client = _connect(self.location)
        self._handles: dict[str, tuple[Collection, Chroma]] = {}
        self._items_cache: tuple[_Pointer, list[Item]] | None = None

    def version(self) -> int:
        """The active version number (0 when never indexed)."""
        with self._guard():
            pointer = self._pointer()
        return pointer.version if pointer else 0

    def count(self) -> int:
        return self._read(lambda col, _vs: col.count(), 0)

    # ---- writing ---------------------------------------------------------------------------

    def sync(self, items: Iterable[Item], *, progress: bool = True) -> SyncReport:
        """Make the index hold exactly `items`, re-embedding only new or changed ones."""
        started = time.perf_counter()
        items = _dedupe(items)
        if not items:
            log.warning("sync of %s with no items: the index will be empty", self.collection)
        hashes = {it.item_id: content_hash(it) for it in items}
        with self._guard():
            meta = self._client.get_or_create_collection(self._meta_name, embedding_function=None)
            pointer = self._pointer()
            versions = self._versions()
            for number, name in versions.items():
                if pointer is None or number != pointer.version:
                    log.warning("removing stale half-built index %s", name)
                    self._drop(name)
            old_name = self._name(pointer.version) if pointer else None
            old_hashes = self._stored_hashes(old_name) if old_name else {}
            unchanged = [it for it in items if old_hashes.get(it.item_id) == hashes[it.item_id]]
            fresh = [it for it in items if old_hashes.get(it.item_id) != hashes[it.item_id]]
            added = sum(1 for it in fresh if it.item_id not in old_hashes)
            new_version = max([*versions, pointer.version if pointer else 0]) + 1
            new_name = self._name(new_version)
            col, vs = self._handle(new_name, create=True)
            try:
                desc = f"indexing {self.collection}"
                with tqdm(total=len(items), desc=desc, unit="item", disable=not progress) as bar:
                    if old_name:
                        self._copy(old_name, col, unchanged, hashes, bar.update)
                    self._embed_into(vs, fresh, hashes, bar.update)
                if col.count() != len(items):
                    raise RetrievalError(f"index {new_name} is incomplete: run sync again")
            except BaseException:
                self._drop(new_name)
                raise
            meta.upsert(
                ids=[_POINTER_ID],
                embeddings=[[1.0]],
                documents=[new_name],
                metadatas=[{"version": new_version, "revision": 0}],
            )
            if old_name:
                self._drop(old_name)
        report = SyncReport(
            added=added,
            updated=len(fresh) - added,
            deleted=len(set(old_hashes) - set(hashes)),
            unchanged=len(unchanged),
            seconds=time.perf_counter() - started,
            total=len(items),
        )
        log.info("synced %s → %s: %s", self.collection, new_name, report)
        return report

    def upsert(self, items: Iterable[Item]) -> SyncReport:
        """Add or update a few items in the active version in place (searchable at once)."""
        started = time.perf_counter()
        items = _dedupe(items)
        if not items:
            return SyncReport(0, 0, 0, 0, time.perf_counter() - started, self.count())
        with self._guard():
            pointer = self._pointer()
            if pointer is None:
                return self.sync(items, progress=False)
            col, vs = self._handle(self._name(pointer.version))
            ids = [it.item_id for it in items]
            got = col.get(ids=ids, include=["metadatas"])
            pairs = zip(got["ids"], got["metadatas"], strict=True)
            old = {i: (m or {}).get("content_hash") for i, m in pairs}
            hashes = {it.item_id: content_hash(it) for it in items}
            fresh = [it for it in items if old.get(it.item_id) != hashes[it.item_id]]
            self._embed_into(vs, fresh, hashes, lambda _n: None)
            meta = self._client.get_collection(self._meta_name, embedding_function=None)
            meta.upsert(
                ids=[_POINTER_ID],
                embeddings=[[1.0]],
                documents=[self._name(pointer.version)],
                metadatas=[{"version": pointer.version, "revision": pointer.revision + 1}],
            )
            total = col.count()
        added = sum(1 for it in fresh if it.item_id not in old)
        return SyncReport(
            added=added,
            updated=len(fresh) - added,
            deleted=0,
            unchanged=len(items) - len(fresh),
            seconds=time.perf_counter() - started,
            total=total,
        )

    # ---- internals -------------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (httpx.TransportError, ConnectionError) as e:
            raise _unavailable(self.location) from e
        except ValueError as e:
            if "Could not connect" in str(e):
                raise _unavailable(self.location) from e
            raise

    def _name(self, version: int) -> str:
        return f"{self.collection}-v{version}"

    def _pointer(self) -> _Pointer | None:
        try:
            meta = self._client.get_collection(self._meta_name, embedding_function=None)
        except NotFoundError:
            return None
        got = meta.get(ids=[_POINTER_ID], include=["metadatas"])
        if not got["ids"]:
            return None
        md = got["metadatas"][0] or {}
        return _Pointer(version=int(md["version"]), revision=int(md.get("revision", 0)))

    def _versions(self) -> dict[int, str]:
        found = {}
        for col in self._client.list_collections():
            match = self._version_re.match(col.name)
            if match:
                found[int(match.group(1))] = col.name
        return found

    def _handle(self, name: str, *, create: bool = False) -> tuple[Collection, Chroma]:
        if name not in self._handles:
            if create:
                col = self._client.get_or_create_collection(
                    name, embedding_function=None, configuration=_SPACE
                )
            else:
                col = self._client.get_collection(name, embedding_function=None)
            vs = Chroma(
                client=self._client,
                collection_name=name,
                embedding_function=self.embedder,
                create_collection_if_not_exists=False,
            )
            self._handles[name] = (col, vs)
        return self._handles[name]

    def _drop(self, name: str) -> None:
        self._handles.pop(name, None)
        try:
            self._client.delete_collection(name)
        except NotFoundError:
            pass
        except Exception:  # best effort: the next sync removes it
            log.warning("could not delete %s; the next sync will", name, exc_info=True)

    def _read(self, fn: Callable[[Collection, Chroma], T], empty: T) -> T:
        """Run `fn` on the active version; retry once if a concurrent sync just replaced it."""
        with self._guard():
            for attempt in range(2):
                pointer = self._pointer()
                if pointer is None:
                    return empty
                name = self._name(pointer.version)
                try:
                    col, vs = self._handle(name)
                    return fn(col, vs)
                except NotFoundError as e:
                    self._handles.pop(name, None)
                    if attempt:
                        raise RetrievalError(
                            f"index {name} is missing: run `recochat index` to rebuild it"
                        ) from e
        return empty

    def _scan(self, col: Collection, include: list[Any]) -> Iterator[tuple[str, Any, Any]]:
        offset = 0
        while True:
            got = col.get(include=include, limit=IO_BATCH, offset=offset)
            if not got["ids"]:
                return
            docs = got.get("documents") or [None] * len(got["ids"])
            metas = got.get("metadatas") or [None] * len(got["ids"])
            yield from zip(got["ids"], docs, metas, strict=True)
            offset += len(got["ids"])

    def _stored_hashes(self, name: str) -> dict[str, str | None]:
        col, _ = self._handle(name)
        return {i: (m or {}).get("content_hash") for i, _d, m in self._scan(col, ["metadatas"])}

    def _copy(
        self,
        old_name: str,
        col: Collection,
        items: list[Item],
        hashes: dict[str, str],
        advance: Callable[[int], Any],
    ) -> None:
        old, _ = self._handle(old_name)
        for chunk in batches(items, IO_BATCH):
            got = old.get(ids=[it.item_id for it in chunk], include=["embeddings"])
            vectors = dict(zip(got["ids"], got["embeddings"], strict=True))
            col.add(
                ids=[it.item_id for it in chunk],
                embeddings=[vectors[it.item_id] for it in chunk],
                documents=[it.text for it in chunk],
                metadatas=[_stored_metadata(it, hashes[it.item_id]) for it in chunk],
            )
            advance(len(chunk))

    def _embed_into(
        self, vs: Chroma, items: list[Item], hashes: dict[str, str], advance: Callable[[int], Any]
    ) -> None:
        for chunk in batches(items, _EMBED_BATCH):
            vs.add_texts(
                texts=[it.text for it in chunk],
                metadatas=[_stored_metadata(it, hashes[it.item_id]) for it in chunk],
                ids=[it.item_id for it in chunk],
            )
            advance(len(chunk))


def _dedupe(items: Iterable[Item]) -> list[Item]:
    unique: dict[str, Item] = {}
    for item in items:
        if item.item_id in unique:
            log.warning("duplicate item id %r: keeping the first", item.item_id)
            continue
        unique[item.item_id] = item
    return list(unique.values())


def _stored_metadata(item: Item, digest: str) -> dict[str, Any]:
    kept = {k: v for k, v in item.metadata.items() if v is not None and v != []}  # unstorable
    return {**kept, "title": item.title, "content_hash": digest}


def to_item(item_id: str, document: str | None, metadata: Any) -> Item:
    md = dict(metadata or {})
    title = str(md.pop("title", ""))
    for key in INTERNAL_KEYS:
        md.pop(key, None)
    return Item(item_id=item_id, title=title, text=document or "", metadata=md)
