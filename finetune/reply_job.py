"""QLoRA-tune the reply writer on logged recommender responses (ReDial `resp`).

    PYTHONPATH=$PWD python -m finetune.reply_job \\
        --dialogues ../shared/data/redial/valid_data_processed.jsonl \\
        --catalog ../shared/data/redial/id2info.json --out /work/scratch/reply-adapter \\
        --max-train 1500 --max-dev 96 --epochs 1

Split by dialogue (`split_of`, seed 0): train examples are learned from, dev examples select
the checkpoint (lowest dev loss), test dialogues are never read here. Examples come from
`finetune.reply_examples` (the served reply prompt); training is `finetune.train` unchanged.
Phase B wires this into `recochat finetune --task reply`.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path
from typing import Any

from chatbot.config import Settings
from chatbot.errors import InputError
from finetune import artifacts
from finetune.data import load_turns, split_by_dialogue
from finetune.examples import (
    Catalog,
    Example,
    PromptFormatter,
    examples_sha256,
    load_tokenizer,
    to_records,
)
from finetune.reply_examples import build_reply_examples
from finetune.run import write_examples
from finetune.train import TrainOptions, device_of, load_trainable, train

log = logging.getLogger(__name__)


def sample(examples: list[Example], limit: int, seed: int) -> list[Example]:
    """At most `limit` examples (0 = all), a seeded sample kept in its original order."""
    if limit <= 0 or len(examples) <= limit:
        return examples
    keep = set(random.Random(seed).sample(range(len(examples)), limit))
    return [ex for i, ex in enumerate(examples) if i in keep]


def reply_catalog(path: Path, fmt: str | None) -> tuple[Catalog, Any]:
    from chatbot.understanding.mentions import MentionFinder
    from retrieval.catalog import load_catalog

    items = load_catalog(path, fmt).items
    return Catalog(items), MentionFinder.of(items)


def build_splits(
    dialogues: Path, fmt: str, catalog_path: Path, catalog_format: str | None, settings: Settings,
    out: Path, split_seed: int = 0,
) -> tuple[dict[str, list[Example]], dict[str, Any]]:  # fmt: skip
    """Reply examples of the train and dev splits, with their stats."""
    data = load_turns(dialogues, fmt, out)
    splits = split_by_dialogue(data.turns, split_seed)
    catalog, index = reply_catalog(catalog_path, catalog_format)
    formatter = PromptFormatter(load_tokenizer(settings))
    examples, stats = {}, {}
    for name in ("train", "dev"):
        examples[name], st = build_reply_examples(splits[name], catalog, index, formatter)
        stats[name] = st.to_dict()
    stats["data_sha256"] = data.sha256
    return examples, stats


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    examples, stats = build_splits(
        args.dialogues, args.format, args.catalog, args.catalog_format, settings, out,
        args.split_seed,
    )  # fmt: skip
    train_ex = sample(examples["train"], args.max_train, args.seed)
    dev_ex = sample(examples["dev"], args.max_dev, args.seed)
    if not train_ex:
        raise InputError(f"no usable reply examples in {args.dialogues}: {stats['train']}")
    log.info("reply examples: %d train, %d dev (%s)", len(train_ex), len(dev_ex), stats)
    write_examples(out / "examples", train_ex, dev_ex)
    opts = TrainOptions(
        out=out, epochs=args.epochs, max_steps=args.max_steps, seed=args.seed,
        eval_steps=args.eval_steps, learning_rate=args.lr, batch_size=args.batch_size,
        grad_accum=args.grad_accum, lora_layers=args.lora_layers,
    )  # fmt: skip
    model, tokenizer = load_trainable(settings, opts)
    outcome = train(
        model, tokenizer, to_records(train_ex), to_records(dev_ex), opts,
        device=device_of(settings),
    )  # fmt: skip
    artifacts.save_adapter(outcome.trainer.model, out)
    record = {
        "task": "reply",
        "base_model": settings.llm.model,
        "config": {"train": opts.to_dict(), "llm": settings.llm.model_dump(mode="json")},
        "data": {"dialogues": str(args.dialogues), "catalog": str(args.catalog)},
        "example_stats": stats,
        "n_train": len(train_ex),
        "n_dev": len(dev_ex),
        "examples_sha256": examples_sha256([*train_ex, *dev_ex]),
        "split": {"by": "dialogue", "seed": args.split_seed, "test": "never read"},
        "dev_metrics": outcome.dev_metrics,
        "training": {
            "global_step": outcome.global_step,
            "best_checkpoint": outcome.best_checkpoint,
            "seconds": round(outcome.train_seconds, 1),
            "steps_per_second": outcome.steps_per_second,
        },
    }
    artifacts.write_record(out, record)
    artifacts.plot_loss(outcome.log_history, out / artifacts.LOSS_PLOT, title="reply adapter")
    return record


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dialogues", type=Path, required=True)
    p.add_argument("--format", default="redial")
    p.add_argument("--catalog", type=Path, required=True)
    p.add_argument("--catalog-format", default="redial")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-train", type=int, default=1500, help="train examples (0 = all)")
    p.add_argument("--max-dev", type=int, default=96, help="dev examples (0 = all)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--eval-steps", type=int)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=2)
    p.add_argument("--lora-layers", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    record = run(parser().parse_args(argv))
    log.info("done: %s", json.dumps(record["dev_metrics"]))


if __name__ == "__main__":
    main()
