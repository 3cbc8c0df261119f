"""What the page and the API do, without the layout: sessions, turns, feedback, views.

`chatbot.serving.app` wires it into the Gradio Blocks page and the HTTP API. Each session's
turns run one at a time under the session's lock; the shared recommender serves them all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chatbot.config import Settings
from chatbot.errors import InputError
from chatbot.reply.turn_result import TurnResult
from chatbot.serving.sessions import SessionStore
from chatbot.turn import Recommender
from chatbot.understanding.state import DialogueState

SIGNALS = {"up": True, "down": False}
LOCK_TIMEOUT_S = 300  # a turn longer than this means the session is stuck, not busy
MAX_SESSION_ID = 128


class ChatService:
    """What the page and the API do, without the layout: sessions, turns, feedback."""

    def __init__(
        self,
        settings: Settings,
        recommender: Recommender,
        feedback_store: Any,
        sessions: SessionStore | None = None,
    ):
        self.settings = settings
        self.recommender = recommender
        self.feedback_store = feedback_store
        self.sessions = sessions if sessions is not None else SessionStore()
        self._views: OrderedDict[str, dict[str, Any]] = OrderedDict()  # what each page shows
        self._views_guard = threading.Lock()

    @contextmanager
    def session(self, session_id: str) -> Iterator[DialogueState]:
        """The session's state, held under its lock (turns of one session never overlap)."""
        if not isinstance(session_id, str) or not 0 < len(session_id.strip()) <= MAX_SESSION_ID:
            raise InputError(
                f"session_id must be a non-empty string of at most {MAX_SESSION_ID} characters"
            )
        state, lock = self.sessions.get(session_id)
        if not lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise InputError("this session is still busy with an earlier message: try again")
        try:
            yield state
        finally:
            lock.release()

    def stream(self, session_id: str, message: str) -> Iterator[TurnResult]:
        with self.session(session_id) as state:
            for update in self.recommender.stream(state, message):
                # Remember titles of shown items: feedback needs them, and a liked title
                # steers the next query text (DialogueState.to_query).
                state.titles.update({r.item_id: r.title for r in update.recommendations})
                yield update

    def recommend(self, session_id: str, message: str) -> TurnResult:
        *_, last = self.stream(session_id, message)
        return last

    def feedback(self, session_id: str, item_id: str, signal: str) -> int:
        if signal not in SIGNALS:
            raise InputError(f"signal must be 'up' or 'down', not {signal!r}")
        with self.session(session_id) as state:
            title = state.titles.get(item_id)
            if title is None:
                raise InputError(
                    f"item {item_id!r} was not shown in this session: feedback "
                    "applies to recommended or mentioned items"
                )
            row = self.feedback_store.record(
                session_id, item_id, title, signal, [text for _, text in state.history]
            )
            state.feedback(item_id, SIGNALS[signal])
            return int(row)

    def votes(self, session_id: str) -> dict[str, str]:
        with self.session(session_id) as state:
            return {**{i: "up" for i in state.liked}, **{i: "down" for i in state.rejected}}

    def remove_filter(self, session_id: str, label: str) -> list[str]:
        with self.session(session_id) as state:
            state.constraints.remove(label)
            return state.constraints.labels()

    def reset(self, session_id: str) -> None:
        with self.session(session_id):
            pass  # wait for a running turn of this session to finish first
        self.sessions.reset(session_id)
        with self._views_guard:
            self._views.pop(session_id, None)

    # The cards a page shows, kept here (not in the page) so that a vote cast while a turn
    # is still streaming re-renders the turn's final cards, not the stale ranked ones.
    def view(self, session_id: str) -> dict[str, Any]:
        with self._views_guard:
            return self._views.get(session_id, {"recs": [], "turn": 0})

    def show(self, session_id: str, view: dict[str, Any]) -> None:
        with self._views_guard:
            self._views[session_id] = view
            self._views.move_to_end(session_id)
            while len(self._views) > self.sessions.max_sessions:
                self._views.popitem(last=False)
