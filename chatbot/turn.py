"""One recommendation turn end to end: state → candidates → LLM rerank → reasons.

`Recommender.stream` yields a `TurnUpdate` when the ranking is ready (cards can show) and a
final one with reasons. Everything heavy (LLM, embedder, Chroma client) is created once by
`build_recommender` and shared by all sessions of the process.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatbot.config import Settings
from chatbot.errors import InputError, NotIndexedError
from chatbot.ranking.rerank import (
    rerank,
    rerank_pointwise,
    rerank_user_text,
    score_user_text,
)
from chatbot.reply.credit_links import Link, find_link, seed_order
from chatbot.reply.reasons import (
    Reason,
    generate_reasons,
    reason_prompt,
    stop_words,
    template_reasons,
)
from chatbot.understanding.constraints import CatalogSchema
from chatbot.understanding.mentions import MentionFinder
from chatbot.understanding.state import DialogueState
from dialogues.transcript import format_conversation
from inference.model_files import rerank_mode_of
from prompts.loader import render
from retrieval.candidates import FusionWeights, generate_candidates
from retrieval.collab import CollabSignals
from retrieval.types import Candidate, Item

log = logging.getLogger(__name__)
MAX_LINK_SEEDS = 10  # the user's most recent liked/mentioned items a reason may link to


@dataclass
class Recommendation:
    item_id: str
    title: str
    reason: str
    score: float
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "reason": self.reason,
            "score": round(self.score, 4),
        }


@dataclass
class TurnResult:
    reply: str
    recommendations: list[Recommendation]
    timings_ms: dict[str, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    stage: str = "done"  # "ranked" (reasons pending) or "done"
    filters: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reply": self.reply,
            "recommendations": [r.to_dict() for r in self.recommendations],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
            "filters": list(self.filters),  # the session's active filters, as the UI shows them
        }


TurnUpdate = TurnResult


@dataclass
class Prepared:
    state: DialogueState
    conversation: str
    candidates: list[Candidate]
    user_words: str


class _Clock:
    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self.last) * 1000
        self.last = now

    def total(self) -> dict[str, float]:
        self.ms["total"] = (time.perf_counter() - self.t0) * 1000
        return self.ms


class Recommender:
    def __init__(self, settings: Settings, store, llm, collab: CollabSignals | None = None):
        self.settings = settings
        self.store = store
        self.llm = llm
        self.collab = collab
        self._catalog_version: Any = object()
        self._index: MentionFinder | None = None
        self._schema = CatalogSchema()
        self._lock = threading.Lock()
        self._heads_cached = False
        self.rerank_mode = rerank_mode_of(settings.llm)
        r = settings.retrieval
        self.weights = FusionWeights(
            dense=r.dense_weight,
            liked=r.liked_weight,
            cooc=r.cooc_weight,
            popularity=r.popularity_weight,
            credits=r.credits_weight,
        )

    # -- catalog-derived lookups (rebuilt when the index version changes) ----------------
    def catalog(self) -> tuple[MentionFinder, CatalogSchema]:
        version = self.store.version()
        with self._lock:
            if version != self._catalog_version or self._index is None:
                items = self.store.all_items()
                if not items:
                    raise NotIndexedError(
                        "no catalog is indexed yet: run `recochat index --catalog PATH` first"
                    )
                self._index = MentionFinder.of(items)
                self._schema = schema_of(items, self.settings)
                if self.collab is None:
                    self.collab = CollabSignals.from_catalog(items)
                self._catalog_version = version
            return self._index, self._schema

    # -- the turn ------------------------------------------------------------------------
    def validate(self, message: Any) -> str:
        if not isinstance(message, str):
            raise InputError("the message must be text")
        text = message.replace("\x00", "").strip()
        if not text:
            raise InputError("the message is empty: say what you are in the mood for")
        if len(text) > self.settings.max_message_chars:
            raise InputError(
                f"the message has {len(text)} characters; keep it under "
                f"{self.settings.max_message_chars}"
            )
        try:  # lone surrogates (undecodable argv bytes, JSON "\udcff") crash the tokenizers
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError("the message is not valid UTF-8 text: send plain text") from None
        return text

    def stream(self, state: DialogueState, message: str) -> Iterator[TurnResult]:
        clock = _Clock()
        text = self.validate(message)
        index, schema = self.catalog()
        state.add_user(text, index, schema, self.settings.max_history_turns)
        clock.lap("state")
        prep = self._prepare(state, schema, k=self.settings.retrieval.k_candidates)
        clock.lap("retrieval")
        if not prep.candidates:
            state.add_assistant(
                self._no_match_reply(state), max_history=self.settings.max_history_turns
            )
            yield TurnResult(
                reply=state.history[-1][1],
                recommendations=[],
                timings_ms=clock.total(),
                filters=state.constraints.labels(),
            )
            return
        order, counters = self._rerank(prep, clock)
        k = self.settings.retrieval.k_final
        top = [prep.candidates[i] for i in order[:k]]
        recs = [self._card(c, rank) for rank, c in enumerate(top)]
        reply = self._reply(state, recs)
        ranked = TurnResult(
            reply=reply,
            recommendations=[dataclasses.replace(r) for r in recs],  # a snapshot: reasons pending
            timings_ms=dict(clock.ms),
            counters=dict(counters),
            stage="ranked",
            filters=state.constraints.labels(),
        )
        if not self.settings.reasons:  # template reasons cost no LLM time: show them at once
            self._write_reasons(prep, top, recs, counters, clock)
            ranked.recommendations = [dataclasses.replace(r) for r in recs]
            ranked.counters = dict(counters)
        ranked.timings_ms["first_rec"] = (time.perf_counter() - clock.t0) * 1000
        yield ranked
        if self.settings.reasons:
            self._write_reasons(prep, top, recs, counters, clock)
        state.add_assistant(
            reply, shown=[r.item_id for r in recs], max_history=self.settings.max_history_turns
        )
        timings = clock.total()
        timings["first_rec"] = ranked.timings_ms["first_rec"]
        yield TurnResult(
            reply=reply,
            recommendations=recs,
            timings_ms=timings,
            counters=counters,
            filters=state.constraints.labels(),
        )

    def recommend(self, state: DialogueState, message: str) -> TurnResult:
        return list(self.stream(state, message))[-1]

    # -- offline replay (eval, training data) --------------------------------------------
    def state_from_context(self, context: Sequence[str]) -> DialogueState:
        """Replay utterances (oldest first) into a fresh state.

        The last utterance is the user's; roles alternate backwards from it, which also holds
        for logs whose first utterance is the bot's (most ReDial turns).
        """
        index, schema = self.catalog()
        state = DialogueState()
        last = len(context) - 1
        for i, utt in enumerate(context):
            if not utt.strip():
                continue
            if (last - i) % 2 == 0:
                state.add_user(utt, index, schema, self.settings.max_history_turns)
            else:
                state.add_assistant(utt, index, max_history=self.settings.max_history_turns)
        return state

    def prepare_context(
        self, context: Sequence[str], *, exclude_mentioned: bool = True, k: int | None = None
    ) -> Prepared:
        _, schema = self.catalog()
        state = self.state_from_context(context)
        return self._prepare(
            state,
            schema,
            k=k or self.settings.retrieval.k_candidates,
            exclude_mentioned=exclude_mentioned,
        )

    def rank_context(
        self,
        context: Sequence[str],
        *,
        k: int = 50,
        use_llm: bool = True,
        reasons: bool = True,
        exclude_mentioned: bool = True,
    ) -> TurnResult:
        """Rank `k` items for the dialogue `context`, as the served product would."""
        clock = _Clock()
        n = self.settings.retrieval.k_candidates
        prep = self.prepare_context(context, exclude_mentioned=exclude_mentioned, k=max(k, n))
        clock.lap("retrieval")
        counters: dict[str, int] = {"rerank_fallback": 0, "reason_fallback": 0}
        order = list(range(len(prep.candidates)))
        if use_llm and prep.candidates:
            head = Prepared(prep.state, prep.conversation, prep.candidates[:n], prep.user_words)
            head_order, counters = self._rerank(head, clock)
            order = head_order + order[len(head_order) :]
        ranked = [prep.candidates[i] for i in order][:k]
        recs = [self._card(c, rank) for rank, c in enumerate(ranked)]
        if reasons and use_llm and recs:
            n = self.settings.retrieval.k_final
            self._write_reasons(prep, ranked[:n], recs[:n], counters, clock)
        return TurnResult(
            reply="", recommendations=recs, timings_ms=clock.total(), counters=counters
        )

    def _write_reasons(
        self,
        prep: Prepared,
        shown: Sequence[Candidate],
        recs: Sequence[Recommendation],
        counters: dict[str, int],
        clock: _Clock,
    ) -> None:
        """Fill `recs[i].reason` for `shown[i]`: LLM-written and checked when `reasons` is on,
        else (or when a check fails) a template naming the item's true link to the user."""
        items = [c.item for c in shown]
        links = self.links(prep.state, items)
        directory = self.settings.prompts.dir
        out: list[Reason]
        if self.settings.reasons:
            out = generate_reasons(
                self.llm,
                items,
                prep.user_words,
                max_new_tokens=self.settings.llm.max_reason_tokens,
                directory=directory,
                links=links,
            )
        else:
            out = template_reasons(items, prep.user_words, directory=directory, links=links)
        for rec, reason in zip(recs, out, strict=True):
            rec.reason = reason.text
        counters["reason_fallback"] = sum(r.fallback for r in out)
        counters["reason_link"] = sum(r.link is not None for r in out)
        clock.lap("reasons")

    def links(self, state: DialogueState, items: Sequence[Item]) -> list[Link | None]:
        """Each item's strongest true link to what the user liked or mentioned (or None)."""
        ids = seed_order(state.liked, state.mentioned, state.rejected)[:MAX_LINK_SEEDS]
        found = {it.item_id: it for it in self.store.get(ids)} if ids else {}
        seeds = [found[i] for i in ids if i in found]
        return [find_link(item, seeds, self.collab) for item in items]

    def cache_prompt_heads(self) -> None:
        """Once per recommender, before its first LLM call: run the static head of the rerank
        and reason prompts and keep their keys/values in the LLM's prefix cache, so every
        prompt is split at the same point."""
        if self._heads_cached or self.llm is None:
            return
        with self._lock:
            if self._heads_cached:
                return
            mark = "\x00head\x00"
            blank = Item(item_id="", title=mark, text="")
            reason = reason_prompt(self.llm, blank, mark, directory=self.settings.prompts.dir)
            self.llm.cache_head(self.rerank_prompt(mark, []), mark)
            self.llm.cache_head(self.score_prompt(mark, Candidate(blank, 0.0)), mark)
            self.llm.cache_head(reason, mark)
            stop_words()  # the reason checks' word list, loaded once here rather than per turn
            self._heads_cached = True

    def rerank_prompt(self, conversation: str, items: Sequence[Item]) -> str:
        p = self.settings.prompts
        user_text = rerank_user_text(conversation, items, filename=p.rerank, directory=p.dir)
        return self.llm.chat_prompt(user_text, system=render("system", None, p.dir))

    def score_prompt(self, conversation: str, candidate: Candidate) -> str:
        p = self.settings.prompts
        user_text = score_user_text(
            conversation, candidate.item, candidate.signals, filename=p.score, directory=p.dir
        )
        return self.llm.chat_prompt(user_text, system=render("system", None, p.dir))

    # -- internals -----------------------------------------------------------------------
    def _prepare(
        self, state: DialogueState, schema: CatalogSchema, *, k: int, exclude_mentioned: bool = True
    ) -> Prepared:
        r = self.settings.retrieval
        query = state.to_query(schema, exclude_mentioned=exclude_mentioned)
        cands = generate_candidates(
            self.store,
            self.collab,
            query,
            k=k,
            k_retrieve=max(r.k_retrieve, k),
            weights=self.weights,
            diversity=r.diversity,
        )
        return Prepared(state, format_conversation(state.history), cands, state.user_words())

    def _rerank(self, prep: Prepared, clock: _Clock) -> tuple[list[int], dict[str, int]]:
        self.cache_prompt_heads()
        prior = self.settings.llm.rerank_prior
        if self.rerank_mode == "pointwise":
            prompts = [self.score_prompt(prep.conversation, c) for c in prep.candidates]
            clock.lap("rerank_prompt")
            result = rerank_pointwise(self.llm, prompts, prior_weight=prior)
            clock.lap("rerank")
            return result.order, {"rerank_fallback": 0, "reason_fallback": 0}
        items = [c.item for c in prep.candidates]
        prompt = self.rerank_prompt(prep.conversation, items)
        clock.lap("rerank_prompt")
        result = rerank(
            self.llm,
            prompt,
            len(items),
            prior_weight=prior,
            mode=self.rerank_mode,
        )
        clock.lap("rerank")
        return result.order, {"rerank_fallback": int(result.fallback), "reason_fallback": 0}

    @staticmethod
    def _card(c: Candidate, rank: int) -> Recommendation:
        facts = {k: v for k, v in c.item.metadata.items() if k != "description"}
        return Recommendation(
            item_id=c.item.item_id,
            title=c.item.title,
            reason="",
            score=1.0 / (rank + 1),
            facts=facts,
        )

    @staticmethod
    def _reply(state: DialogueState, recs: list[Recommendation]) -> str:
        filters = state.constraints.labels()
        scope = f" ({', '.join(filters)})" if filters else ""
        return f"Here are {len(recs)} picks for you{scope}."

    @staticmethod
    def _no_match_reply(state: DialogueState) -> str:
        filters = state.constraints.labels()
        if filters:
            return (
                "Nothing in the catalog matches all of: "
                + ", ".join(filters)
                + ". Try removing one of these filters."
            )
        return "I have nothing new to suggest: everything that fits was already shown."


def schema_of(items: Sequence[Item], settings: Settings) -> CatalogSchema:
    cat = settings.catalog
    genres: set[str] = set()
    numeric: set[str] = set()
    has_rating = False
    for it in items:
        g = it.metadata.get(cat.genre_field)
        if isinstance(g, list):
            genres.update(x.lower() for x in g)
        for key, value in it.metadata.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                numeric.add(key)
        has_rating = has_rating or "rating" in it.metadata
    return CatalogSchema(
        genres=frozenset(genres),
        genre_field=cat.genre_field,
        year_field=cat.year_field,
        rating_field="rating" if has_rating else None,
        numeric_fields=frozenset(numeric),
    )


def build_recommender(settings: Settings, collab: CollabSignals | None = None) -> Recommender:
    """Create the shared heavy components once (LLM, embedder, Chroma client)."""
    from inference.llm import load_llm
    from retrieval.embeddings import load_embedder
    from retrieval.store import ItemStore

    embedder = load_embedder(settings.retrieval.embedder)
    store = ItemStore(settings.chroma_location, settings.retrieval.collection, embedder)
    if store.count() == 0:  # fail fast, before loading the LLM
        raise NotIndexedError(
            "no catalog is indexed yet: run `recochat index --catalog PATH` first"
        )
    if collab is None and settings.collab_path.is_file():
        collab = CollabSignals.load(settings.collab_path)
    llm = load_llm(settings.llm, settings.model_cache)
    recommender = Recommender(settings, store, llm, collab)
    recommender.cache_prompt_heads()  # warm: the first turn does not pay for it
    return recommender
