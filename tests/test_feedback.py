"""FeedbackStore: durable (WAL + synchronous=FULL, survives kill -9), masked, exportable."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chatbot.errors import InputError
from chatbot.serving.feedback import FeedbackStore
from dialogues.importers import load_dialogues, load_rec_turns

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path):
    with FeedbackStore(tmp_path / "fb" / "feedback.sqlite3") as s:
        yield s


def test_record_and_rows(store: FeedbackStore) -> None:
    first = store.record("s1", "m1", "Heat (1995)", "up", ["I loved Ronin", "Try these."])
    second = store.record("s1", "m2", "Ronin (1998)", "reject", ["I loved Ronin", "Try these."])
    assert second > first > 0
    rows = store.rows()
    assert [(r.id, r.item_id, r.signal, r.accepted) for r in rows] == [
        (first, "m1", "up", True),
        (second, "m2", "reject", False),
    ]
    assert rows[0].context == ["I loved Ronin", "Try these."] and rows[0].title == "Heat (1995)"
    assert [r.id for r in store.rows(since_id=first)] == [second]
    assert len(store) == 2


def test_pragmas_and_schema(store: FeedbackStore) -> None:
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(store.path) as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(feedback)")]
        assert cols == ["id", "ts", "session_id", "item_id", "title", "signal", "context"]
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute(
                "INSERT INTO feedback (ts, session_id, item_id, title, signal, context) "
                "VALUES (0, 's', 'i', 't', 'meh', '[]')"
            )


def test_personal_data_is_masked_before_writing(store: FeedbackStore) -> None:
    store.record(
        "s1",
        "m1",
        "Heat (1995)",
        "up",
        ["I'm ann@example.com, call +1 (555) 123-4567", "Here are 5 picks from 1995."],
    )
    raw = b"".join(p.read_bytes() for p in store.path.parent.iterdir())
    assert b"ann@example.com" not in raw and b"123-4567" not in raw
    context = store.rows()[0].context
    assert context == ["I'm [email], call [phone]", "Here are 5 picks from 1995."]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("s", "i", "t", "meh", []), "signal must be one of"),
        (("", "i", "t", "up", []), "session_id"),
        (("s", "i", "t", "up", "not a list"), "context must be a list"),
        (("s", "i", "t", "up", ["ok", 3]), "context must be a list"),
    ],
)
def test_bad_input_is_refused(store: FeedbackStore, args: tuple, match: str) -> None:
    with pytest.raises(InputError, match=match):
        store.record(*args)
    assert len(store) == 0


def test_threads_share_one_store(store: FeedbackStore) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(25):
            row = store.record(f"s{n}", f"m{i}", f"T{i}", "up", [f"u{i}"])
            with lock:
                ids.append(row)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 100 and len(store) == 100


WRITER = """
import sys
from chatbot.serving.feedback import FeedbackStore
store = FeedbackStore(sys.argv[1])
for i in range(1_000_000):
    row = store.record("s%d" % (i % 7), "m%d" % i, "Title %d" % i, "up", ["hello", "hi"] * 3)
    print(row, flush=True)  # acknowledged: record() has returned
"""


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "feedback.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    acked: list[int] = []
    for line in proc.stdout:
        acked.append(int(line))
        if len(acked) >= 200:
            proc.send_signal(signal.SIGKILL)  # mid-stream: the writer is inside record()
            break
    acked += [int(line) for line in proc.stdout if line.strip()]  # printed before the kill
    assert proc.wait(timeout=30) == -signal.SIGKILL
    with FeedbackStore(db) as reopened:
        stored = {r.id for r in reopened.rows()}
        assert reopened._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(acked) >= 200
    assert set(acked) <= stored


def test_export_dialogues(store: FeedbackStore, tmp_path: Path) -> None:
    turn1 = ["Something like Heat", "Here are 3 picks."]
    turn2 = [*turn1, "More like the first one, mail me at a@b.co", "Here are 3 more."]
    store.record("s1", "m1", "Ronin (1998)", "up", turn1)
    store.record("s1", "m2", "Collateral (2004)", "down", turn1)
    store.record("s1", "m3", "Thief (1981)", "accept", turn2)
    store.record("s1", "m2", "Collateral (2004)", "up", turn1)  # changed their mind
    store.record("s2", "m4", "Alien (1979)", "reject", ["a scary space film"])  # no bot text
    store.record("s1", "m5", "Up (2009)", "up", ["after a reset: animation", "Here."])

    out = tmp_path / "export" / "feedback.jsonl"
    assert store.export_dialogues(out) == 3
    dialogues = {d.dialog_id: d for d in load_dialogues(out, "jsonl")}
    assert set(dialogues) == {"s1", "s1#2", "s2"}
    assert all(d.source == "feedback" for d in dialogues.values())
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    s1 = next(x for x in lines if x["dialog_id"] == "s1")
    assert [t["role"] for t in s1["turns"]] == ["user", "assistant", "user", "assistant"]
    assert s1["turns"][1]["recommended"] == [
        {"item_id": "m1", "title": "Ronin (1998)", "accepted": True},
        {"item_id": "m2", "title": "Collateral (2004)", "accepted": True},
    ]
    assert s1["turns"][2]["text"] == "More like the first one, mail me at [email]"

    turns, rejects = load_rec_turns(out, "jsonl")
    assert not rejects
    by_key = {(t.dialog_id, t.turn_id): t for t in turns}
    t2 = by_key[("s1", 3)]
    assert t2.context == tuple(s1["turns"][i]["text"] for i in range(3))
    assert t2.gold == ("Thief (1981)",) and t2.accepted == (True,) and t2.gold_ids == ("m3",)
    s2 = by_key[("s2", 1)]
    assert s2.context == ("a scary space film",) and s2.accepted == (False,)
    assert by_key[("s1#2", 1)].gold_ids == ("m5",)
