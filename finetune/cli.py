"""`recochat finetune` (and `python -m finetune`): QLoRA-tune the reranker (`--task rerank`,
the default) or the reply writer (`--task reply`) on dialogues.

    recochat finetune --dialogues ../shared/data/redial/valid_data_processed.jsonl \\
        --format redial --catalog ../shared/data/redial/id2info.json --catalog-format redial \\
        --epochs 1 --out runs/ft-redial
    recochat finetune --dialogues .recochat/feedback.sqlite3 --format feedback \\
        --init-adapter runs/ft-redial --max-steps 50 --out runs/ft-feedback
    recochat ask "a heist film" --adapter runs/ft-redial
    recochat finetune --task reply --dialogues ../shared/data/redial/valid_data_processed.jsonl \\
        --format redial --catalog ../shared/data/redial/id2info.json --catalog-format redial \\
        --max-train-examples 256 --max-dev-examples 32 --out runs/reply-adapter
    RECOCHAT_LLM__REPLY_ADAPTER=runs/reply-adapter recochat chat

Rerunning a command with the same --out resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finetune.data import TRAINING_FORMATS
from retrieval.catalog import CATALOG_FORMATS


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "finetune",
        help="QLoRA-tune the reranker (or, --task reply, the reply writer) on dialogues",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--task",
        choices=["rerank", "reply"],
        default="rerank",
        help="rerank: the reranker on the turns' picks; reply: the reply writer on the logged "
        "responses (needs --catalog; serve with llm.reply_adapter)",
    )
    p.add_argument("--dialogues", required=True, type=Path, help="dialogue file or feedback DB")
    p.add_argument(
        "--format", choices=TRAINING_FORMATS, default="jsonl", help="format of --dialogues"
    )
    p.add_argument(
        "--catalog",
        type=Path,
        help="catalog to retrieve from, or 'demo' (default: the indexed one)",
    )
    p.add_argument("--catalog-format", choices=CATALOG_FORMATS, help="default: from the suffix")
    p.add_argument("--init-adapter", type=Path, help="continue training this adapter dir")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=1.0, help="passes over the train split")
    length.add_argument("--max-steps", type=int, default=-1, help="optimizer steps (over epochs)")
    p.add_argument("--seed", type=int, default=0, help="seed of LoRA init, shuffling, examples")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split by dialogue")
    p.add_argument("--eval-steps", type=int, help="dev eval + checkpoint every N steps")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate")
    p.add_argument("--batch-size", type=int, default=4, help="examples per device step")
    p.add_argument("--grad-accum", type=int, default=2, help="device steps per optimizer step")
    p.add_argument(
        "--reason-fraction", type=float, default=0.1, help="share of turns adding a reason example"
    )
    p.add_argument(
        "--dev-rerank-limit", type=int, default=200, help="dev examples scored for rerank hit@1"
    )
    p.add_argument(
        "--max-dev-examples", type=int, default=256, help="cap on dev examples (0 = all)"
    )
    p.add_argument(
        "--max-train-examples",
        type=int,
        default=1500,
        help="reply: cap on train examples, a seeded sample (0 = all)",
    )
    p.add_argument(
        "--lora-layers",
        type=int,
        default=8,
        help="LoRA on the top N decoder layers (0 = all; ignored with --init-adapter)",
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        help="bf16 autocast (default: on for CUDA with bf16 and CPUs with AVX512-BF16)",
    )
    p.add_argument(
        "--rerank-mode",
        choices=["logits", "pointwise"],
        help="reranker to train: lettered list or one yes/no per candidate (default: config)",
    )
    p.add_argument(
        "--negatives", type=int, default=3, help="pointwise: retrieved negatives per turn"
    )
    p.add_argument("--out", required=True, type=Path, help="output dir (resumed if present)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g = p.add_argument_group("model and store (override recochat.toml / RECOCHAT_* env)")
    g.add_argument("--home", help="data dir (Chroma store, model cache)")
    g.add_argument("--model", help="base LLM: builtin, a local HF dir or a cached hub id")
    g.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    p.set_defaults(func=run_finetune)
    return p


def run_finetune(args: argparse.Namespace) -> int:
    """Run the parsed `finetune` command; domain errors propagate for the caller to print."""
    from chatbot.config import load_settings
    from finetune.run import FinetuneJob, run_job
    from finetune.train import TrainOptions

    settings = load_settings(
        {"home": args.home, "llm.model": args.model, "llm.rerank_mode": args.rerank_mode}
    )
    catalog = args.catalog
    if catalog is not None and str(catalog) == "demo":
        from retrieval.catalog import demo_catalog_path

        catalog = demo_catalog_path()
    if args.task == "reply" and catalog is None:
        from chatbot.errors import InputError

        raise InputError("--task reply needs --catalog (the catalog the logged picks come from)")
    opts = TrainOptions(
        out=args.out,
        epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        eval_steps=args.eval_steps,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        init_adapter=args.init_adapter,
        lora_layers=args.lora_layers,
        bf16=args.bf16,
        progress=args.progress,
    )
    if args.task == "reply":
        return _run_reply(args, settings, catalog, opts)
    job = FinetuneJob(
        dialogues=args.dialogues,
        train=opts,
        fmt=args.format,
        catalog=catalog,
        catalog_format=args.catalog_format,
        split_seed=args.split_seed,
        reason_fraction=args.reason_fraction,
        negatives=args.negatives,
        dev_rerank_limit=args.dev_rerank_limit,
        max_dev_examples=args.max_dev_examples,
        progress=args.progress,
    )
    try:
        result = run_job(job, settings)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last checkpoint")
        return 130
    rec = result.record
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(rec["dev_metrics"].items()))
    print(
        f"adapter written to {result.out} ({rec['n_train']} train / {rec['n_dev']} dev examples, "
        f"step {rec['training']['global_step']}, {rec['training']['seconds']:.0f} s)"
    )
    print(f"dev: {metrics or 'no dev split'}")
    print(f"serve it: recochat chat --adapter {result.out}")
    return 0


def _run_reply(args: argparse.Namespace, settings: Any, catalog: Path, opts: Any) -> int:
    from finetune.reply_job import ReplyJob, run

    job = ReplyJob(
        dialogues=args.dialogues,
        catalog=catalog,
        train=opts,
        fmt=args.format,
        catalog_format=args.catalog_format,
        max_train=args.max_train_examples,
        max_dev=args.max_dev_examples,
        seed=args.seed,
        split_seed=args.split_seed,
    )
    try:
        rec = run(job, settings)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last checkpoint")
        return 130
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(rec["dev_metrics"].items()))
    print(
        f"reply adapter written to {opts.out} ({rec['n_train']} train / {rec['n_dev']} dev "
        f"examples, step {rec['training']['global_step']}, {rec['training']['seconds']:.0f} s)"
    )
    print(f"dev: {metrics or 'no dev split'}")
    print(f"serve it: RECOCHAT_LLM__REPLY_ADAPTER={opts.out} recochat chat")
    return 0
