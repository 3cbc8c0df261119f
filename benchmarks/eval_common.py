"""Shared flags of the dataset eval scripts (`eval_redial.py`, `eval_opendialkg.py`).

Each script runs `recochat eval` in-process and writes under runs/eval/<dataset>-<split>/.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"  # ../shared/data: read-only, never copied into the repo


def main(
    dataset: str, dataset_args: list[str], *, default_split: str, argv: list[str] | None = None
) -> int:
    from evaluation.cli import SYSTEMS, add_eval_parser

    ap = argparse.ArgumentParser(description=f"recochat eval on {dataset}")
    ap.add_argument("--split", default=default_split, choices=("all", "train", "dev", "test"))
    ap.add_argument("--limit", type=int, default=500, help="0 = every turn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--adapter", help="LoRA adapter dir from `recochat finetune`")
    ap.add_argument("--no-reasons", action="store_true", help="rank only (no reason generation)")
    ap.add_argument("--rerank-prior", type=float, help="default: llm.rerank_prior")
    ap.add_argument("--rerank-mode", choices=("logits", "pointwise"), help="default: config")
    ap.add_argument("--out", type=Path, help="default: runs/eval/<dataset>-<split>")
    opts = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = opts.out or ROOT / "runs" / "eval" / f"{dataset}-{opts.split}"
    argv = [*dataset_args, "--split", opts.split, "--seed", str(opts.seed),
            "--systems", opts.systems, "--out", str(out)]  # fmt: skip
    if opts.limit:
        argv += ["--limit", str(opts.limit)]
    if opts.adapter:
        argv += ["--adapter", opts.adapter]
    if opts.no_reasons:
        argv += ["--no-reasons"]
    if opts.rerank_prior is not None:
        argv += ["--rerank-prior", str(opts.rerank_prior)]
    if opts.rerank_mode:
        argv += ["--rerank-mode", opts.rerank_mode]
    if not DATA.is_dir():
        print(f"error: {DATA} not found: the benchmarks read the shared datasets")
        return 2
    parser = argparse.ArgumentParser(prog="recochat")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *argv])
    return args.func(args)
