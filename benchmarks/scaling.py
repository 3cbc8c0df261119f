"""Catalog scaling: Chroma query p50 and index build rate at 1k, 10k, 100k synthetic items.

    python benchmarks/scaling.py --out runs/scaling                 # all three sizes (minutes)
    python benchmarks/scaling.py --sizes 1000,10000 --out runs/scaling --json

Each size is a fresh store (under --out, removed afterwards) indexed through the product's
`ItemStore.sync` with the bundled embedder, then queried 50 times with pre-embedded vectors
(k=100, as a turn asks): the query time is Chroma's alone. Writes scaling.json and scaling.png.
`recochat bench --scaling` runs the same measurement after the latency replay.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "OMP_WAIT_POLICY", "PASSIVE"
)  # before torch loads: see inference/linear_packing.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated sizes")
    parser.add_argument("--out", default="runs/scaling", help="where scaling.json/png go")
    parser.add_argument("--embedder", default="builtin:all-minilm-l6-v2")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    from evaluation.bench import scaling_extra
    from evaluation.scaling import ScalePoint, plot_scaling
    from retrieval.embeddings import load_embedder

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
        report = scaling_extra(load_embedder(args.embedder), sizes, Path(tmp), log)
    report["load_avg"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    (out / "scaling.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_scaling([ScalePoint(**p) for p in report["scaling"]], out / "scaling.png")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for p in report["scaling"]:
            print(
                f"{p['size']:>7} items: query p50 {p['query_p50_ms']} ms, p95 {p['query_p95_ms']} "
                f"ms, filtered p50 {p['filtered_query_p50_ms']} ms; index {p['items_per_s']} "
                "items/s"
            )
        print(f"load average {report['load_avg'][0]} -> {report['load_avg'][1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
