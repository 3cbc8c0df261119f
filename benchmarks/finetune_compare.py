"""Fine-tuned vs untuned reranker vs retrieval alone, on held-out ReDial dialogues.

    RECOCHAT_CONFIG=configs/redial.toml python benchmarks/finetune_compare.py \
        --adapter runs/finetune/redial --split test --limit 0

Three systems on the same turns, ranking only (no reasons): `retrieval` (the fused retrieval
order), `full` with the default model (the untuned LLM reranks the top `k_candidates`), `full`
with `--adapter`. `valid_data_processed.jsonl` is split by dialogue exactly as in training
(`split_of`, seed 0): the adapter saw only the train split, chose its checkpoint on dev, and
never read the test split. Choose `--rerank-prior` on `--split dev`, report on `--split test`.
Prints one markdown table with both protocols (novel and raw, see the README) and writes the
reports to runs/eval/ft-<split>-<adapter dir name>-<mode>-{base,tuned}/.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from evaluation.cli import add_eval_parser
from evaluation.datasets import DEFAULT_DATA_DIR
from recochat.env import set_env_defaults

METRICS = ("recall@1", "recall@10", "recall@50", "ndcg@10", "mrr@10")


def run(data_dir: Path, split: str, limit: int, out: Path, systems: str, extra: list[str]) -> dict:
    """`recochat eval --dataset redial ...` in-process; returns its report.json."""
    argv = [
        "eval", "--dataset", "redial", "--data-dir", str(data_dir), "--split", split,
        "--systems", systems, "--no-reasons", "--out", str(out), *extra,
    ]  # fmt: skip
    if limit:
        argv += ["--limit", str(limit)]
    parser = argparse.ArgumentParser(prog="recochat")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    if args.func(args) != 0:
        raise SystemExit(f"error: evaluation into {out} failed")
    return json.loads((out / "report.json").read_text())


def row(name: str, s: dict) -> str:
    cells = [f"{s[p][m]:.3f}" for p in ("novel", "raw") for m in METRICS]
    return f"| {name} | " + " | ".join(cells) + f" | {s['out_of_catalog_rate']:.3f} |"


def main_compare() -> int:
    set_env_defaults()  # before anything loads torch or Chroma
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--adapter", required=True, help="adapter dir from `recochat finetune`")
    ap.add_argument("--split", default="test", choices=("dev", "test"))
    ap.add_argument("--limit", type=int, default=0, help="0 = every turn of the split")
    ap.add_argument("--rerank-prior", type=float, help="default: llm.rerank_prior")
    ap.add_argument("--rerank-mode", choices=("logits", "pointwise"), help="default: config")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="shared datasets")
    ap.add_argument("--runs", type=Path, default=Path("runs/eval"), help="where reports go")
    opts = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prior = [] if opts.rerank_prior is None else ["--rerank-prior", str(opts.rerank_prior)]
    prior += ["--rerank-mode", opts.rerank_mode] if opts.rerank_mode else []
    # Named by adapter and mode, so one comparison never overwrites another's reports.
    run_name = f"ft-{opts.split}-{Path(opts.adapter).name}-{opts.rerank_mode or 'config'}"
    base_dir = opts.runs / f"{run_name}-base"
    tuned_dir = opts.runs / f"{run_name}-tuned"
    base = run(opts.data_dir, opts.split, opts.limit, base_dir, "retrieval,full", prior)
    tuned = run(
        opts.data_dir,
        opts.split,
        opts.limit,
        tuned_dir,
        "full",
        [*prior, "--adapter", opts.adapter],
    )
    base, tuned = {**base, **base["systems"]}, {**tuned, **tuned["systems"]}
    head = " | ".join(f"{p} {m}" for p in ("novel", "raw") for m in METRICS)
    print(f"| system | {head} | out of catalog |")
    print("|---|" + "---:|" * (2 * len(METRICS) + 1))
    print(row("retrieval only", base["retrieval"]))
    print(row("LLM rerank, untuned", base["full"]))
    print(row("LLM rerank, fine-tuned", tuned["full"]))
    d, c = tuned["dialogues"], tuned["config"]
    print(
        f"\n{d['turns']} turns ({d['novel_turns']} with novel gold) from {d['dialogues']} "
        f"{opts.split} dialogues; k_candidates {c['k_candidates']}, rerank "
        f"{c.get('rerank_mode', 'logits')} with prior {c['rerank_prior']}, adapter {opts.adapter}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main_compare())
