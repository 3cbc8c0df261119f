"""Dialogue states by session id: in memory for the server, a JSON file for the CLI."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

from chatbot.errors import InputError
from chatbot.serving.privacy import mask_pii
from chatbot.understanding.state import DialogueState


class SessionStore:
    """Bounded, thread-safe map of session id → state; one lock per session serialises turns."""

    def __init__(self, max_sessions: int = 10_000):
        self.max_sessions = max_sessions
        self._states: OrderedDict[str, DialogueState] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, session_id: str) -> tuple[DialogueState, threading.Lock]:
        with self._guard:
            state = self._states.get(session_id)
            if state is None:
                state = DialogueState(session_id=session_id)
                self._states[session_id] = state
                self._locks[session_id] = threading.Lock()
                while len(self._states) > self.max_sessions:  # forget the least recent
                    old, _ = self._states.popitem(last=False)
                    self._locks.pop(old, None)
            self._states.move_to_end(session_id)
            return state, self._locks[session_id]

    def reset(self, session_id: str) -> DialogueState:
        with self._guard:
            state = DialogueState(session_id=session_id)
            self._states[session_id] = state
            self._locks.setdefault(session_id, threading.Lock())
            return state

    def __len__(self) -> int:
        return len(self._states)


def load_session_file(path: Path) -> DialogueState:
    if not path.exists():
        return DialogueState(session_id=path.stem)
    try:
        return DialogueState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError):
        raise InputError(
            f"session file {path} is not a recochat session: delete it or pass "
            "another --session path"
        ) from None


def save_session_file(state: DialogueState, path: Path) -> None:
    """Write atomically, owner-only, with personal data masked."""
    data = state.to_dict()
    data["history"] = [[role, mask_pii(text)] for role, text in data["history"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
