"""Serve a learned ranker (LightGBM lambdarank) over the widened pool; weighted RRF without one.

    ranker = LearnedRanker.load(Path("runs/ranker"))          # model.txt + ranker.json
    ids = rank_pool(ranker, signals, facts, conversation, weights=weights)
    ids = rank_pool(None, signals, facts, conversation, weights=weights)  # the RRF fallback
    served = ServedRanker(ranker)          # what `retrieval.candidates.generate_candidates` takes
    cands = served.rank(store, collab, cf, query, conversation)

`ranker.json` records the feature names the model was fitted on, the pool depth and the RRF
weights its `rrf_*` features used; a model whose features differ from
`retrieval.ranking_features.FEATURES` is refused (refit it), never silently misread.
Fitting lives in `finetune.ranker_fit`; this module only loads, scores and falls back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.candidates import RRF_K
from retrieval.collab import CollabSignals
from retrieval.errors import RetrievalError
from retrieval.interaction_cf import InteractionCF
from retrieval.ranking_features import (
    FEATURES,
    CatalogFacts,
    TurnSignals,
    build_features,
    rrf_order,
    turn_signals,
    weighted_rrf,
)
from retrieval.store import ItemStore
from retrieval.types import Candidate, Query

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
META_FILE = "ranker.json"


@dataclass
class LearnedRanker:
    booster: Any  # lightgbm.Booster
    depth: int  # each signal's top `depth` forms the pool
    weights: dict[str, float]  # RRF weights of the rrf_* features (and of the fallback)
    meta: dict[str, Any] = field(default_factory=dict)

    def score(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)

    def importances(self) -> dict[str, float]:
        """Total split gain per feature, largest first."""
        gains = self.booster.feature_importance(importance_type="gain")
        pairs = sorted(zip(FEATURES, gains, strict=True), key=lambda p: -p[1])
        return {name: float(g) for name, g in pairs}

    def save(self, folder: Path) -> None:
        """Write model.txt and ranker.json, each atomically (tmp + os.replace)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "features": list(FEATURES), "depth": self.depth}
        meta["weights"] = self.weights
        model_tmp = folder / (MODEL_FILE + ".tmp")
        self.booster.save_model(str(model_tmp))
        os.replace(model_tmp, folder / MODEL_FILE)
        meta_tmp = folder / (META_FILE + ".tmp")
        meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(meta_tmp, folder / META_FILE)

    @classmethod
    def load(cls, folder: Path) -> LearnedRanker:
        import lightgbm as lgb

        folder = Path(folder)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            booster = lgb.Booster(model_file=str(folder / MODEL_FILE))
        except FileNotFoundError as e:
            raise RetrievalError(
                f"no learned ranker in {folder}: run `recochat fit-ranker --out {folder}` "
                "or unset the ranker to use weighted RRF"
            ) from e
        except (ValueError, lgb.basic.LightGBMError) as e:
            raise RetrievalError(f"learned ranker in {folder} is unreadable ({e}): refit it") from e
        if meta.get("features") != list(FEATURES):
            raise RetrievalError(
                f"learned ranker in {folder} was fitted on other features: refit it"
            )
        return cls(booster, int(meta["depth"]), dict(meta["weights"]), meta)


def rank_pool(
    ranker: LearnedRanker | None,
    signals: TurnSignals,
    facts: CatalogFacts,
    conversation: str,
    *,
    weights: Mapping[str, float],
    depth: int = 100,
) -> list[str]:
    """The pool's ids, best first: by the ranker when there is one, else by weighted RRF over
    each signal's top `depth` (ties by id, as `retrieval.candidates.fuse`)."""
    if ranker is None:
        return rrf_order(weighted_rrf(signals.ranked, weights, depth))
    pool, x = build_features(
        signals, facts, conversation, depth=ranker.depth, weights=ranker.weights
    )
    if not pool:
        return []
    scores = ranker.score(x)
    order = sorted(range(len(pool)), key=lambda n: (-scores[n], pool[n]))
    return [pool[n] for n in order]


class ServedRanker:
    """A `LearnedRanker` served on a store (`retrieval.candidates.PoolRanker`): the catalog
    facts are built once per index version and shared by every turn of the process."""

    def __init__(self, model: LearnedRanker) -> None:
        self.model = model
        self._facts: tuple[int, CatalogFacts] | None = None
        self._lock = threading.Lock()

    @property
    def depth(self) -> int:
        return self.model.depth

    def facts(self, store: ItemStore) -> CatalogFacts:
        version = store.version()
        with self._lock:
            if self._facts is None or self._facts[0] != version:
                self._facts = (version, CatalogFacts.from_store(store))
            return self._facts[1]

    def rank(
        self,
        store: ItemStore,
        collab: CollabSignals | None,
        cf: InteractionCF | None,
        query: Query,
        conversation: str,
    ) -> list[Candidate]:
        """The pool (every signal's top `depth`) by model score, ties by id; each candidate's
        `signals` holds 1 / (RRF_K + rank) per signal it came from, as the RRF path does."""
        facts = self.facts(store)
        signals = turn_signals(store, collab, cf, query, depth=self.depth, facts=facts)
        pool, x = build_features(
            signals, facts, conversation, depth=self.depth, weights=self.model.weights
        )
        if not pool:
            return []
        scores = self.model.score(x)
        ranks = {
            name: {i: r for r, i in enumerate(ids[: self.depth], start=1)}
            for name, ids in signals.ranked.items()
        }
        order = sorted(range(len(pool)), key=lambda n: (-scores[n], pool[n]))
        return [
            Candidate(
                item=facts.items[pool[n]],
                score=float(scores[n]),
                signals={
                    name: 1.0 / (RRF_K + r[pool[n]]) for name, r in ranks.items() if pool[n] in r
                },
            )
            for n in order
        ]
