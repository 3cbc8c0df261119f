"""ItemStore against a real Chroma in tmp_path and the real embedder."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import chromadb
import httpx
import pytest
from chromadb.config import Settings
from langchain_core.embeddings import Embeddings

from retrieval.errors import RetrievalUnavailable
from retrieval.filters import matches_where
from retrieval.store import ItemStore
from retrieval.types import Item


def movie(item_id: str, title: str, year: int, genres: list[str], description: str) -> Item:
    metadata = {"year": year, "genres": genres, "rating": 7.5, "description": description}
    return Item(item_id, title, f"{title}\n{description}\ngenres: {', '.join(genres)}", metadata)


ITEMS = [
    movie("m1", "Heat", 1995, ["crime", "thriller"], "A master thief and a detective in LA."),
    movie("m2", "Toy Story", 1995, ["animation", "family"], "Toys come alive when kids leave."),
    movie("m3", "Alien", 1979, ["horror", "sci-fi"], "A crew in space is hunted by a creature."),
    movie("m4", "The Notebook", 2004, ["romance", "drama"], "A summer love story across years."),
    movie("m5", "Interstellar", 2014, ["sci-fi", "drama"], "Astronauts travel through a wormhole."),
    movie("m6", "Scream", 1996, ["horror"], "A masked killer stalks teenagers."),
]


class CountingEmbeddings(Embeddings):
    """The real embedder, counting the documents it embeds; optionally failing after N."""

    def __init__(self, inner: Embeddings, fail_after: int | None = None, on_embed=None) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.on_embed = on_embed
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.on_embed:
            self.on_embed()
        if self.fail_after is not None and len(self.embedded) + len(texts) > self.fail_after:
            raise RuntimeError("simulated crash while embedding")
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


@pytest.fixture
def store(tmp_path: Path, embedder) -> ItemStore:
    return ItemStore(str(tmp_path / "chroma"), "items", embedder)


def test_empty_store_answers_empty(store: ItemStore) -> None:
    assert store.count() == 0 and store.version() == 0
    assert store.search("anything", 5) == [] and store.all_items() == [] and store.get(["m1"]) == []


def test_sync_counts_and_only_changed_items_are_embedded(tmp_path: Path, embedder) -> None:
    counting = CountingEmbeddings(embedder)
    store = ItemStore(str(tmp_path / "chroma"), "items", counting)
    first = store.sync(ITEMS, progress=False)
    assert (first.added, first.updated, first.deleted, first.unchanged, first.total) == (
        6,
        0,
        0,
        0,
        6,
    )
    assert len(counting.embedded) == 6 and store.version() == 1

    changed = movie(
        "m2", "Toy Story", 1995, ["animation"], "Toys come alive; a cowboy gets jealous."
    )
    new = movie("m7", "Up", 2009, ["animation"], "An old man flies his house with balloons.")
    counting.embedded.clear()
    second = store.sync([*ITEMS[:1], changed, *ITEMS[2:5], new], progress=False)
    assert (second.added, second.updated, second.deleted, second.unchanged) == (1, 1, 1, 4)
    assert sorted(counting.embedded) == sorted([changed.text, new.text])
    assert store.count() == 6 and store.version() == 2
    assert store.get(["m2"]) == [changed] and store.get(["m6"]) == []
    client = store._client
    assert sorted(c.name for c in client.list_collections()) == ["items-meta", "items-v2"]


def test_items_round_trip_exactly(store: ItemStore) -> None:
    store.sync(ITEMS, progress=False)
    assert store.get(["m3", "nope", "m1"]) == [ITEMS[2], ITEMS[0]]
    assert store.all_items() == sorted(ITEMS, key=lambda it: it.item_id)
    hits = store.search("a spaceship crew hunted by a monster", 2)
    assert hits[0][0] == ITEMS[2] and 0 < hits[0][1] <= 1 and hits[0][1] >= hits[1][1]
    vectors = store.embeddings(["m1", "m3"])
    assert vectors.shape == (2, 384)
    vector_hits = store.search(vectors[1].tolist(), 1)
    assert vector_hits[0][0].item_id == "m3" and vector_hits[0][1] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(KeyError):
        store.embeddings(["m1", "missing"])


def test_metadata_filters(store: ItemStore) -> None:
    store.sync(ITEMS, progress=False)
    where = {"$and": [{"year": {"$gte": 1990}}, {"year": {"$lte": 2005}}]}
    ids = {it.item_id for it, _ in store.search("movie", 10, where=where)}
    assert ids == {"m1", "m2", "m4", "m6"}
    no_horror = {
        it.item_id for it, _ in store.search("scary", 10, {"genres": {"$not_contains": "horror"}})
    }
    assert no_horror == {"m1", "m2", "m4", "m5"}


def test_crash_mid_sync_leaves_the_old_version_complete(tmp_path: Path, embedder) -> None:
    path = str(tmp_path / "chroma")
    ItemStore(path, "items", embedder).sync(ITEMS, progress=False)
    changed = [Item(it.item_id, it.title, it.text + " (remastered)", it.metadata) for it in ITEMS]
    failing = ItemStore(path, "items", CountingEmbeddings(embedder, fail_after=3))
    with pytest.raises(RuntimeError, match="simulated crash"):
        failing.sync(changed, progress=False)

    reader = ItemStore(path, "items", embedder)
    assert reader.version() == 1 and reader.count() == 6
    assert reader.all_items() == sorted(ITEMS, key=lambda it: it.item_id)
    assert reader.search("toys that come alive", 1)[0][0].item_id == "m2"

    # A real crash (killed process) leaves a half-built version behind: the next sync removes it.
    chromadb.PersistentClient(path, Settings(anonymized_telemetry=False)).create_collection(
        "items-v7", embedding_function=None
    )
    report = reader.sync(changed, progress=False)
    assert report.updated == 6 and reader.version() == 8
    names = sorted(c.name for c in reader._client.list_collections())
    assert names == ["items-meta", "items-v8"]


def test_reader_during_sync_sees_the_old_complete_version(tmp_path: Path, embedder) -> None:
    path = str(tmp_path / "chroma")
    ItemStore(path, "items", embedder).sync(ITEMS[:3], progress=False)
    reader = ItemStore(path, "items", embedder)
    seen: list[tuple[int, int, list[str]]] = []

    def read() -> None:
        seen.append((reader.version(), reader.count(), [i.item_id for i in reader.all_items()]))

    writer = ItemStore(path, "items", CountingEmbeddings(embedder, on_embed=read))
    writer.sync(ITEMS, progress=False)
    assert seen and all(s == (1, 3, ["m1", "m2", "m3"]) for s in seen)
    assert reader.count() == 6 and reader.version() == 2 and len(reader.all_items()) == 6


def test_upsert_is_searchable_at_once(store: ItemStore) -> None:
    store.sync(ITEMS, progress=False)
    assert len(store.all_items()) == 6
    new = movie("m9", "Paddington", 2014, ["family"], "A polite bear from Peru moves to London.")
    report = store.upsert([new, ITEMS[0]])
    assert (report.added, report.updated, report.unchanged, report.total) == (1, 0, 1, 7)
    assert store.search("a bear from Peru in London", 1)[0][0] == new
    assert len(store.all_items()) == 7 and store.version() == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_names_the_fix(embedder) -> None:
    with pytest.raises(RetrievalUnavailable, match="unreachable: start it .*chroma run"):
        ItemStore(f"http://127.0.0.1:{free_port()}", "items", embedder)


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if exe is None:
        pytest.skip("the chroma CLI is not installed")
    port = free_port()
    log = (tmp_path / "chroma.log").open("w")
    server = subprocess.Popen(
        [exe, "run", "--path", str(tmp_path / "server"), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/api/v2/heartbeat", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("chroma server did not start")
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_http_server_sync_search_and_outage(chroma_server, embedder) -> None:
    url, server = chroma_server
    store = ItemStore(url, "items", embedder)
    assert store.count() == 0 and store.search("x", 3) == []
    store.sync(ITEMS, progress=False)
    store.sync(ITEMS[:4], progress=False)
    other = ItemStore(url, "items", embedder)
    assert other.version() == 2 and other.count() == 4
    assert other.search("toys that come alive", 1)[0][0] == ITEMS[1]
    server.terminate()
    server.wait(timeout=10)
    with pytest.raises(RetrievalUnavailable, match=f"Chroma at {url} is unreachable"):
        other.search("toys", 1)


def test_matches_where_agrees_with_chroma(tmp_path: Path) -> None:
    records = {
        "a": {"year": 1990, "genres": ["comedy", "drama"], "rating": "R", "score": 7.5},
        "b": {"year": 2005, "genres": ["horror"]},
        "c": {"year": 2010.5, "rating": "PG"},
        "d": {"rating": "PG-13", "kids": True},
    }
    client = chromadb.PersistentClient(str(tmp_path / "c"), Settings(anonymized_telemetry=False))
    col = client.create_collection("truth", embedding_function=None)
    col.add(ids=list(records), embeddings=[[1.0, 0.0]] * 4, metadatas=list(records.values()))
    filters = [
        {"year": {"$gte": 2000}},
        {"year": {"$lt": 2000}},
        {"year": {"$ne": 1990}},
        {"year": {"$in": [1990, 2005]}},
        {"year": {"$nin": [1990]}},
        {"genres": {"$contains": "horror"}},
        {"genres": {"$not_contains": "horror"}},
        {"rating": "PG"},
        {"rating": {"$eq": "R"}},
        {"kids": {"$eq": True}},
        {"kids": {"$ne": True}},
        {"$or": [{"rating": "PG"}, {"genres": {"$contains": "comedy"}}]},
        {"$and": [{"year": {"$gt": 1980}}, {"genres": {"$not_contains": "drama"}}]},
    ]
    for where in filters:
        expected = set(col.get(where=where)["ids"])
        assert {i for i, md in records.items() if matches_where(md, where)} == expected, where
