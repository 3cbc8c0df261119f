"""Hybrid candidate generation: weighted reciprocal-rank fusion of the signals, or a learned ranker.

    cands = generate_candidates(store, collab, Query("funny heist movie", liked_ids=("m0001",)))

Signals, each a ranked list of item ids that satisfy `query.where`:
  dense      store.search(query.text)                      (skipped when the text is empty)
  liked      store.search(mean embedding of the liked and mentioned items)  (skipped with none)
  cooc       collab.related(liked + mentioned items)       (skipped without collab signals)
  popularity collab.popular(), then the catalog's own `popularity` field, then item id
  credits    items sharing a director (2 points) or a star/actor (1 point) with the liked and
             mentioned items, or directed by (2) or starring (1) a person the user asked for
             (`query.liked_people`), summed; ties by the popularity order (skipped with none)
  interactions  item-item CF from interaction logs (`retrieval.interaction_cf`), seeded by the
             liked and mentioned items (skipped without a CF model or seeds; weight 0 default)
  rated      the logs' positives per item, a popularity prior (skipped without a CF model)
  entities   collab.entity_related(query.entity_keys + liked/mentioned items): what training
             dialogues recommended after the people, genres and titles named (off by default)
A candidate's score is sum_s weight_s / (60 + rank_s); `Candidate.signals[s]` is the unweighted
1 / (60 + rank_s), plus `avoid: 0.5` when an avoid term halved the score. Excluded, liked and
mentioned items are never returned. With `diversity > 0` the final k are re-selected by MMR.
With a `ranker` (`retrieval.learned_ranker.ServedRanker`), the union of every signal's top
`ranker.depth` is ordered by the learned model instead of RRF (avoided items go last); without
one, weighted RRF is the fallback.

`generate_candidates` is `rank_signals` (the expensive part: searches) followed by `fuse`
(cheap); weight tuning (`benchmarks/tune_retrieval.py`) ranks once and fuses many times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from retrieval.collab import CollabSignals
from retrieval.entity_links import normalize_name
from retrieval.filters import matches_where
from retrieval.interaction_cf import InteractionCF
from retrieval.store import ItemStore
from retrieval.types import Candidate, Item, Query

RRF_K = 60
AVOID_PENALTY = 0.5
# Fusion order; FusionWeights fields.
SIGNALS = ("dense", "liked", "cooc", "popularity", "credits", "interactions", "rated", "entities")
# Catalog fields whose people make two items related, with points per shared name; only the
# first CREDITS_PER_FIELD names of each field count (the leads, not the whole cast).
CREDIT_POINTS = {"director": 2.0, "star": 1.0, "actor": 1.0}
CREDITS_PER_FIELD = 3


@dataclass(frozen=True)
class FusionWeights:
    dense: float = 1.0
    liked: float = 1.0
    cooc: float = 1.0
    popularity: float = 0.3
    credits: float = 1.0
    interactions: float = 0.0
    rated: float = 0.0
    entities: float = 0.0  # on where dialogues talk about people and genres (OpenDialKG)


class PoolRanker(Protocol):
    """Orders a turn's widened candidate pool (`retrieval.learned_ranker.ServedRanker`)."""

    def rank(
        self,
        store: ItemStore,
        collab: CollabSignals | None,
        cf: InteractionCF | None,
        query: Query,
        conversation: str,
    ) -> list[Candidate]: ...


@dataclass
class _Pool:
    """Fused scores being accumulated for one query."""

    items: dict[str, Item] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    signals: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, name: str, weight: float, ranked: Iterable[Item]) -> None:
        if weight == 0:
            return
        for rank, item in enumerate(ranked, start=1):
            rank_score = 1.0 / (RRF_K + rank)
            self.items.setdefault(item.item_id, item)
            self.scores[item.item_id] = self.scores.get(item.item_id, 0.0) + weight * rank_score
            self.signals.setdefault(item.item_id, {})[name] = rank_score


@dataclass
class SignalRankings:
    """Each signal's ranked items for one query, before weighting (absent: signal skipped)."""

    ranked: dict[str, list[Item]] = field(default_factory=dict)


def rank_signals(
    store: ItemStore,
    collab: CollabSignals | None,
    query: Query,
    *,
    depth: int,
    weights: FusionWeights | None = None,
    cf: InteractionCF | None = None,
) -> SignalRankings:
    """Up to `depth` allowed items per signal, best first; zero-weight signals are skipped."""
    catalog = {item.item_id: item for item in store.all_items()}
    out = SignalRankings()
    if not catalog or depth <= 0:
        return out
    blocked = set(query.exclude_ids) | set(query.liked_ids) | set(query.mentioned_ids)

    def wanted(name: str) -> bool:
        return weights is None or getattr(weights, name) != 0

    def allowed(item_id: str) -> bool:
        item = catalog.get(item_id)
        return (
            item is not None
            and item_id not in blocked
            and matches_where(item.metadata, query.where)
        )

    def dense_hits(vector: str | list[float]) -> list[Item]:
        hits = store.search(vector, depth + len(blocked), query.where)
        return [item for item, _ in hits if item.item_id not in blocked][:depth]

    if wanted("dense") and query.text.strip():
        out.ranked["dense"] = dense_hits(query.text)
    # Items the user liked or talked about, liked first; rejected ones are in neither list.
    seeds = [i for i in dict.fromkeys([*query.liked_ids, *query.mentioned_ids]) if i in catalog]
    if wanted("liked") and seeds:
        centre = store.embeddings(seeds).mean(axis=0)
        norm = float(np.linalg.norm(centre))
        if norm > 0:
            out.ranked["liked"] = dense_hits((centre / norm).tolist())
    if wanted("cooc") and collab is not None and seeds:
        related = collab.related(seeds, k=len(catalog), exclude=blocked)
        out.ranked["cooc"] = [catalog[i] for i, _ in related if allowed(i)][:depth]
    # Credits breaks ties by popularity, so the order is built when either signal needs it.
    credited = bool(seeds or query.liked_people)
    need_popular = wanted("popularity") or (wanted("credits") and credited)
    popular = _popular(catalog, collab, allowed) if need_popular else []
    if wanted("popularity"):
        out.ranked["popularity"] = popular[:depth]
    if wanted("credits") and credited:
        ranked = _shared_credits(catalog, seeds, popular, query.liked_people)
        out.ranked["credits"] = ranked[:depth]
    if cf is not None and wanted("interactions") and seeds:
        related = cf.related(seeds, k=len(catalog), exclude=blocked)
        out.ranked["interactions"] = [catalog[i] for i, _ in related if allowed(i)][:depth]
    if cf is not None and wanted("rated"):
        rated = cf.popular(k=len(cf.item_ids), exclude=blocked)
        out.ranked["rated"] = [catalog[i] for i, _ in rated if allowed(i)][:depth]
    entity_keys = [*query.entity_keys, *(f"item:{i}" for i in seeds)]
    if wanted("entities") and collab is not None and entity_keys:
        related = collab.entity_related(entity_keys, k=len(catalog), exclude=blocked)
        out.ranked["entities"] = [catalog[i] for i, _ in related if allowed(i)][:depth]
    return out


def fuse(
    rankings: SignalRankings,
    weights: FusionWeights,
    *,
    depth: int,
    avoid_terms: Iterable[str] = (),
) -> list[Candidate]:
    """Every item of the top `depth` of each signal, by weighted RRF score (ties by item id)."""
    pool = _Pool()
    for name in SIGNALS:
        pool.add(name, getattr(weights, name), rankings.ranked.get(name, [])[:depth])
    terms = tuple(avoid_terms)
    for item_id, item in pool.items.items():
        if _mentions_any(item, terms):
            pool.scores[item_id] *= AVOID_PENALTY
            pool.signals[item_id]["avoid"] = AVOID_PENALTY
    ranked = sorted(pool.scores, key=lambda i: (-pool.scores[i], i))
    return [
        Candidate(item=pool.items[i], score=pool.scores[i], signals=dict(pool.signals[i]))
        for i in ranked
    ]


def generate_candidates(
    store: ItemStore,
    collab: CollabSignals | None,
    query: Query,
    *,
    k: int = 20,
    k_retrieve: int = 100,
    weights: FusionWeights = FusionWeights(),  # noqa: B008 (frozen, so sharing it is safe)
    diversity: float = 0.0,
    cf: InteractionCF | None = None,
    ranker: PoolRanker | None = None,
    conversation: str = "",
) -> list[Candidate]:
    """At most k candidates for `query`, best first; deterministic (ties broken by item id).

    `cf` feeds the `interactions` / `rated` signals; `ranker` orders the widened pool instead
    of RRF (`conversation`: the dialogue's text, which its features read)."""
    if k <= 0:
        return []
    depth = max(k_retrieve, k)
    if ranker is not None:
        fused = _demote_avoided(
            ranker.rank(store, collab, cf, query, conversation or query.text), query.avoid_terms
        )
    else:
        rankings = rank_signals(store, collab, query, depth=depth, weights=weights, cf=cf)
        fused = fuse(rankings, weights, depth=depth, avoid_terms=query.avoid_terms)
    if diversity > 0 and len(fused) > k:
        by_id = {c.item.item_id: c for c in fused}
        scores = {c.item.item_id: c.score for c in fused}
        chosen = _mmr(store, list(by_id)[:depth], scores, k, 1.0 - diversity)
        return [by_id[i] for i in chosen]
    return fused[:k]


def _demote_avoided(ranked: list[Candidate], avoid_terms: Iterable[str]) -> list[Candidate]:
    """Candidates naming an avoided term move after the rest (order kept within each part)."""
    terms = tuple(avoid_terms)
    if not terms:
        return ranked
    kept, avoided = [], []
    for c in ranked:
        if _mentions_any(c.item, terms):
            avoided.append(Candidate(c.item, c.score, {**c.signals, "avoid": AVOID_PENALTY}))
        else:
            kept.append(c)
    return kept + avoided


def _popular(
    catalog: dict[str, Item], collab: CollabSignals | None, allowed: Callable[[str], bool]
) -> list[Item]:
    """Learned popularity first, then the catalog's `popularity` field, then item id."""
    order: list[str] = []
    if collab is not None:
        order = [i for i, _ in collab.popular(k=len(collab.popularity)) if allowed(i)]
    seen = set(order)

    def catalog_rank(item: Item) -> tuple[float, str]:
        value = item.metadata.get("popularity")
        number = (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
        )
        return (-number, item.item_id)

    rest = sorted(
        (it for i, it in catalog.items() if i not in seen and allowed(i)), key=catalog_rank
    )
    return [catalog[i] for i in order] + rest


def leading_people(item: Item, field_name: str) -> list[str]:
    """The first CREDITS_PER_FIELD names of the item's `field_name` (the leads), as written."""
    value = item.metadata.get(field_name)
    people = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    names = [p.strip() for p in people[:CREDITS_PER_FIELD] if isinstance(p, str)]
    return [p for p in names if p]


def _credits(item: Item) -> list[tuple[str, str]]:
    """(field, lower-cased name) of the item's leading people, per CREDIT_POINTS field."""
    return [(name, p.lower()) for name in CREDIT_POINTS for p in leading_people(item, name)]


def _shared_credits(
    catalog: dict[str, Item],
    seeds: list[str],
    popular: list[Item],
    people: tuple[str, ...] = (),
) -> list[Item]:
    """Allowed items (those in `popular`) sharing people with the seeds, or crediting a
    person of `people` ("person:<normalised name>" keys), most points first."""
    sought: dict[tuple[str, str], float] = {}
    for seed in seeds:
        for credit in _credits(catalog[seed]):
            sought[credit] = sought.get(credit, 0.0) + CREDIT_POINTS[credit[0]]
    named = {key.removeprefix("person:") for key in people}
    if not sought and not named:
        return []
    points = {}
    for item in popular:
        score = sum(sought.get(credit, 0.0) for credit in _credits(item))
        if named:
            score += sum(
                CREDIT_POINTS[f] for f, person in _credits(item) if normalize_name(person) in named
            )
        if score > 0:
            points[item.item_id] = score
    # `popular` is in popularity order and sorted() is stable: ties keep that order.
    return sorted(
        (item for item in popular if item.item_id in points), key=lambda it: -points[it.item_id]
    )


def _mentions_any(item: Item, terms: Iterable[str]) -> bool:
    needles = [t.strip().lower() for t in terms if t.strip()]
    if not needles:
        return False
    values = [" ".join(v) if isinstance(v, list) else str(v) for v in item.metadata.values()]
    haystack = " ".join([item.title, item.text, *values]).lower()
    # Whole words only: "war" must not match "award" or "toward".
    return any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", haystack) for n in needles)


def _mmr(
    store: ItemStore, pool: list[str], scores: dict[str, float], k: int, lam: float
) -> list[str]:
    """Maximal marginal relevance: lam * relevance - (1 - lam) * max similarity to the chosen."""
    vectors = store.embeddings(pool)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = vectors @ vectors.T
    relevance = np.array([scores[i] for i in pool])
    relevance = relevance / max(float(relevance.max()), 1e-12)
    chosen = [0]
    closest = similarity[0].copy()
    while len(chosen) < min(k, len(pool)):
        value = lam * relevance - (1.0 - lam) * closest
        value[chosen] = -np.inf
        pick = int(np.argmax(value))  # first maximum: ties keep the fused (score, id) order
        chosen.append(pick)
        closest = np.maximum(closest, similarity[pick])
    return [pool[i] for i in chosen]
