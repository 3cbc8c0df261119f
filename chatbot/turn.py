"""One conversation turn end to end: act → state → candidates → LLM rerank → card reasons → reply.

`Recommender.stream` classifies the message's dialogue act. A question, a greeting or thanks is
answered without picks (`chatbot.reply.talk`); a request, refinement, feedback or topic shift is
ranked and yields a `TurnResult` as soon as the cards (with their reasons) are ready, then the
LLM's reply token by token, then the final result with the checked reply. Everything heavy (LLM, embedder, Chroma client) is created once by
`build_recommender` and shared by all sessions of the process.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from chatbot.config import Settings
from chatbot.errors import InputError, NotIndexedError
from chatbot.ranking.llm_ranking import rank_prepared, rerank_prompt, score_prompt
from chatbot.ranking.prepare import Prepared, fusion_weights, prepare
from chatbot.ranking.served_models import interaction_model, learned_ranker
from chatbot.reply.credit_links import Link
from chatbot.reply.reason_writer import links_of, write_reasons
from chatbot.reply.reasons import stop_words
from chatbot.reply.reply_llm import load_reply_llm
from chatbot.reply.reply_prompt import ReplyInput
from chatbot.reply.talk import Said, answer_dict, answer_turn, reply_input, stream_reply
from chatbot.reply.turn_result import Recommendation, TurnResult, card, no_match_reply
from chatbot.reply.writer import Reply, ReplyWriter, template_reply
from chatbot.timing import StageClock
from chatbot.understanding.act_head import EMBEDDER as ACT_HEAD_EMBEDDER
from chatbot.understanding.acts import (
    NO_PICKS,
    Act,
    ActClassifier,
    context_from_state,
    load_lexicon,
)
from chatbot.understanding.constraints import (
    CatalogSchema,
    Constraints,
    schema_of,
    update_constraints,
)
from chatbot.understanding.mentions import MentionFinder, mask_spans
from chatbot.understanding.state import DialogueState
from chatbot.understanding.topic import plan_topic_shift
from chatbot.understanding.word_feedback import apply_word_feedback
from inference.model_files import rerank_mode_of
from retrieval.collab import CollabSignals
from retrieval.interaction_cf import InteractionCF
from retrieval.learned_ranker import ServedRanker
from retrieval.types import Candidate, Item

log = logging.getLogger(__name__)
MAX_ACT_SEEDS = 10  # the user's latest titles whose genres tell a topic shift from a refinement


class Recommender:
    def __init__(
        self,
        settings: Settings,
        store,
        llm,
        collab: CollabSignals | None = None,
        *,
        cf: InteractionCF | None = None,
        ranker: ServedRanker | None = None,
    ):
        """`cf` / `ranker` default to the home's (`chatbot.ranking.served_models`), loaded here
        once: the interaction CF model when a CF signal is weighted, the configured ranker."""
        self.settings = settings
        self.store = store
        self.llm = llm
        self.collab = collab
        self._catalog_version: Any = object()
        self._index: MentionFinder | None = None
        self._writer: ReplyWriter | None = None
        # The act head (weights read at the first message) is fitted on the bundled MiniLM's
        # vectors: with another retrieval embedder the rules classify alone.
        same = settings.retrieval.embedder == ACT_HEAD_EMBEDDER
        self.acts = ActClassifier(
            load_lexicon(), embedder=getattr(store, "embedder", None) if same else None
        )
        self._schema = CatalogSchema()
        self._lock = threading.Lock()
        self._heads_cached = False
        self.rerank_mode = rerank_mode_of(settings.llm)
        self.weights = fusion_weights(settings.retrieval)
        self.cf = cf if cf is not None else interaction_model(settings)
        self.ranker = ranker if ranker is not None else learned_ranker(settings)
        # `llm.reply_adapter`: replies on a second copy tuned for them; else on `llm`.
        self.reply_llm = load_reply_llm(settings.llm, settings.model_cache) if llm else None

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
                if self.llm is not None:
                    directory = self.settings.prompts.dir
                    self._writer = ReplyWriter(
                        self.reply_llm or self.llm, self._index, directory=directory
                    )
                self._schema = schema_of(items, self.settings.catalog)
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
        """The turn's updates: "ranked" (the cards, when the act picks), "reply" (the reply
        growing token by token), then "done" (the checked reply)."""
        clock = StageClock()
        text = self.validate(message)
        index, schema = self.catalog()
        linked = (index.find(text), index.find_entities(text))
        act = self._act(state, text, schema, linked)
        talk = act.name in NO_PICKS
        state.add_user(
            text, index, schema, self.settings.max_history_turns, understand=not talk, linked=linked
        )
        state.last_act = act.name
        if act.name in ("feedback", "refine"):
            apply_word_feedback(state, text, index)
        clock.lap("state")
        if talk:
            yield from self._talk(state, act, text, index, clock)
            return
        prep = self._prepare(state, schema, k=self.settings.retrieval.k_candidates)
        clock.lap("retrieval")
        if not prep.candidates:
            state.add_assistant(
                no_match_reply(state.constraints.labels()),
                max_history=self.settings.max_history_turns,
            )
            yield TurnResult(
                reply=state.history[-1][1],
                recommendations=[],
                timings_ms=clock.total(),
                filters=state.constraints.labels(),
                act=act.name,
            )
            return
        order, counters = self._rerank(prep, clock)
        top = [prep.candidates[i] for i in order[: self.settings.retrieval.k_final]]
        recs = [card(c, rank) for rank, c in enumerate(top)]
        self._write_reasons(prep, top, recs, counters, clock)  # no model time: shown at once
        ranked = TurnResult(
            reply="",
            recommendations=[dataclasses.replace(r) for r in recs],
            timings_ms=dict(clock.ms),
            counters=dict(counters),
            stage="ranked",
            filters=state.constraints.labels(),
            act=act.name,
        )
        ranked.timings_ms["first_rec"] = (time.perf_counter() - clock.t0) * 1000
        yield ranked
        inp = reply_input(state, Said(), [c.item for c in top], request=True)
        reply = yield from self._say(inp, Said(), ranked, clock)
        counters["reply_fallback"] = int(reply.fallback)
        state.reasons.update({r.item_id: r.reason for r in recs})
        state.focus = None
        state.add_assistant(
            reply.text, shown=[r.item_id for r in recs], max_history=self.settings.max_history_turns
        )
        timings = clock.total()
        timings["first_rec"] = ranked.timings_ms["first_rec"]
        yield TurnResult(
            reply=reply.text,
            recommendations=recs,
            timings_ms=timings,
            counters=counters,
            filters=state.constraints.labels(),
            act=act.name,
        )

    def _act(
        self,
        state: DialogueState,
        text: str,
        schema: CatalogSchema,
        linked: tuple[Sequence[Any], Sequence[Any]],
    ) -> Act:
        """The message's dialogue act (`linked`: its titles and entities); a topic shift is
        applied to `state` at once."""
        mentions, entities = linked
        ids = [m.item_id for m in mentions]
        seeds = [*state.liked, *state.mentioned][-MAX_ACT_SEEDS:]
        genres = frozenset(g for it in self.store.get(seeds) for g in it.genres) if seeds else None
        people = sum(1 for e in entities if e.key.startswith("person:"))
        ctx = context_from_state(state, ids, genres or frozenset(), people)
        act = self.acts.classify(text, ctx)
        if act.name == "topic_shift":
            masked = mask_spans(text, mentions)  # a title's words ask for no genre
            asked = update_constraints(Constraints(), masked, schema).include_genres
            plan = plan_topic_shift(act, state, text, frozenset(asked))
            if plan is not None:
                state.shift_topic(plan)
        return act

    def _talk(
        self, state: DialogueState, act: Act, text: str, index: MentionFinder, clock: StageClock
    ) -> Iterator[TurnResult]:
        """A turn that picks nothing: answer, explain, greet or close."""
        said = answer_turn(act, text, state, index, self.store, self.settings.prompts.dir)
        clock.lap("answer")
        base = TurnResult(
            reply="",
            recommendations=[],
            timings_ms=dict(clock.ms),
            stage="reply",
            filters=state.constraints.labels(),
            act=act.name,
            answer=answer_dict(said.answer) if said.answer is not None else None,
        )
        reply = yield from self._say(reply_input(state, said), said, base, clock)
        if said.focus is not None:
            state.focus = said.focus
        state.add_assistant(reply.text, max_history=self.settings.max_history_turns)
        yield dataclasses.replace(
            base,
            reply=reply.text,
            stage="done",
            timings_ms=clock.total(),
            counters={"reply_fallback": int(reply.fallback)},
        )

    def _say(
        self, inp: ReplyInput, said: Said, base: TurnResult, clock: StageClock
    ) -> Generator[TurnResult, None, Reply]:
        """Stream the LLM's reply into updates of `base`; returns the checked reply."""
        directory = self.settings.prompts.dir
        if self._writer is None:  # no model (offline replays): the template
            return Reply(template_reply(inp, directory), True, ["<no model>"])
        self.cache_prompt_heads()
        for out in stream_reply(self._writer, inp, said, base, directory):
            if isinstance(out, Reply):
                clock.lap("reply")
                return out
            if "first_token" not in clock.ms:
                clock.ms["first_token"] = (time.perf_counter() - clock.t0) * 1000
            out.timings_ms = {**out.timings_ms, "first_token": clock.ms["first_token"]}
            yield out
        raise AssertionError("stream_reply ends with the Reply")

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
        clock = StageClock()
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
        recs = [card(c, rank) for rank, c in enumerate(ranked)]
        if reasons and use_llm and recs:
            n = self.settings.retrieval.k_final
            self._write_reasons(prep, ranked[:n], recs[:n], counters, clock)
        return TurnResult(
            reply="", recommendations=recs, timings_ms=clock.total(), counters=counters
        )

    def links(self, state: DialogueState, items: Sequence[Item]) -> list[Link | None]:
        """Each item's strongest true link to what the user liked or mentioned (or None)."""
        return links_of(self.store, self.collab, state, items)

    def _write_reasons(
        self,
        prep: Prepared,
        shown: Sequence[Candidate],
        recs: Sequence[Recommendation],
        counters: dict[str, int],
        clock: StageClock,
    ) -> None:
        items = [c.item for c in shown]
        links = self.links(prep.state, items)
        write_reasons(self.settings, self.llm, links, prep.user_words, items, recs, counters, clock)

    def cache_prompt_heads(self) -> None:
        """Once per recommender, before its first LLM call: run the static head of the rerank
        and reply prompts and keep their keys/values in the LLM's prefix cache, so every
        prompt is split at the same point."""
        if self._heads_cached or self.llm is None:
            return
        with self._lock:
            if self._heads_cached:
                return
            mark = "\x00head\x00"
            blank = Item(item_id="", title=mark, text="")
            self.llm.cache_head(self.rerank_prompt(mark, []), mark)
            self.llm.cache_head(self.score_prompt(mark, Candidate(blank, 0.0)), mark)
            writer = ReplyWriter(
                self.reply_llm or self.llm,
                MentionFinder.of(()),
                directory=self.settings.prompts.dir,
            )
            writer.cache_head()
            stop_words()  # the reason checks' word list, loaded once here rather than per turn
            self._heads_cached = True

    def rerank_prompt(self, conversation: str, items: Sequence[Item]) -> str:
        return rerank_prompt(self.llm, self.settings.prompts, conversation, items)

    def score_prompt(self, conversation: str, candidate: Candidate) -> str:
        return score_prompt(self.llm, self.settings.prompts, conversation, candidate)

    # -- internals -----------------------------------------------------------------------
    def _prepare(
        self, state: DialogueState, schema: CatalogSchema, *, k: int, exclude_mentioned: bool = True
    ) -> Prepared:
        return prepare(
            self.store, self.collab, self.settings.retrieval, self.weights, state, schema,
            k=k, exclude_mentioned=exclude_mentioned, cf=self.cf, ranker=self.ranker,
        )  # fmt: skip

    def _rerank(self, prep: Prepared, clock: StageClock) -> tuple[list[int], dict[str, int]]:
        self.cache_prompt_heads()
        return rank_prepared(self.llm, self.settings, self.rerank_mode, prep, clock)


def build_recommender(settings: Settings, collab: CollabSignals | None = None) -> Recommender:
    """Create the shared heavy components once (LLM, embedder, Chroma client)."""
    from inference import compute_thread
    from inference.llm import load_llm
    from retrieval.embeddings import load_embedder
    from retrieval.store import ItemStore

    embedder = load_embedder(settings.retrieval.embedder, run=compute_thread.run)
    store = ItemStore(
        settings.chroma_location,
        settings.retrieval.collection,
        embedder,
        exact_search_max_items=settings.retrieval.exact_search_max_items,
    )
    if store.count() == 0:  # fail fast, before loading the LLM
        raise NotIndexedError(
            "no catalog is indexed yet: run `recochat index --catalog PATH` first"
        )
    if collab is None and settings.collab_path.is_file():
        collab = CollabSignals.load(settings.collab_path)
    llm = load_llm(settings.llm, settings.model_cache)
    recommender = Recommender(settings, store, llm, collab)
    store.warm()  # the exact index and the ranker's catalog facts: not paid by the first turn
    if recommender.ranker is not None:
        recommender.ranker.facts(store)
    recommender.cache_prompt_heads()  # warm: the first turn does not pay for it
    return recommender
