"""Per-candidate features for the learned ranker, over a widened pool of every signal's top N.

    facts = CatalogFacts.from_store(store)                       # once per catalog version
    signals = turn_signals(store, collab, cf, query, depth=100, facts=facts)
    pool, x = build_features(signals, facts, query, conversation)

The pool is the union of each signal's top `depth` (signals as in `retrieval.candidates`, plus
`interactions` and `rated` from `retrieval.interaction_cf`). Each row holds, for every signal,
the candidate's rank in it (NaN: not in its list) and its raw score computed for every pool item
(dense and liked cosine, co-occurrence, shared-credit points, interaction CF score, dialogue and
rating counts), the configured weighted-RRF score and rank (today's order), and item facts
against the request: year, distance to the seeds' years, genres named in the conversation and
genre overlap with the seeds. This module fits nothing: see `retrieval.learned_ranker`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.candidates import CREDIT_POINTS, RRF_K, leading_people, rank_signals
from retrieval.collab import CollabSignals
from retrieval.filters import matches_where
from retrieval.interaction_cf import InteractionCF
from retrieval.store import ItemStore
from retrieval.types import Item, Query

LOG_SIGNALS = ("dense", "liked", "cooc", "popularity", "credits")
CF_SIGNALS = ("interactions", "rated")
ALL_SIGNALS = (*LOG_SIGNALS, *CF_SIGNALS)
SCORES = ("dense_cos", "liked_cos", "cooc", "dialogue_pop", "credit_points", "cf", "rated_count")
FACTS = ("year", "year_gap_seeds", "genres_named", "genre_overlap_seeds", "n_seeds", "has_text")
FEATURES = (
    *(f"rank_{s}" for s in ALL_SIGNALS),
    *SCORES,
    "n_signals",
    "rrf_score",
    "rrf_rank",
    *FACTS,
)


@dataclass
class CatalogFacts:
    """The catalog as arrays: unit item vectors, years, genres, credits (built once)."""

    items: dict[str, Item]
    index: dict[str, int]
    vectors: np.ndarray

    @classmethod
    def from_store(cls, store: ItemStore) -> CatalogFacts:
        items = {it.item_id: it for it in store.all_items()}
        ids = sorted(items)
        vectors = np.asarray(store.embeddings(ids), dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return cls(items, {i: n for n, i in enumerate(ids)}, vectors)

    def vector(self, ids: Sequence[str]) -> np.ndarray:
        return self.vectors[[self.index[i] for i in ids]]


@dataclass
class TurnSignals:
    """Each signal's ranked ids for one query, and the raw scores the features read."""

    ranked: dict[str, list[str]] = field(default_factory=dict)
    seeds: list[str] = field(default_factory=list)
    query_vector: np.ndarray | None = None
    cooc: dict[str, float] = field(default_factory=dict)
    dialogue_pop: Mapping[str, float] = field(default_factory=dict)
    cf: dict[str, float] = field(default_factory=dict)
    rated: Mapping[str, float] = field(default_factory=dict)


def turn_signals(
    store: ItemStore,
    collab: CollabSignals | None,
    cf: InteractionCF | None,
    query: Query,
    *,
    depth: int,
    facts: CatalogFacts,
) -> TurnSignals:
    """Every signal's top `depth` (candidates' five, then interaction CF and rating counts)."""
    signals = log_signals(store, collab, query, depth=depth, facts=facts)
    if cf is not None:
        add_cf_signals(signals, cf, query, depth=depth, facts=facts)
    return signals


def log_signals(
    store: ItemStore, collab: CollabSignals | None, query: Query, *, depth: int, facts: CatalogFacts
) -> TurnSignals:
    """The five signals of `retrieval.candidates.rank_signals`, with the scores they rank by."""
    out = TurnSignals()
    base = rank_signals(store, collab, query, depth=depth)
    out.ranked = {name: [it.item_id for it in items] for name, items in base.ranked.items()}
    out.seeds = [
        i for i in dict.fromkeys([*query.liked_ids, *query.mentioned_ids]) if i in facts.index
    ]
    if query.text.strip():
        out.query_vector = np.asarray(store.embedder.embed_query(query.text), dtype=np.float32)
    if collab is not None:
        out.dialogue_pop = collab.popularity
        if out.seeds:
            out.cooc = dict(collab.related(out.seeds, k=len(facts.index), exclude=_blocked(query)))
    return out


def add_cf_signals(
    signals: TurnSignals, cf: InteractionCF, query: Query, *, depth: int, facts: CatalogFacts
) -> TurnSignals:
    """Add `interactions` (CF from the seeds) and `rated` (positives per item) to `signals`."""
    blocked = _blocked(query)

    def allowed(item_id: str) -> bool:
        item = facts.items.get(item_id)
        return (
            item is not None
            and item_id not in blocked
            and matches_where(item.metadata, query.where)
        )

    signals.rated = cf.popularity()
    signals.ranked["rated"] = [i for i, _ in cf.popular(len(cf.item_ids)) if allowed(i)][:depth]
    signals.cf = {}
    signals.ranked.pop("interactions", None)
    if signals.seeds:
        signals.cf = cf.scores(signals.seeds)
        ranked = cf.related(signals.seeds, k=len(signals.cf), exclude=blocked)
        signals.ranked["interactions"] = [i for i, _ in ranked if allowed(i)][:depth]
    return signals


def _blocked(query: Query) -> set[str]:
    return set(query.exclude_ids) | set(query.liked_ids) | set(query.mentioned_ids)


def weighted_rrf(
    ranked: Mapping[str, Sequence[str]], weights: Mapping[str, float], depth: int
) -> dict[str, float]:
    """sum_s weight_s / (RRF_K + rank_s) over each signal's top `depth` (as candidates.fuse)."""
    scores: dict[str, float] = {}
    for name, ids in ranked.items():
        weight = weights.get(name, 0.0)
        if weight == 0:
            continue
        for rank, item_id in enumerate(ids[:depth], start=1):
            scores[item_id] = scores.get(item_id, 0.0) + weight / (RRF_K + rank)
    return scores


def rrf_order(scores: Mapping[str, float]) -> list[str]:
    return sorted(scores, key=lambda i: (-scores[i], i))


def pool_of(signals: TurnSignals, depth: int) -> list[str]:
    """The union of every signal's top `depth`, in a fixed order (first seen, signal order)."""
    pool: dict[str, None] = {}
    for name in ALL_SIGNALS:
        pool.update(dict.fromkeys(signals.ranked.get(name, [])[:depth]))
    return list(pool)


def build_features(
    signals: TurnSignals,
    facts: CatalogFacts,
    conversation: str,
    *,
    depth: int,
    weights: Mapping[str, float],
) -> tuple[list[str], np.ndarray]:
    """The pool (union of top `depth`) and its feature matrix, columns as FEATURES."""
    pool = pool_of(signals, depth)
    if not pool:
        return [], np.zeros((0, len(FEATURES)), dtype=np.float32)
    x = np.full((len(pool), len(FEATURES)), np.nan, dtype=np.float32)
    col = {name: n for n, name in enumerate(FEATURES)}
    for name in ALL_SIGNALS:
        positions = {i: r for r, i in enumerate(signals.ranked.get(name, [])[:depth], start=1)}
        x[:, col[f"rank_{name}"]] = [positions.get(i, np.nan) for i in pool]
    x[:, col["n_signals"]] = np.sum(~np.isnan(x[:, : len(ALL_SIGNALS)]), axis=1)
    vectors = facts.vector(pool)
    if signals.query_vector is not None:
        x[:, col["dense_cos"]] = vectors @ signals.query_vector
    if signals.seeds:
        centre = facts.vector(signals.seeds).mean(axis=0)
        x[:, col["liked_cos"]] = vectors @ (centre / max(float(np.linalg.norm(centre)), 1e-12))
    x[:, col["cooc"]] = [signals.cooc.get(i, 0.0) for i in pool]
    x[:, col["dialogue_pop"]] = [math.log1p(signals.dialogue_pop.get(i, 0.0)) for i in pool]
    x[:, col["credit_points"]] = _credit_points(facts, signals.seeds, pool)
    x[:, col["cf"]] = [signals.cf.get(i, 0.0) for i in pool]
    x[:, col["rated_count"]] = [math.log1p(signals.rated.get(i, 0.0)) for i in pool]
    rrf = weighted_rrf(signals.ranked, weights, depth)
    order = {i: r for r, i in enumerate(rrf_order(rrf), start=1)}
    x[:, col["rrf_score"]] = [rrf.get(i, 0.0) * 100 for i in pool]
    x[:, col["rrf_rank"]] = [order.get(i, np.nan) for i in pool]
    _item_facts(x, col, facts, signals.seeds, pool, conversation.lower())
    return pool, x


def _credit_points(facts: CatalogFacts, seeds: Sequence[str], pool: Sequence[str]) -> list[float]:
    def credits(item: Item) -> list[tuple[str, str]]:
        return [(f, p.lower()) for f in CREDIT_POINTS for p in leading_people(item, f)]

    sought: dict[tuple[str, str], float] = {}
    for seed in seeds:
        for credit in credits(facts.items[seed]):
            sought[credit] = sought.get(credit, 0.0) + CREDIT_POINTS[credit[0]]
    if not sought:
        return [0.0] * len(pool)
    return [sum(sought.get(c, 0.0) for c in credits(facts.items[i])) for i in pool]


def _item_facts(
    x: np.ndarray,
    col: dict[str, int],
    facts: CatalogFacts,
    seeds: Sequence[str],
    pool: Sequence[str],
    conversation: str,
) -> None:
    seed_years = [y for s in seeds if (y := facts.items[s].year)]
    seed_genres = {g for s in seeds for g in facts.items[s].genres}
    mean_year = float(np.mean(seed_years)) if seed_years else None
    for row, item_id in enumerate(pool):
        item = facts.items[item_id]
        genres = item.genres
        if item.year:
            x[row, col["year"]] = item.year
            if mean_year is not None:
                x[row, col["year_gap_seeds"]] = abs(item.year - mean_year)
        x[row, col["genres_named"]] = sum(1 for g in genres if g and g in conversation)
        if seed_genres and genres:
            union = seed_genres | set(genres)
            x[row, col["genre_overlap_seeds"]] = len(seed_genres & set(genres)) / len(union)
        x[row, col["has_text"]] = float("description" in item.metadata)
    x[:, col["n_seeds"]] = len(seeds)
