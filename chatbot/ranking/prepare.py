"""Candidate preparation for a turn: the dialogue state's query, fused retrieval, the transcript.

`Prepared` is what the LLM ranking and the reasons of one turn read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatbot.understanding.constraints import CatalogSchema
from chatbot.understanding.state import DialogueState
from dialogues.transcript import format_conversation
from retrieval.candidates import FusionWeights, PoolRanker, generate_candidates
from retrieval.interaction_cf import InteractionCF
from retrieval.types import Candidate


@dataclass
class Prepared:
    state: DialogueState
    conversation: str
    candidates: list[Candidate]
    user_words: str


def fusion_weights(retrieval: Any) -> FusionWeights:
    """The fusion weights of `RetrievalSettings`."""
    r = retrieval
    return FusionWeights(
        dense=r.dense_weight,
        liked=r.liked_weight,
        cooc=r.cooc_weight,
        popularity=r.popularity_weight,
        credits=r.credits_weight,
        interactions=r.interactions_weight,
        rated=r.rated_weight,
        entities=r.entities_weight,
    )


def prepare(
    store: Any,
    collab: Any,
    retrieval: Any,
    weights: FusionWeights,
    state: DialogueState,
    schema: CatalogSchema,
    *,
    k: int,
    exclude_mentioned: bool = True,
    cf: InteractionCF | None = None,
    ranker: PoolRanker | None = None,
) -> Prepared:
    """`k` fused (or, with a `ranker`, learned-ranked) candidates for `state` (`retrieval`:
    the `RetrievalSettings`; `cf`: the interaction CF model of the home, if any)."""
    query = state.to_query(
        schema, exclude_mentioned=exclude_mentioned, window=retrieval.query_window
    )
    cands = generate_candidates(
        store,
        collab,
        query,
        k=k,
        k_retrieve=max(retrieval.k_retrieve, k),
        weights=weights,
        diversity=retrieval.diversity,
        cf=cf,
        ranker=ranker,
        conversation=" ".join(text for _, text in state.history),
    )
    return Prepared(state, format_conversation(state.history), cands, state.user_words())
