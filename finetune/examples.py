"""Serving-time training examples for a fine-tuning run: `ExampleBuilder` and `build_examples`.

`ExampleBuilder` holds the serving path a run replays (the catalog's store, collaborative
signals learned from the train split only, the served prompt formatting); `build_examples`
turns dialogue turns into examples through it, one turn at a time (`finetune.turn_examples`:
what one turn yields). Train turns see signals from the other half of the train dialogues
(2 folds, `fold_of`), so a turn's own answer never boosts its candidates, as at serving time.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chatbot.config import Settings
from chatbot.errors import InputError
from dialogues.schema import RecTurn
from finetune.turn_examples import (
    Catalog,
    Example,
    ExampleStats,
    ReasonPrompt,
    Recommender,
    reason_example,
    rerank_example,
    score_examples,
)


def catalog_collection(path: Path, fmt: str | None, settings: Settings) -> str:
    """Collection for a catalog file: same bytes, format and embedder → same vectors, reused."""
    h = hashlib.sha256(Path(path).read_bytes())
    h.update(json.dumps([fmt, settings.catalog.model_dump(), settings.retrieval.embedder]).encode())
    return f"finetune-{h.hexdigest()[:16]}"


def fold_of(dialog_id: str, seed: int) -> int:
    return int(hashlib.sha256(f"fold:{seed}:{dialog_id}".encode()).hexdigest()[:8], 16) % 2


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

    def __init__(self, settings: Settings, job: Any, tokenizer: Any, train: list[RecTurn]):
        # job: the `finetune.run.FinetuneJob` (its catalog, split seed and example options)
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


def build_examples(
    turns: Sequence[RecTurn],
    rec: Recommender,
    catalog: Catalog,
    *,
    k: int,
    seed: int = 0,
    reason_prompt: ReasonPrompt | None = None,
    reason_fraction: float = 0.1,
    progress: bool = False,
    pointwise: bool = False,
    negatives: int = 3,
) -> tuple[list[Example], ExampleStats]:
    """Rerank examples for `turns` (+ about `reason_fraction` reason examples), in turn order:
    one listwise example per turn, or (`pointwise`) its golds and `negatives` score examples."""
    from tqdm import tqdm

    stats = ExampleStats(turns=len(turns))
    out: list[Example] = []
    for turn in tqdm(turns, desc="examples", unit="turn", disable=not progress):
        if pointwise:
            made, prep, golds = score_examples(
                turn, rec, catalog, stats, k=k, seed=seed, negatives=negatives
            )
        else:
            example, prep, golds = rerank_example(turn, rec, catalog, stats, k=k, seed=seed)
            made = [example] if example is not None else []
        if not made:
            stats.skipped += 1
            continue
        out += made
        rng = random.Random(f"reason:{seed}:{turn.dialog_id}:{turn.turn_id}")
        if reason_prompt is not None and rng.random() < reason_fraction:
            words = str(getattr(prep, "user_words", ""))
            extra = reason_example(turn, golds[0], words, reason_prompt)
            if extra is not None:
                out.append(extra)
                stats.reasons += 1
    stats.examples = len(out)
    return out, stats


def examples_sha256(examples: Iterable[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(asdict(ex), sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def to_records(examples: Iterable[Example]) -> list[dict[str, str]]:
    """prompt/completion records for a trl prompt-completion dataset (loss on completion only)."""
    return [{"prompt": ex.prompt, "completion": ex.completion} for ex in examples]
