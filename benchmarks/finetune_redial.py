"""Training cost on ReDial: QLoRA over the train split of the public ReDial turns.

    python benchmarks/finetune_redial.py                  # one full epoch, timing per epoch
    python benchmarks/finetune_redial.py --max-steps 20   # measure 20 steps, project one epoch

Same as:

    recochat finetune --dialogues ../shared/data/redial/valid_data_processed.jsonl \
        --format redial --catalog ../shared/data/redial/id2info.json --catalog-format redial \
        --epochs 1 --out runs/finetune/redial --home runs/bench-home

`valid_data_processed.jsonl` is split by dialogue (70/15/15, `dialogues.split.split_of`,
seed 0): examples come from the train split, the dev split selects the checkpoint, the test split
is never read. The first run indexes the catalog into runs/bench-home (minutes, once). Prints the
examples, the optimizer steps per epoch, the measured steps/s and examples/s (training steps
only, evaluation excluded), the epoch time measured or projected, the CPU time used and the
machine's load average (other processes on the same cores slow every figure down).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import shutil
import time
from pathlib import Path

from evaluation.datasets import DEFAULT_DATA_DIR
from recochat.env import set_env_defaults


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-steps", type=int, default=-1, help="-1: one full epoch")
    ap.add_argument("--eval-steps", type=int, help="default: twice per run")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, help="default: auto")
    ap.add_argument("--lr", type=float, default=2e-4, help="learning rate")
    ap.add_argument("--lora-layers", type=int, default=8, help="top N layers get LoRA (0 = all)")
    ap.add_argument("--rerank-mode", choices=["logits", "pointwise"], help="default: config")
    ap.add_argument("--negatives", type=int, default=3, help="pointwise: negatives per turn")
    ap.add_argument(
        "--depth", type=int, help="pointwise: train examples from the top N (default k)"
    )
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="shared datasets")
    ap.add_argument("--home", type=Path, default=Path("runs/bench-home"))
    ap.add_argument("--out", type=Path, default=Path("runs/finetune/redial"))
    ap.add_argument(
        "--keep", action="store_true", help="resume from --out instead of starting over"
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    opts = ap.parse_args()
    data = opts.data_dir / "redial"
    if not data.is_dir():
        print(f"error: {data} not found: pass --data-dir (the shared datasets)")
        return 2
    set_env_defaults()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from chatbot.config import load_settings
    from finetune.run import FinetuneJob, run_job
    from finetune.train import TrainOptions, planned_steps

    if opts.out.exists() and not opts.keep:
        shutil.rmtree(opts.out)  # a measurement starts from step 0, not from a checkpoint
    settings = load_settings({"home": str(opts.home), "llm.rerank_mode": opts.rerank_mode})
    train = TrainOptions(
        out=opts.out, max_steps=opts.max_steps, epochs=1.0, eval_steps=opts.eval_steps,
        batch_size=opts.batch_size, grad_accum=opts.grad_accum, bf16=opts.bf16,
        learning_rate=opts.lr, lora_layers=opts.lora_layers,
    )  # fmt: skip
    job = FinetuneJob(
        dialogues=data / "valid_data_processed.jsonl", train=train, fmt="redial",
        catalog=data / "id2info.json", catalog_format="redial", negatives=opts.negatives,
        depth=opts.depth,
    )  # fmt: skip
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    result = run_job(job, settings)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    total = time.perf_counter() - t0

    rec, outcome = result.record, result.outcome
    n_train = rec["n_train"]
    tok = outcome.trainer.train_dataset["input_ids"] if outcome.trainer is not None else []
    mean_tokens = sum(map(len, tok)) / len(tok) if len(tok) else 0.0
    epoch_steps = planned_steps(n_train, TrainOptions(out=opts.out, batch_size=opts.batch_size,
                                                      grad_accum=opts.grad_accum))  # fmt: skip
    per_step = 1.0 / outcome.steps_per_second if outcome.steps_per_second else math.nan
    figures = {
        "device": outcome.device,
        "bf16": outcome.trainer.args.bf16 if outcome.trainer is not None else None,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "n_train_examples": n_train,
        "n_dev_examples": rec["n_dev"],
        "mean_tokens_per_example": round(mean_tokens, 1),
        "batch": f"{opts.batch_size} x {opts.grad_accum} accumulation",
        "learning_rate": opts.lr,
        "lora_layers": opts.lora_layers,
        "rerank_mode": settings.llm.rerank_mode,
        "negatives": opts.negatives,
        "steps_per_epoch": epoch_steps,
        "steps_run": outcome.global_step,
        "steps_per_second": round(outcome.steps_per_second, 4),
        "examples_per_second": round(outcome.examples_per_second, 3),
        "epoch_seconds_measured": [round(s, 1) for s in outcome.epoch_seconds],
        "epoch_minutes_projected": round(epoch_steps * per_step / 60, 1),
        "train_seconds_with_eval": round(outcome.train_seconds, 1),
        "total_seconds": round(total, 1),
        "cpu_seconds": round((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "dev_metrics": rec["dev_metrics"],
    }
    for key, value in figures.items():
        print(f"{key:28s} {value}")
    if opts.json:
        opts.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
