"""Print the README results table from eval reports (default: every runs/eval/*/report.json).

    recochat eval --dataset redial --limit 500 --out runs/eval/redial-test
    recochat eval --dataset opendialkg --limit 500 --out runs/eval/opendialkg-all
    python benchmarks/eval_table.py > runs/eval/table.md

Ranking metrics are novel-protocol unless marked raw; see the README's metric definitions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ("dataset", "system", "R@1", "R@10", "R@50", "NDCG@10", "MRR@10", "raw R@10",
           "raw R@50", "out of catalog", "unsupported reasons", "coverage", "long tail",
           "p50 ms", "p95 ms")  # fmt: skip


def _f(value: object, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"  # type: ignore[str-format]


def rows(report: dict, dataset: str) -> list[list[str]]:
    out = []
    for name, s in report["systems"].items():
        n, r, lat = s["novel"], s["raw"], s["latency_ms"]
        out.append([
            dataset, name, _f(n["recall@1"]), _f(n["recall@10"]), _f(n["recall@50"]),
            _f(n["ndcg@10"]), _f(n["mrr@10"]), _f(r["recall@10"]), _f(r["recall@50"]),
            _f(s["out_of_catalog_rate"]), _f(s["reason_unsupported_rate"]), _f(s["coverage"]),
            _f(s["long_tail_share"]), _f(lat["p50"], 0), _f(lat["p95"], 0),
        ])  # fmt: skip
    return out


def table(reports: list[Path]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|" + "---:|" * (len(COLUMNS) - 2)]
    notes = []
    for path in reports:
        report = json.loads(path.read_text())
        dataset = path.parent.name
        lines += ["| " + " | ".join(r) + " |" for r in rows(report, dataset)]
        d = report["dialogues"]
        notes.append(
            f"- {dataset}: {d['turns']} turns from {d['dialogues']} dialogues "
            f"({d['novel_turns']} with a novel gold item), catalog {report['catalog_items']} "
            f"items, collaborative signals from {report['config']['train_turns']} train turns."
        )
    return "\n".join([*lines, "", *notes]) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="*", type=Path, help="report.json files or their dirs")
    ap.add_argument("--runs", type=Path, default=Path("runs/eval"), help="default report dirs")
    opts = ap.parse_args()
    paths = [p / "report.json" if p.is_dir() else p for p in opts.reports]
    paths = paths or sorted(opts.runs.glob("*/report.json"))
    if not paths:
        print("no reports: run `recochat eval --dataset redial --out runs/eval/redial-test` first")
        return 1
    print(table(paths), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
