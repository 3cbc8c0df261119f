"""QLoRA-tune the reply writer on logged recommender responses (ReDial `resp`).

    recochat finetune --task reply \\
        --dialogues ../shared/data/redial/valid_data_processed.jsonl --format redial \\
        --catalog ../shared/data/redial/id2info.json --catalog-format redial \\
        --max-train-examples 256 --max-dev-examples 32 --out runs/reply-adapter
    # serve it: llm.reply_adapter = "runs/reply-adapter" (recochat.toml) or RECOCHAT_LLM__REPLY_ADAPTER

Split by dialogue (`split_of`, seed 0): train examples are learned from, dev examples select
the checkpoint (lowest dev loss), test dialogues are never read here. Examples come from
`finetune.reply_examples` (the served reply prompt); training is `finetune.train` unchanged.
The options are parsed in `finetune.cli` (`--task reply`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
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


@dataclass
class ReplyJob:
    """One reply fine-tuning run: the logged dialogues, their catalog, and training knobs."""

    dialogues: Path
    catalog: Path
    train: TrainOptions
    fmt: str = "redial"
    catalog_format: str | None = "redial"
    max_train: int = 1500  # train examples (0 = all)
    max_dev: int = 96  # dev examples (0 = all)
    seed: int = 0
    split_seed: int = 0


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


def run(job: ReplyJob, settings: Settings) -> dict[str, Any]:
    """Build the reply examples, train, write the adapter and its record; returns the record."""
    opts = job.train
    out: Path = opts.out
    out.mkdir(parents=True, exist_ok=True)
    examples, stats = build_splits(
        job.dialogues, job.fmt, job.catalog, job.catalog_format, settings, out, job.split_seed
    )
    train_ex = sample(examples["train"], job.max_train, job.seed)
    dev_ex = sample(examples["dev"], job.max_dev, job.seed)
    if not train_ex:
        raise InputError(f"no usable reply examples in {job.dialogues}: {stats['train']}")
    log.info("reply examples: %d train, %d dev (%s)", len(train_ex), len(dev_ex), stats)
    write_examples(out / "examples", train_ex, dev_ex)
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
        "data": {"dialogues": str(job.dialogues), "catalog": str(job.catalog)},
        "example_stats": stats,
        "n_train": len(train_ex),
        "n_dev": len(dev_ex),
        "examples_sha256": examples_sha256([*train_ex, *dev_ex]),
        "split": {"by": "dialogue", "seed": job.split_seed, "test": "never read"},
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
