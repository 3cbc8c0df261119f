"""Per-session dialogue state and its update from one utterance."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from chatbot.understanding.constraints import (
    CatalogSchema,
    Constraints,
    to_where,
    update_constraints,
)
from chatbot.understanding.mentions import MentionFinder, mask_spans
from chatbot.understanding.topic import ShiftPlan, apply_topic_shift
from retrieval.types import Query

# "something else", "seen those", "not these": reject everything shown last turn.
REJECT_SHOWN = re.compile(
    r"\b(seen (them|those|these|all|it)|something else|other (options|ones)|not (these|those)|"
    r"none of (these|those|them)|different ones|more options)\b"
)


@dataclass
class DialogueState:
    session_id: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)  # (role, text), oldest first
    liked: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    mentioned: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    last_shown: list[str] = field(default_factory=list)
    constraints: Constraints = field(default_factory=Constraints)
    titles: dict[str, str] = field(default_factory=dict)  # item_id -> title, for display
    # The conversation around the picks (issue #16): the item the last answer was about, where
    # the current topic starts in `history`, seeds a topic shift retired (still excluded from
    # candidates, no longer seeding them) and the last user message's dialogue act.
    focus: str | None = None
    topic_start: int = 0
    retired: list[str] = field(default_factory=list)
    last_act: str = ""
    reasons: dict[str, str] = field(default_factory=dict)  # item_id -> its card's reason
    # People and genres named ("person:tom hanks", "genre:comedy"), by either side; the user's
    # liked and rejected ones, by the same sentiment rules as titles.
    entities: list[str] = field(default_factory=list)
    liked_entities: list[str] = field(default_factory=list)
    rejected_entities: list[str] = field(default_factory=list)

    # -- updates -------------------------------------------------------------------------
    def add_user(
        self,
        text: str,
        index: MentionFinder,
        schema: CatalogSchema,
        max_history: int = 40,
        *,
        understand: bool = True,
        linked: tuple[Sequence[Any], Sequence[Any]] | None = None,
    ) -> None:
        """Record a user message; `understand=False` (a question, a greeting) keeps only the
        words: no title or sentiment, and no constraint, is read from it. `linked`: the
        message's (`index.find`, `index.find_entities`), when the caller has them already."""
        self._append("user", text, max_history)
        if not understand:
            return
        if REJECT_SHOWN.search(text.lower()):
            for item_id in self.last_shown:
                _add(self.rejected, item_id)
        mentions, entities = linked or (index.find(text), index.find_entities(text))
        for m in mentions:
            self.titles[m.item_id] = m.title
            _add(self.mentioned, m.item_id)
            if m.sentiment == "liked":
                _add(self.liked, m.item_id)
                _drop(self.rejected, m.item_id)
            elif m.sentiment == "rejected":
                _add(self.rejected, m.item_id)
                _drop(self.liked, m.item_id)
        for e in entities:
            _add(self.entities, e.key)
            if e.sentiment == "liked":
                _add(self.liked_entities, e.key)
                _drop(self.rejected_entities, e.key)
            elif e.sentiment == "rejected":
                _add(self.rejected_entities, e.key)
                _drop(self.liked_entities, e.key)
        # A title's words are not constraints: "Star Wars" asks for no war films, "Scary
        # Movie" for no horror, "2001: A Space Odyssey" for no year.
        update_constraints(self.constraints, mask_spans(text, mentions), schema)

    def add_assistant(
        self,
        text: str,
        index: MentionFinder | None = None,
        shown: list[str] | None = None,
        max_history: int = 40,
    ) -> None:
        """Record a bot utterance; titles in it (or `shown`) count as already recommended."""
        self._append("assistant", text, max_history)
        ids = list(shown or [])
        if index is not None:
            for m in index.find(text):
                self.titles[m.item_id] = m.title
                ids.append(m.item_id)
                _add(self.mentioned, m.item_id)
            for e in index.find_entities(text):  # "it stars Natalie Portman": talked about
                _add(self.entities, e.key)
        for item_id in ids:
            _add(self.shown, item_id)
        if ids:
            self.last_shown = list(dict.fromkeys(ids))

    def _append(self, role: str, text: str, max_history: int) -> None:
        self.history.append((role, text))
        over = len(self.history) - max_history
        if over > 0:
            del self.history[:over]
            self.topic_start = max(0, self.topic_start - over)

    def shift_topic(self, plan: ShiftPlan) -> None:
        """A topic shift (`chatbot.understanding.topic`): the old seeds and soft wishes stop
        driving candidates and reasons; explicit constraints stay unless contradicted."""
        apply_topic_shift(self, plan)
        self.focus = None

    def feedback(self, item_id: str, positive: bool) -> None:
        if positive:
            _add(self.liked, item_id)
            _drop(self.rejected, item_id)
        else:
            _add(self.rejected, item_id)
            _drop(self.liked, item_id)

    # -- queries -------------------------------------------------------------------------
    def user_words(self, last: int = 3) -> str:
        """The user's last `last` messages of the current topic."""
        topic = self.history[self.topic_start :]
        return " ".join([t for r, t in topic if r == "user"][-last:])

    def recent_words(self, last: int) -> str:
        """The last `last` utterances of both sides, oldest first."""
        return " ".join(t for _, t in self.history[-last:])

    def entity_keys(self, last: int = 10) -> tuple[str, ...]:
        """People and genres named and not rejected: the liked ones first, then the most
        recent others."""
        rest = [e for e in self.entities if e not in self.liked_entities]
        keys = [*self.liked_entities[-last:], *rest[-last:]]
        return tuple(e for e in keys if e not in self.rejected_entities)

    def to_query(
        self, schema: CatalogSchema, *, exclude_mentioned: bool = True, window: int = 0
    ) -> Query:
        """`window` > 0: the dense text is the last `window` utterances of both sides (the
        recommender's included); 0: the last three user utterances."""
        liked_titles = [self.titles.get(i, "") for i in self.liked[-5:]]
        words = self.recent_words(window) if window > 0 else self.user_words()
        text = " ".join([words, *liked_titles]).strip()
        exclude = set(self.rejected) | set(self.shown) | set(self.retired)
        mentioned: tuple[str, ...] = ()
        if exclude_mentioned:
            exclude |= set(self.mentioned)
            # Everything talked about and not rejected (liked or neutral, most recent last)
            # seeds the item-similarity and co-occurrence signals. A Query never returns its
            # mentioned_ids, so they are only passed when mentioned items are excluded anyway.
            mentioned = tuple(i for i in self.mentioned if i not in self.rejected)[-10:]
        return Query(
            text=text,
            liked_ids=tuple(self.liked[-10:]),
            exclude_ids=frozenset(exclude),
            where=to_where(self.constraints, schema),
            avoid_terms=self.constraints.avoid_terms(),
            mentioned_ids=mentioned,
            entity_keys=self.entity_keys(),
            liked_people=tuple(e for e in self.liked_entities if e.startswith("person:"))[-5:],
        )

    # -- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "history": [list(h) for h in self.history],
            "liked": self.liked,
            "rejected": self.rejected,
            "mentioned": self.mentioned,
            "shown": self.shown,
            "last_shown": self.last_shown,
            "constraints": self.constraints.to_dict(),
            "titles": self.titles,
            "focus": self.focus,
            "topic_start": self.topic_start,
            "retired": self.retired,
            "last_act": self.last_act,
            "reasons": self.reasons,
            "entities": self.entities,
            "liked_entities": self.liked_entities,
            "rejected_entities": self.rejected_entities,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DialogueState:
        data = dict(data)
        data["history"] = [tuple(h) for h in data.get("history", [])]
        data["constraints"] = Constraints.from_dict(data.get("constraints", {}))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # older files lack the new


def _add(seq: list[str], value: str) -> None:
    if value not in seq:
        seq.append(value)


def _drop(seq: list[str], value: str) -> None:
    if value in seq:
        seq.remove(value)
