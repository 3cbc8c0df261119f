"""Fit the learned ranker from dialogues: train-split turns, early stopping on dev turns.

    data = RankerData.build(settings, store, turns, cf=cf, titles=titles, depth=100)
    ranker, report = fit_ranker(data.groups("train"), data.groups("dev"), weights=weights)
    ranker.save(Path("runs/ranker"))

Signals are the served ones (`retrieval.ranking_features.turn_signals`). The dialogue-log
signals (co-occurrence, dialogue popularity, and the credits order they break ties with) of
a train turn come from the *other* train dialogues only: the train split is cut into
`folds` parts by dialogue and each part sees collab signals learned from the rest, so a turn's
own answer never boosts its candidates (as at serving time, and as `finetune.run` does for
the LLM). Dev turns see signals from the whole train split, as served. Interaction CF is
learned from logs that hold no dialogue, so it needs no folds. Labels: a pool item is relevant
when it is a gold item of the turn not mentioned before it (the novel protocol).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrieval.collab import CollabSignals
from retrieval.interaction_cf import InteractionCF
from retrieval.learned_ranker import LearnedRanker
from retrieval.ranking_features import (
    CatalogFacts,
    TurnSignals,
    add_cf_signals,
    build_features,
    log_signals,
)
from retrieval.types import Query

log = logging.getLogger(__name__)

FOLDS = 5  # each train turn sees collab from 80% of the train dialogues (dev sees 100%)
LGB_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10, 50],
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 50,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


def fold_of(dialog_id: str, folds: int, seed: int = 0) -> int:
    digest = hashlib.sha256(f"ranker-fold:{seed}:{dialog_id}".encode()).hexdigest()
    return int(digest[:8], 16) % folds


@dataclass
class PreparedTurn:
    """One turn's query and log signals (computed once; CF signals are added per model)."""

    dialog_id: str
    split: str
    query: Query
    conversation: str
    signals: TurnSignals
    gold: frozenset[str]  # novel gold ids (resolved, not mentioned before the turn)


@dataclass
class Groups:
    """LightGBM ranking data: rows of all turns, `sizes` rows per turn, 0/1 labels."""

    x: np.ndarray
    y: np.ndarray
    sizes: list[int]
    pools: list[list[str]] = field(default_factory=list)


@dataclass
class RankerData:
    turns: list[PreparedTurn]
    facts: CatalogFacts
    depth: int

    @classmethod
    def build(
        cls,
        rec: Any,  # chatbot.turn.Recommender: replays a context into a query
        store: Any,
        turns: Sequence[Any],  # RecTurns with a `split` given by `split_by`
        split_by: Mapping[str, str],  # dialog id -> "train" | "dev"
        *,
        title_ids: Mapping[str, str],  # gold / mentioned title -> catalog id
        depth: int,
        folds: int = FOLDS,
        progress_every: int = 0,
    ) -> RankerData:
        facts = CatalogFacts.from_store(store)
        _, schema = rec.catalog()
        train = [t for t in turns if split_by[t.dialog_id] == "train"]
        full = CollabSignals.from_turns(train, title_ids)
        by_fold = [
            CollabSignals.from_turns(
                [t for t in train if fold_of(t.dialog_id, folds) != f], title_ids
            )
            for f in range(folds)
        ]
        queries = []
        for turn in turns:
            state = rec.state_from_context(list(turn.context))
            queries.append(state.to_query(schema))
        prepared = []
        t0 = time.perf_counter()
        served = store.embedder
        store.embedder = _BatchedQueries(served, [q.text for q in queries])
        try:
            for n, (turn, query) in enumerate(zip(turns, queries, strict=True), 1):
                split = split_by[turn.dialog_id]
                collab = by_fold[fold_of(turn.dialog_id, folds)] if split == "train" else full
                signals = log_signals(store, collab, query, depth=depth, facts=facts)
                mentioned = {title_ids[m] for m in turn.mentioned if m in title_ids}
                known = getattr(turn, "gold_ids", ()) or ()
                gold = {
                    found
                    for i, title in enumerate(turn.gold)
                    if (found := (known[i] if i < len(known) else None) or title_ids.get(title))
                } - mentioned
                conversation = " ".join(turn.context)
                prepared.append(
                    PreparedTurn(
                        turn.dialog_id, split, query, conversation, signals, frozenset(gold)
                    )
                )
                if progress_every and n % progress_every == 0:
                    elapsed = time.perf_counter() - t0
                    log.warning("prepared %d/%d turns (%.0fs)", n, len(turns), elapsed)
        finally:
            store.embedder = served
        return cls(prepared, facts, depth)

    def with_cf(self, cf: InteractionCF | None) -> RankerData:
        """Every turn's signals with `cf`'s interactions and rated signals (or without CF)."""
        for t in self.turns:
            if cf is None:
                t.signals.ranked.pop("interactions", None)
                t.signals.ranked.pop("rated", None)
                t.signals.cf, t.signals.rated = {}, {}
            else:
                add_cf_signals(t.signals, cf, t.query, depth=self.depth, facts=self.facts)
        return self

    def groups(self, split: str, weights: Mapping[str, float], *, positives_only: bool) -> Groups:
        rows, labels, sizes, pools = [], [], [], []
        for t in self.turns:
            if t.split != split:
                continue
            pool, x = build_features(
                t.signals, self.facts, t.conversation, depth=self.depth, weights=weights
            )
            y = np.array([i in t.gold for i in pool], dtype=np.float32)
            if positives_only and not y.any():
                continue
            rows.append(x)
            labels.append(y)
            sizes.append(len(pool))
            pools.append(pool)
        x = np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        y = np.concatenate(labels) if labels else np.zeros(0, dtype=np.float32)
        return Groups(x, y, sizes, pools)


class _BatchedQueries:
    """The store's embedder with every query of a replay embedded up front, in batches
    (one forward pass per 64 queries instead of one per query; same model and vectors)."""

    def __init__(self, inner: Any, texts: Sequence[str]) -> None:
        from retrieval.embeddings import normalize_query

        self.inner = inner
        self._normalize = normalize_query
        unique = sorted({normalize_query(t) for t in texts if t.strip()})
        vectors = inner.embed_documents(unique) if unique else []
        self._vectors = dict(zip(unique, vectors, strict=True))

    def embed_query(self, text: str) -> list[float]:
        found = self._vectors.get(self._normalize(text))
        return list(found) if found is not None else self.inner.embed_query(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)


def fit_ranker(
    train: Groups,
    dev: Groups,
    *,
    depth: int,
    weights: Mapping[str, float],
    rounds: int = 1000,
    patience: int = 50,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> tuple[LearnedRanker, dict[str, Any]]:
    """LightGBM lambdarank on `train`, early-stopped on `dev` NDCG@10; returns the ranker and
    a report (rounds, best dev NDCG@10/@50, seconds)."""
    import lightgbm as lgb

    from chatbot.errors import InputError
    from retrieval.ranking_features import FEATURES

    if not train.sizes or not dev.sizes:
        raise InputError(
            "no train or dev turn has a gold item among its candidates: "
            "check that the dialogues' titles match the indexed catalog"
        )
    config = {**LGB_PARAMS, **(params or {}), "seed": seed}
    train_set = lgb.Dataset(train.x, train.y, group=train.sizes, feature_name=list(FEATURES))
    dev_set = lgb.Dataset(dev.x, dev.y, group=dev.sizes, reference=train_set)
    t0 = time.perf_counter()
    booster = lgb.train(
        config,
        train_set,
        num_boost_round=rounds,
        valid_sets=[dev_set],
        valid_names=["dev"],
        callbacks=[lgb.early_stopping(patience, first_metric_only=True, verbose=False)],
    )
    seconds = time.perf_counter() - t0
    best = booster.best_score.get("dev", {})
    report = {
        "rounds": booster.best_iteration,
        "dev_ndcg@10": float(best.get("ndcg@10", 0.0)),
        "dev_ndcg@50": float(best.get("ndcg@50", 0.0)),
        "fit_seconds": round(seconds, 2),
        "train_turns": len(train.sizes),
        "train_rows": int(len(train.y)),
        "params": {k: v for k, v in config.items() if k != "eval_at"},
    }
    meta = {"fit": report}
    ranker = LearnedRanker(booster, depth, dict(weights), meta)
    return ranker, report


def fit_from_dialogues(
    settings: Any,  # chatbot.config.Settings: the home whose index is served
    dialogues: Any,  # path of a dialogue file (finetune.data.FORMATS)
    fmt: str,
    out: Any,  # folder for model.txt + ranker.json
    *,
    cf: InteractionCF | None = None,
    weights: Mapping[str, float],
    depth: int = 100,
    split_seed: int = 0,
    workdir: Any = None,
) -> dict[str, Any]:
    """`recochat fit-ranker`: fit on the train split of `dialogues`, early-stop on its dev
    split (test never read), save to `out`; returns the fit report."""
    from pathlib import Path

    from chatbot.errors import InputError
    from chatbot.indexing import open_store
    from chatbot.turn import Recommender
    from finetune.data import load_turns, split_by_dialogue
    from retrieval.titles import TitleIndex

    store = open_store(settings)
    items = store.all_items()
    if not items:
        raise InputError("no catalog is indexed: run `recochat index --catalog PATH` first")
    data = load_turns(dialogues, fmt, Path(workdir or out))
    splits = split_by_dialogue(data.turns, split_seed)
    if not splits["train"] or not splits["dev"]:
        raise InputError(f"{dialogues}: need turns in both the train and dev splits to fit")
    titles = TitleIndex(items)
    turns = [*splits["train"], *splits["dev"]]
    names = {n for t in turns for n in (*t.gold, *t.mentioned)}
    title_ids = {n: i for n in names if (i := titles.lookup(n)) is not None}
    split_by = {t.dialog_id: s for s, part in splits.items() for t in part}
    rec = Recommender(settings, store, None, None)
    prepared = RankerData.build(rec, store, turns, split_by, title_ids=title_ids, depth=depth)
    prepared.with_cf(cf)
    ranker, report = fit_ranker(
        prepared.groups("train", weights, positives_only=True),
        prepared.groups("dev", weights, positives_only=True),
        depth=depth,
        weights=weights,
        seed=split_seed,
    )
    ranker.save(Path(out))
    return report
