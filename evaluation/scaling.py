"""Catalog scaling: Chroma query latency and index build rate at growing catalog sizes.

Synthetic items (short descriptions, a year and genres) are indexed into a fresh store per
size through the product's own `ItemStore.sync` (embedding included), then queried with
pre-embedded vectors, so the query time is Chroma's alone:

    points = run_scaling(load_embedder(), [1000, 10000, 100000], Path("/tmp/scale"))
    plot_scaling(points, Path("scaling.png"))
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retrieval.types import Item

GENRES = ["drama", "comedy", "thriller", "crime", "sci-fi", "horror", "family", "romance"]
_ADJ = ["quiet", "tense", "funny", "dark", "gentle", "epic", "strange", "warm", "slow", "bold"]
_WHO = ["a detective", "two sisters", "a pilot", "an old thief", "a chef", "a robot", "a band"]
_WHAT = ["a lost map", "one last job", "a family secret", "a storm", "a rival", "a heist"]
_WHERE = ["in Paris", "at sea", "on Mars", "in a small town", "in Tokyo", "in the desert"]
QUERY_K = 100  # what a turn asks Chroma for (retrieval.k_retrieve)
N_QUERIES = 50


@dataclass
class ScalePoint:
    size: int
    index_s: float
    items_per_s: float
    query_p50_ms: float
    query_p95_ms: float
    filtered_query_p50_ms: float  # with a `year >= 2000` filter, as a constraint turn does

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def synthetic_items(n: int, seed: int = 0) -> list[Item]:
    """`n` items with ~15-word descriptions (deterministic for a seed)."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        genres = rng.sample(GENRES, 2)
        desc = (
            f"A {rng.choice(_ADJ)} {genres[0]} story: {rng.choice(_WHO)} and "
            f"{rng.choice(_WHAT)} {rng.choice(_WHERE)}."
        )
        title = f"{rng.choice(_ADJ).title()} {rng.choice(['Night', 'Road', 'River', 'House'])} {i}"
        text = f"{title}. {desc} {', '.join(genres)}"
        year = rng.randint(1950, 2024)
        items.append(Item(f"s{i:06d}", title, text, {"year": year, "genres": genres}))
    return items


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_scaling(
    embedder: Any, sizes: Sequence[int], workdir: Path, *, log=lambda _msg: None
) -> list[ScalePoint]:
    """Index and query a fresh synthetic catalog of each size under `workdir` (removed after)."""
    from retrieval.store import ItemStore

    queries = [
        f"a {a} {g} movie about {w}"
        for a, g, w in zip(_ADJ * 5, GENRES * 7, _WHAT * 9, strict=False)
    ][:N_QUERIES]
    vectors = embedder.embed_documents(queries)
    points = []
    for size in sizes:
        path = workdir / f"scale-{size}"
        shutil.rmtree(path, ignore_errors=True)
        store = ItemStore(str(path), "scale", embedder)
        items = synthetic_items(size)
        started = time.perf_counter()
        store.sync(items, progress=False)
        index_s = time.perf_counter() - started
        store.search(vectors[0], QUERY_K)  # open the collection before timing
        plain = _timed_queries(store, vectors, None)
        filtered = _timed_queries(store, vectors, {"year": {"$gte": 2000}})
        point = ScalePoint(
            size=size,
            index_s=index_s,
            items_per_s=size / index_s,
            query_p50_ms=statistics.median(plain),
            query_p95_ms=_percentile(plain, 0.95),
            filtered_query_p50_ms=statistics.median(filtered),
        )
        log(f"scaling {size}: {point.to_dict()}")
        points.append(point)
        del store
        shutil.rmtree(path, ignore_errors=True)
    return points


def _timed_queries(store: Any, vectors: list[list[float]], where: dict | None) -> list[float]:
    times = []
    for vector in vectors:
        started = time.perf_counter()
        store.search(vector, QUERY_K, where)
        times.append((time.perf_counter() - started) * 1000)
    return times


def plot_scaling(points: Sequence[ScalePoint], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [p.size for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(sizes, [p.query_p50_ms for p in points], "o-", label="query p50")
    left.plot(sizes, [p.query_p95_ms for p in points], "o--", label="query p95")
    left.plot(sizes, [p.filtered_query_p50_ms for p in points], "s-", label="filtered p50")
    left.axhline(15, color="grey", linestyle=":", label="target 15 ms")
    left.set(xscale="log", xlabel="catalog items", ylabel="ms", title=f"Chroma query (k={QUERY_K})")
    left.legend()
    right.plot(sizes, [p.items_per_s for p in points], "o-")
    right.axhline(300, color="grey", linestyle=":", label="target 300 items/s")
    right.set(xscale="log", xlabel="catalog items", ylabel="items/s", title="index build rate")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
