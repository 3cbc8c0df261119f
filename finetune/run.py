"""One fine-tuning run end to end: dialogues → split → serving-time examples → QLoRA → output dir.

Candidates come from the product's own retrieval (`chatbot.turn.Recommender`). With
`catalog`, the catalog is indexed into its own collection and collaborative signals are learned
from the train split only; train turns see signals from the other half of the train dialogues
(2 folds), so a turn's own answer never boosts its candidates, as at serving time. Without
`catalog`, the indexed store and collab file of `settings.home` are used as served.
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
from finetune.examples import (
    Catalog,
    Example,
    ExampleStats,
    build_examples,
    examples_sha256,
    to_records,
)
from finetune.train import TrainOptions, TrainOutcome, device_of, load_trainable, train

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


def catalog_collection(path: Path, fmt: str | None, settings: Settings) -> str:
    """Collection for a catalog file: same bytes, format and embedder → same vectors, reused."""
    h = hashlib.sha256(Path(path).read_bytes())
    h.update(json.dumps([fmt, settings.catalog.model_dump(), settings.retrieval.embedder]).encode())
    return f"finetune-{h.hexdigest()[:16]}"


def fold_of(dialog_id: str, seed: int) -> int:
    return int(hashlib.sha256(f"fold:{seed}:{dialog_id}".encode()).hexdigest()[:8], 16) % 2


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


def load_tokenizer(settings: Settings) -> Any:
    """The training model's tokenizer (its chat template renders the prompts)."""
    from transformers import AutoTokenizer

    from inference.model_files import resolve_model_dir

    source = resolve_model_dir(settings.llm.model, settings.model_cache)
    return AutoTokenizer.from_pretrained(source, trust_remote_code=settings.llm.trust_remote_code)


class PromptFormatter:
    """The served LLM's prompt formatting (`LLM.chat_prompt` itself) without loading a model.

    Building prompts needs only the chat template; the recommender calls `chat_prompt` alone.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        from inference.llm import LLM

        return LLM.chat_prompt(self, user_text, system)  # type: ignore[arg-type]


class ExampleBuilder:
    """The serving path (store, collab signals, prompt) used to turn dialogue turns into examples."""

    def __init__(self, settings: Settings, job: FinetuneJob, tokenizer: Any, train: list[RecTurn]):
        from chatbot.indexing import field_map, open_store
        from chatbot.turn import Recommender
        from retrieval.catalog import load_catalog
        from retrieval.collab import CollabSignals

        self.settings = settings
        self.job = job
        llm = PromptFormatter(tokenizer)
        if job.catalog is not None:
            collection = catalog_collection(job.catalog, job.catalog_format, settings)
            settings = settings.model_copy(
                update={
                    "retrieval": settings.retrieval.model_copy(update={"collection": collection})
                }
            )
            loaded = load_catalog(job.catalog, job.catalog_format, field_map(settings))
            items = loaded.items
            store = open_store(settings)
            if store.count() != len({it.item_id for it in items}):
                store.sync(items, progress=job.progress)
            self.catalog = Catalog(items)
            base = CollabSignals.from_catalog(items)

            def collab_of(turns: list[RecTurn]) -> CollabSignals:
                return CollabSignals.from_turns(turns, self._title_ids(turns)) if turns else base

            seed = job.split_seed
            self.dev_rec = Recommender(settings, store, llm, collab_of(train))
            self.fold_recs = [
                Recommender(
                    settings, store, llm, collab_of([t for t in train if fold_of(t.dialog_id, seed) != f])
                )
                for f in (0, 1)
            ]  # fmt: skip
        else:
            store = open_store(settings)
            items = store.all_items()
            if not items:
                raise InputError(
                    "no catalog is indexed: pass --catalog PATH or run `recochat index` first"
                )
            self.catalog = Catalog(items)
            path = settings.collab_path
            collab = CollabSignals.load(path) if path.is_file() else None
            self.dev_rec = Recommender(settings, store, llm, collab)
            self.fold_recs = [self.dev_rec, self.dev_rec]
        self.k = settings.retrieval.k_candidates
        self.llm = llm
        self.prompt_dir = settings.prompts.dir

    def _title_ids(self, turns: list[RecTurn]) -> dict[str, str]:
        names = {n for t in turns for n in (*t.gold, *t.mentioned)}
        return {n: it.item_id for n in names if (it := self.catalog.find(n)) is not None}

    def reason_prompt(self, item: Any, user_words: str) -> str:
        from chatbot.reply.reasons import reason_prompt

        return reason_prompt(
            self.llm, item, user_words, filename=self.settings.prompts.reason,
            directory=self.prompt_dir,
        )  # fmt: skip

    def build(self, turns: list[RecTurn], *, train: bool) -> tuple[list[Example], ExampleStats]:
        job = self.job
        mode = {
            "pointwise": self.settings.llm.rerank_mode == "pointwise",
            "negatives": job.negatives,
        }
        if not train:
            return build_examples(
                turns, self.dev_rec, self.catalog, k=self.k, seed=job.train.seed,
                reason_prompt=None, progress=job.progress, **mode,
            )  # fmt: skip
        out: list[Example] = []
        total = ExampleStats()
        k = job.depth if job.depth and mode["pointwise"] else self.k  # listwise: the served k
        for f, rec in enumerate(self.fold_recs):
            part = [t for t in turns if fold_of(t.dialog_id, job.split_seed) == f]
            examples, stats = build_examples(
                part, rec, self.catalog, k=k, seed=job.train.seed,
                reason_prompt=self.reason_prompt, reason_fraction=job.reason_fraction,
                progress=job.progress, **mode,
            )  # fmt: skip
            out += examples
            for key, value in stats.to_dict().items():
                setattr(total, key, getattr(total, key) + value)
        return out, total


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
