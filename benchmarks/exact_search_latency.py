"""Exact dense search against Chroma's HNSW graph: query latency by catalog size (k=100).

    nice -n 10 python benchmarks/exact_search_latency.py --sizes 6583,20000,50000,100000 \
        --json runs/exact_search_latency.json

Random unit 384-d vectors (the builtin embedder's width) with a `year` field; for each size,
one Chroma collection (cosine space, as `retrieval.collection_versions` creates them) is filled
from precomputed vectors (no embedder), then the same queries run through
`retrieval.exact_search.ExactIndex` (one BLAS thread, as a serving worker) and through Chroma,
plain and with a `year >= 2000` filter. The served threshold `retrieval.exact_search_max_items`
is chosen from this table (docs/learned_ranking.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import chromadb
import numpy as np
from threadpoolctl import threadpool_limits

from retrieval.exact_search import ExactIndex
from retrieval.types import Item

K = 100
DIM = 384
QUERIES = 60


def _ms(fn, queries) -> list[float]:
    out = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def measure(size: int, workdir: Path, rng: np.random.Generator) -> dict:
    vectors = rng.standard_normal((size, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"i{n:07d}" for n in range(size)]
    years = [int(y) for y in rng.integers(1950, 2024, size)]
    items = [Item(i, i, "", {"year": y}) for i, y in zip(ids, years, strict=True)]
    queries = [q / np.linalg.norm(q) for q in rng.standard_normal((QUERIES, DIM))]
    exact = ExactIndex.from_items(items, vectors)
    where = {"year": {"$gte": 2000}}
    with threadpool_limits(1):
        exact.search(queries[0], K)
        exact_ms = _ms(lambda q: exact.search(q, K), queries)
        exact_f = _ms(lambda q: exact.search(q, K, where=where), queries)
    client = chromadb.PersistentClient(path=str(workdir / f"c{size}"))
    col = client.create_collection(
        "scale", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    t0 = time.perf_counter()
    for s in range(0, size, 5000):
        col.add(
            ids=ids[s : s + 5000],
            embeddings=vectors[s : s + 5000],
            metadatas=[{"year": y} for y in years[s : s + 5000]],
        )
    build_s = time.perf_counter() - t0
    col.query(query_embeddings=[queries[0].tolist()], n_results=K)
    hnsw_ms = _ms(lambda q: col.query(query_embeddings=[q.tolist()], n_results=K), queries)
    hnsw_f = _ms(
        lambda q: col.query(query_embeddings=[q.tolist()], n_results=K, where=where), queries
    )
    # Agreement: share of the exact top 100 that HNSW returns.
    recall = []
    for q in queries[:20]:
        truth = {it.item_id for it, _ in exact.search(q, K)}
        got = set(col.query(query_embeddings=[q.tolist()], n_results=K)["ids"][0])
        recall.append(len(truth & got) / K)
    del client
    return {
        "size": size,
        "exact_p50_ms": _p(exact_ms, 0.5),
        "exact_p95_ms": _p(exact_ms, 0.95),
        "exact_filtered_p50_ms": _p(exact_f, 0.5),
        "hnsw_p50_ms": _p(hnsw_ms, 0.5),
        "hnsw_p95_ms": _p(hnsw_ms, 0.95),
        "hnsw_filtered_p50_ms": _p(hnsw_f, 0.5),
        "hnsw_recall@100": round(statistics.mean(recall), 3),
        "hnsw_build_s": round(build_s, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="6583,20000,50000,100000")
    ap.add_argument("--json", type=Path, help="write the rows here")
    opts = ap.parse_args()
    rng = np.random.default_rng(0)
    workdir = Path(tempfile.mkdtemp(prefix="exact-lat-"))
    rows = []
    try:
        for size in (int(s) for s in opts.sizes.split(",")):
            rows.append(measure(size, workdir, rng))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        "\n| items | exact p50 / p95 ms | exact filtered p50 | HNSW p50 / p95 ms "
        "| HNSW filtered p50 | HNSW recall@100 |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']:,} | {r['exact_p50_ms']} / {r['exact_p95_ms']} | "
            f"{r['exact_filtered_p50_ms']} | {r['hnsw_p50_ms']} / {r['hnsw_p95_ms']} | "
            f"{r['hnsw_filtered_p50_ms']} | {r['hnsw_recall@100']} |"
        )
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({"k": K, "dim": DIM, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
