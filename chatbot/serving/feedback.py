"""Durable local store of feedback per recommendation, with the dialogue that led to it.

    store = FeedbackStore(settings.feedback_db)
    row_id = store.record("s1", "m0042", "Collateral", "up", ["I loved Heat", "Try these."])
    store.export_dialogues("feedback.jsonl")   # then: recochat finetune --format feedback

SQLite in WAL mode with `synchronous=FULL`: once `record` returns, the row survives a killed
process or a power cut. Personal data (emails, phone numbers) is masked before it is written.
One connection per store, serialised by a lock, so a store can be shared by server threads;
other processes may read (or write) the same file at the same time.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbot.errors import ConfigError, InputError
from chatbot.serving.privacy import mask_pii
from dialogues.importers import dump_dialogues
from dialogues.schema import Dialogue, RecItem, Turn

SIGNALS = ("up", "down", "accept", "reject")
POSITIVE = frozenset({"up", "accept"})
SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 30.0  # another process holding the write lock (e.g. an export) waits, not fails

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    session_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    title TEXT NOT NULL,
    signal TEXT NOT NULL CHECK(signal IN ('up', 'down', 'accept', 'reject')),
    context TEXT NOT NULL /* JSON list of utterances, oldest first, user first */
)
"""


@dataclass(frozen=True)
class FeedbackRow:
    id: int
    ts: float
    session_id: str
    item_id: str
    title: str
    signal: str
    context: list[str]

    @property
    def accepted(self) -> bool:
        return self.signal in POSITIVE


class FeedbackStore:
    """SQLite feedback table; `record` is durable once it returns."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise ConfigError(
                    f"cannot use WAL mode for {self.path} (got {mode}): put `home` on a local disk"
                )
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def record(
        self, session_id: str, item_id: str, title: str, signal: str, context: Sequence[str]
    ) -> int:
        """Store one piece of feedback and return its row id (durable once returned)."""
        if signal not in SIGNALS:
            raise InputError(f"signal must be one of {', '.join(SIGNALS)}, not {signal!r}")
        for name, value in (("session_id", session_id), ("item_id", item_id), ("title", title)):
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{name} must be a non-empty string")
        if isinstance(context, str) or not all(isinstance(u, str) for u in context):
            raise InputError("context must be a list of utterances (strings), oldest first")
        masked = json.dumps([mask_pii(u) for u in context], ensure_ascii=False)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO feedback (ts, session_id, item_id, title, signal, context) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), session_id, item_id, mask_pii(title), signal, masked),
            )
        return int(cur.lastrowid or 0)

    def rows(self, since_id: int = 0) -> list[FeedbackRow]:
        """Rows with id > `since_id`, oldest first."""
        with self._lock:
            found = self._db.execute(
                "SELECT id, ts, session_id, item_id, title, signal, context FROM feedback "
                "WHERE id > ? ORDER BY id",
                (since_id,),
            ).fetchall()
        return [FeedbackRow(*r[:6], context=json.loads(r[6])) for r in found]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def export_dialogues(self, path: str | os.PathLike[str], since_id: int = 0) -> int:
        """Write the feedback as dialogue JSONL (see `dialogues_of`); returns the dialogue count."""
        dialogues = dialogues_of(self.rows(since_id))
        dump_dialogues(dialogues, path)
        return len(dialogues)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dialogues_of(rows: Sequence[FeedbackRow]) -> list[Dialogue]:
    """Rebuild dialogues from feedback rows.

    A row's context holds the utterances up to the recommendation, alternating user/assistant
    from the user. When it ends with an assistant utterance, that utterance is the turn that
    showed the item; otherwise the turn is an empty assistant turn after the context. Rows of a
    session whose contexts extend one another form one dialogue (`dialog_id` = session id);
    a context that does not extend the others (a reset session) starts `<session>#2`, ... The
    latest signal per item and turn wins: 👍 then 👎 exports `accepted: false`.
    """
    threads: dict[str, list[_Thread]] = {}
    for row in rows:
        candidates = threads.setdefault(row.session_id, [])
        thread = next((t for t in candidates if t.accepts(row.context)), None)
        if thread is None:
            suffix = f"#{len(candidates) + 1}" if candidates else ""
            thread = _Thread(row.session_id + suffix)
            candidates.append(thread)
        thread.add(row)
    return [t.dialogue() for ts in threads.values() for t in ts]


class _Thread:
    """One dialogue of a session: the longest context so far and the feedback per turn."""

    def __init__(self, dialog_id: str):
        self.dialog_id = dialog_id
        self.utterances: list[str] = []
        self.feedback: dict[int, dict[str, RecItem]] = {}  # assistant turn index → item → rec

    def accepts(self, context: Sequence[str]) -> bool:
        n = min(len(context), len(self.utterances))
        return list(context[:n]) == self.utterances[:n]

    def add(self, row: FeedbackRow) -> None:
        if len(row.context) > len(self.utterances):
            self.utterances = list(row.context)
        n = len(row.context)
        turn = n - 1 if n % 2 == 0 else n  # index of the assistant turn that showed the item
        recs = self.feedback.setdefault(max(turn, 1), {})
        recs[row.item_id] = RecItem(title=row.title, item_id=row.item_id, accepted=row.accepted)

    def dialogue(self) -> Dialogue:
        n = max([len(self.utterances) - 1, *self.feedback]) + 1
        texts = [*self.utterances, *[""] * (n - len(self.utterances))]
        turns = [
            Turn(
                role="user" if i % 2 == 0 else "assistant",
                text=text,
                recommended=list(self.feedback.get(i, {}).values()),
            )
            for i, text in enumerate(texts)
        ]
        return Dialogue(dialog_id=self.dialog_id, source="feedback", turns=turns)
