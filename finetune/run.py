"""One fine-tuning run end to end: dialogues → split → examples → QLoRA → output dir.

The trip: `run_job` splits the dialogues (`finetune.data`), builds serving-time examples
(`finetune.examples.ExampleBuilder`: candidates from the product's own retrieval,
`chatbot.turn.Recommender`), trains (`finetune.train`) and writes the adapter and its record
(`finetune.artifacts`). With `catalog`, the catalog is indexed into its own collection and
collaborative signals are learned from the train split only. Without `catalog`, the indexed
store and collab file of `settings.home` are used as served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.config import Settings
from chatbot.errors import InputError
from dialogues.schema import RecTurn
from finetune import artifacts
from finetune.data import DialogueData, load_turns, split_by_dialogue
from finetune.examples import ExampleBuilder, examples_sha256, load_tokenizer, to_records
from finetune.train import TrainOptions, TrainOutcome, device_of, load_trainable, train
from finetune.turn_examples import Example, ExampleStats

log = logging.getLogger(__name__)

TRAIN_MODE = "pointwise"  # what `--rerank-mode auto` trains without an --init-adapter


@dataclass
class FinetuneJob:
    dialogues: Path
    train: TrainOptions
    fmt: str = "jsonl"
    catalog: Path | None = None
    catalog_format: str | None = None
    split_seed: int = 0  # must match `recochat eval --split-seed`
    reason_fraction: float = 0.1  # share of turns that also give a reason example
    negatives: int = 3  # pointwise mode: "no" examples per turn, drawn from the retrieved top k
    depth: int | None = None  # pointwise only: train examples from the retrieved top `depth`
    dev_rerank_limit: int = 200  # dev examples scored for rerank hit@1 after training
    max_dev_examples: int = 256  # 0 = all; caps the cost of each dev evaluation on CPU
    progress: bool = True


@dataclass
class FinetuneResult:
    out: Path
    record: dict[str, Any]
    outcome: TrainOutcome
    train_examples: list[Example] = field(default_factory=list)
    dev_examples: list[Example] = field(default_factory=list)


def cap_by_dialogue(turns: list[RecTurn], limit: int, seed: int) -> list[RecTurn]:
    """At most `limit` turns, taken as whole dialogues in a seeded order (0 = all)."""
    if limit <= 0 or len(turns) <= limit:
        return turns
    sizes = Counter(t.dialog_id for t in turns)

    def order(dialog_id: str) -> str:
        return hashlib.sha256(f"dev:{seed}:{dialog_id}".encode()).hexdigest()

    keep: set[str] = set()
    count = 0
    for dialog_id in sorted(sizes, key=order):
        if count + sizes[dialog_id] > limit and keep:
            break
        keep.add(dialog_id)
        count += sizes[dialog_id]
    return [t for t in turns if t.dialog_id in keep]


def run_job(job: FinetuneJob, settings: Settings) -> FinetuneResult:
    out = job.train.out
    out.mkdir(parents=True, exist_ok=True)
    data = load_turns(job.dialogues, job.fmt, out)
    splits = split_by_dialogue(data.turns, job.split_seed)
    if not splits["train"]:
        raise InputError(
            f"no usable training turns in {job.dialogues}: {len(data.turns)} recommender turns "
            f"read, {len(data.rejects)} unreadable lines, none in the train split"
        )
    settings = with_train_mode(settings, job)
    tokenizer = load_tokenizer(settings)
    builder = ExampleBuilder(settings, job, tokenizer, splits["train"])
    train_examples, train_stats = builder.build(splits["train"], train=True)
    dev_turns = cap_by_dialogue(splits["dev"], job.max_dev_examples, job.split_seed)
    dev_examples, dev_stats = builder.build(dev_turns, train=False)
    if not train_examples:
        raise InputError(
            f"no usable training examples in {job.dialogues}: {train_stats.turns} train turns, "
            f"{train_stats.no_gold_in_catalog} gold titles not in the catalog, "
            f"{train_stats.gold_excluded} gold items already mentioned: check --catalog"
        )
    log.info(
        "examples: %d train (%d reasons), %d dev", len(train_examples), train_stats.reasons,
        len(dev_examples),
    )  # fmt: skip

    write_examples(out / "examples", train_examples, dev_examples)
    device = device_of(settings)
    model, tokenizer = load_trainable(settings, job.train)
    outcome = train(
        model, tokenizer, to_records(train_examples), to_records(dev_examples), job.train,
        device=device,
    )  # fmt: skip
    from finetune.train import rerank_dev_metrics

    best = outcome.trainer.model  # the best dev checkpoint's weights, loaded at the end
    dev_metrics = dict(outcome.dev_metrics)
    dev_metrics.update(rerank_dev_metrics(best, tokenizer, dev_examples, job.dev_rerank_limit))
    outcome.dev_metrics = dev_metrics
    artifacts.save_adapter(best, out)
    record = build_record(job, settings, data, splits, train_examples, dev_examples,
                          train_stats, dev_stats, outcome)  # fmt: skip
    artifacts.write_record(out, record)
    artifacts.plot_loss(
        outcome.log_history, out / artifacts.LOSS_PLOT, title=f"finetune {out.name}"
    )
    return FinetuneResult(out, record, outcome, train_examples, dev_examples)


def with_train_mode(settings: Settings, job: FinetuneJob) -> Settings:
    """Settings with the reranker mode to train resolved: the configured one, for 'auto' the
    --init-adapter's own mode, else pointwise. The adapter's record keeps it for serving."""
    from inference.model_files import rerank_mode_of

    init = job.train.init_adapter
    llm = settings.llm.model_copy(update={"adapter": init})
    mode = rerank_mode_of(llm, default=TRAIN_MODE)
    return settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"rerank_mode": mode})}
    )


def write_examples(folder: Path, train: list[Example], dev: list[Example]) -> None:
    """The exact prompt/completion pairs trained and evaluated on, for inspection."""
    from dataclasses import asdict

    folder.mkdir(parents=True, exist_ok=True)
    for name, examples in (("train", train), ("dev", dev)):
        with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for ex in examples:
                fh.write(json.dumps(asdict(ex), ensure_ascii=False) + "\n")


def lora_settings(job: FinetuneJob, outcome: TrainOutcome) -> Any:
    """The LoRA config the trained model carries (that of `--init-adapter` when continued)."""
    from finetune.train import lora_config

    model = outcome.trainer.model if outcome.trainer is not None else None
    peft_config = getattr(model, "peft_config", None)
    return peft_config["default"] if peft_config else lora_config(job.train)


def build_record(
    job: FinetuneJob,
    settings: Settings,
    data: DialogueData,
    splits: dict[str, list[RecTurn]],
    train_examples: list[Example],
    dev_examples: list[Example],
    train_stats: ExampleStats,
    dev_stats: ExampleStats,
    outcome: TrainOutcome,
) -> dict[str, Any]:
    import peft
    import torch
    import transformers
    import trl

    sft = outcome.trainer.args.to_dict() if outcome.trainer is not None else {}
    return {
        "base_model": settings.llm.model,
        "device": outcome.device,
        "config": {
            "train": job.train.to_dict(),
            "lora": {
                k: v
                for k, v in lora_settings(job, outcome).to_dict().items()
                if not k.startswith("_")
            },
            "quantization": "4-bit NF4, double quant, bf16 compute (bitsandbytes)",
            "sft": sft,
            "llm": settings.llm.model_dump(mode="json"),
            "retrieval": settings.retrieval.model_dump(mode="json"),
            "prompts": settings.prompts.model_dump(mode="json"),
            "reason_fraction": job.reason_fraction,
        },
        "data": {
            "dialogues": str(job.dialogues),
            "format": job.fmt,
            "catalog": str(job.catalog) if job.catalog else None,
            "catalog_format": job.catalog_format,
            "unreadable_lines": len(data.rejects),
            "turns": len(data.turns),
            "train_turns": len(splits["train"]),
            "dev_turns": len(splits["dev"]),
            "max_dev_examples": job.max_dev_examples,
        },
        "data_sha256": data.sha256,
        "examples_sha256": examples_sha256([*train_examples, *dev_examples]),
        "n_train": len(train_examples),
        "n_dev": len(dev_examples),
        "example_stats": {"train": train_stats.to_dict(), "dev": dev_stats.to_dict()},
        "split": {"by": "dialogue", "seed": job.split_seed, "test": "never read"},
        "seed": job.train.seed,
        "dev_metrics": outcome.dev_metrics,
        "training": {
            "global_step": outcome.global_step,
            "resumed_from": outcome.resumed_from,
            "best_checkpoint": outcome.best_checkpoint,
            "seconds": round(outcome.train_seconds, 1),
            "epoch_seconds": [round(s, 1) for s in outcome.epoch_seconds],
            "steps_per_second": outcome.steps_per_second,
            "examples_per_second": outcome.examples_per_second,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "trl": trl.__version__,
        },
    }
