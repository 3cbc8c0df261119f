"""The Gradio app through its HTTP API, with real components end to end.

Real default LLM, real embedder, real Chroma in a session tmp dir holding the demo catalog, real
Gradio servers on free ports, called with `gradio_client.Client`. Turns whose reasons are not
under test run on a recommender that shares the same model and store with `reasons = False`
(the switch behind `recochat ask --no-reasons`): the same ranking, several times faster.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError

from chatbot.errors import ConfigError
from chatbot.serving.app import INTERNAL_ERROR, parse_auth
from chatbot.serving.sessions import SessionStore
from chatbot.serving.ui_cards import render_cards, render_filters
from chatbot.turn import Recommender
from retrieval.errors import RetrievalUnavailable

KIDS = "A funny animated movie for kids"
SCI_FI = "A mind-bending sci-fi film, no horror"


@pytest.fixture(scope="module")
def demo_settings(recommender):
    return recommender.settings


@pytest.fixture(scope="module")
def feedback_store(demo_settings):
    from chatbot.serving.feedback import FeedbackStore

    return FeedbackStore(demo_settings.feedback_db)


@pytest.fixture(scope="module")
def fast_recommender(demo_settings, recommender):
    settings = demo_settings.model_copy(update={"reasons": False})
    r = recommender
    return Recommender(settings, r.store, r.llm, r.collab)


@pytest.fixture(scope="module")
def server(launch_app, demo_settings, recommender, feedback_store):
    """The app as served: reasons on."""
    return launch_app(demo_settings, recommender, feedback_store)


@pytest.fixture(scope="module")
def fast(launch_app, demo_settings, fast_recommender, feedback_store):
    """(client, sessions) of an app without LLM reasons, its session states inspectable."""
    sessions = SessionStore()
    url = launch_app(demo_settings, fast_recommender, feedback_store, sessions=sessions)
    return Client(url, verbose=False), sessions


def ids(result: dict) -> list[str]:
    return [r["item_id"] for r in result["recommendations"]]


def bot_text(history: list[dict]) -> str:
    content = history[-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content)


def readme_python_example() -> str:
    """The README's gradio_client example, as a user would copy it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", readme, re.S)
    assert match, "README.md has no python example"
    return match.group(1)


def test_readme_example(server, demo_settings, demo_catalog):
    code = readme_python_example()
    assert '"http://127.0.0.1:7860/"' in code
    scope: dict = {}
    exec(
        compile(code.replace('"http://127.0.0.1:7860/"', repr(server)), "README.md", "exec"), scope
    )
    result = scope["result"]

    assert set(result) == {"reply", "recommendations", "timings_ms", "filters", "act"}
    assert result["act"] == "request"
    assert isinstance(result["reply"], str) and result["reply"]
    assert len(result["recommendations"]) == demo_settings.retrieval.k_final
    heat = next(i for i, row in demo_catalog.items() if row["title"] == "Heat")
    for rec in result["recommendations"]:
        assert set(rec) == {"item_id", "title", "reason", "score"}
        row = demo_catalog[rec["item_id"]]  # every pick comes from the catalog
        assert rec["title"] == row["title"]
        assert row["year"] > 2000
        assert rec["item_id"] != heat
        assert rec["reason"].strip()
        assert 0 < rec["score"] <= 1
    assert result["timings_ms"]["total"] > 0


def test_chat_streams_cards_then_the_reply_token_by_token(server):
    client = Client(server, verbose=False)
    job = client.submit(KIDS, api_name="/chat")
    job.result(timeout=600)
    outputs = job.outputs()
    cards = [out[2] for out in outputs if isinstance(out[2], str) and 'class="card' in out[2]]
    assert cards and all('class="reason pending"' not in html for html in cards)
    final = outputs[-1]
    assert final[2].count('class="card') == 5 and 'class="timing"' in final[2]
    assert 'data-filter="for kids"' in final[3]
    texts = [bot_text(out[1]) for out in outputs if out[1]]
    growing = [t for t in texts if t and "Looking through" not in t]
    assert len(set(growing)) >= 3, "the reply did not stream"
    assert "1. **" in bot_text(final[1])  # the picks follow the reply


def test_a_question_keeps_the_cards_and_chips(fast):
    client, _ = fast
    first = client.predict(KIDS, "question-turn", api_name="/recommend")
    answer = client.predict("how long is the second one?", "question-turn", api_name="/recommend")
    assert answer["act"] == "item_question" and answer["recommendations"] == []
    assert answer["answer"]["item_id"] == first["recommendations"][1]["item_id"]
    assert answer["filters"] == first["filters"]


def test_reasons_off_serves_template_reasons_at_once(fast, demo_catalog):
    """`reasons = false` (`--no-reasons`): every card gets a truthful template reason in the
    first update; nothing is left "pending", in the API or in the chat's cards."""
    client, _ = fast
    result = client.predict(KIDS, "no-llm-reasons", api_name="/recommend")
    assert len(result["recommendations"]) == 5
    for rec in result["recommendations"]:
        row = demo_catalog[rec["item_id"]]
        assert rec["reason"].startswith(row["title"]), rec["reason"]
        assert str(row["year"]) in rec["reason"]
    job = client.submit(KIDS, api_name="/chat")
    job.result(timeout=600)
    cards = [out[2] for out in job.outputs() if isinstance(out[2], str) and 'class="card' in out[2]]
    assert cards and all('class="reason pending"' not in html for html in cards)


def test_two_turns_keep_constraints_and_never_repeat(fast, demo_catalog):
    client, sessions = fast
    first = client.predict(SCI_FI, "two-turns", api_name="/recommend")
    second = client.predict("Show me a few more", "two-turns", api_name="/recommend")
    assert ids(first) and ids(second)
    assert not set(ids(first)) & set(ids(second))
    for item_id in ids(first) + ids(second):
        genres = demo_catalog[item_id]["genres"]
        assert "sci-fi" in genres and "horror" not in genres
    state, _ = sessions.get("two-turns")
    assert "no horror" in state.constraints.labels()


def test_feedback_updates_session_and_store(fast, demo_settings, recommender):
    client, sessions = fast
    sid = "feedback"
    first = ids(client.predict("A cozy mystery under 2 hours", sid, api_name="/recommend"))
    down, up = first[0], first[1]

    answer = client.predict(sid, down, "down", api_name="/feedback")
    assert answer["ok"] is True and isinstance(answer["id"], int)
    assert client.predict(sid, up, "up", api_name="/feedback")["ok"] is True

    state, _ = sessions.get(sid)
    assert down in state.rejected and up in state.liked
    _, schema = recommender.catalog()
    query = state.to_query(schema)
    assert down in query.exclude_ids
    assert up in query.liked_ids and state.titles[up] in query.text  # 👍 steers retrieval
    second = ids(client.predict("Something along those lines", sid, api_name="/recommend"))
    assert second and down not in second

    with sqlite3.connect(demo_settings.feedback_db) as db:  # what another process would see
        rows = db.execute(
            "SELECT item_id, signal, context FROM feedback WHERE session_id = ? ORDER BY id",
            (sid,),
        ).fetchall()
    assert [(item, signal) for item, signal, _ in rows] == [(down, "down"), (up, "up")]
    assert "A cozy mystery under 2 hours" in json.loads(rows[0][2])


def test_feedback_rejects_bad_input(fast):
    client, _ = fast
    with pytest.raises(AppError, match="signal must be 'up' or 'down'"):
        client.predict("bad-feedback", "m0001", "meh", api_name="/feedback")
    with pytest.raises(AppError, match="was not shown in this session"):
        client.predict("bad-feedback", "m0001", "down", api_name="/feedback")


def test_sessions_do_not_share_state(fast):
    client, sessions = fast
    a1 = ids(client.predict(KIDS, "iso-a", api_name="/recommend"))
    a2 = ids(client.predict(KIDS, "iso-a", api_name="/recommend"))
    b1 = ids(client.predict(KIDS, "iso-b", api_name="/recommend"))
    assert not set(a1) & set(a2)  # session a never repeats itself ...
    assert b1 == a1  # ... and what a has seen does not leak into b
    assert not set(sessions.get("iso-b")[0].shown) & set(a2)

    assert client.predict("iso-a", api_name="/reset") == {"ok": True}
    assert sessions.get("iso-a")[0].shown == []
    assert ids(client.predict(KIDS, "iso-a", api_name="/recommend")) == a1


def test_auth(launch_app, demo_settings, fast_recommender, feedback_store):
    server = demo_settings.server.model_copy(update={"auth": "alice:secret"})
    url = launch_app(
        demo_settings.model_copy(update={"server": server}), fast_recommender, feedback_store
    )
    with pytest.raises(AuthenticationError):
        Client(url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=("alice", "wrong"), verbose=False)
    denied = httpx.post(f"{url}gradio_api/call/recommend", json={"data": [KIDS, "x"]})
    assert denied.status_code == 401

    client = Client(url, auth=("alice", "secret"), verbose=False)
    assert ids(client.predict(KIDS, "auth", api_name="/recommend"))


def test_parse_auth(tmp_path):
    assert parse_auth("") is None
    assert parse_auth("alice:s3:cret") == [("alice", "s3:cret")]
    users = tmp_path / "users.txt"
    users.write_text("# who may use the demo\nalice:secret\n\nbob:hunter2\n", encoding="utf-8")
    assert parse_auth(str(users)) == [("alice", "secret"), ("bob", "hunter2")]
    with pytest.raises(ConfigError, match="user:pass"):
        parse_auth("alice")


def test_empty_message_is_a_readable_error(fast):
    client, _ = fast
    with pytest.raises(AppError) as info:
        client.predict("   ", "empty", api_name="/recommend")
    assert str(info.value) == "the message is empty: say what you are in the mood for"
    history = client.predict("", api_name="/chat")[1]
    assert bot_text(history) == "⚠️ the message is empty: say what you are in the mood for"


class _BrokenStore:
    """A store whose every call fails the way the given exception says."""

    def __init__(self, exc: Exception):
        self.exc = exc

    def version(self):
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (RetrievalUnavailable("Chroma at http://db:8000 is unreachable: start it"), "unreachable"),
        (RuntimeError("secret internals"), INTERNAL_ERROR),
    ],
    ids=["unreachable", "internal"],
)
def test_store_failures_are_readable(launch_app, demo_settings, recommender, exc, shown):
    broken = Recommender(demo_settings, _BrokenStore(exc), recommender.llm)
    client = Client(launch_app(demo_settings, broken, object()), verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(KIDS, "broken", api_name="/recommend")
    assert shown in str(info.value) and "Traceback" not in str(info.value)
    assert "secret" not in str(info.value)
    assert shown in bot_text(client.predict(KIDS, api_name="/chat")[1])


def test_not_indexed_is_a_readable_error(launch_app, demo_settings, llm, embedder, tmp_path):
    from retrieval.store import ItemStore

    empty = Recommender(demo_settings, ItemStore(str(tmp_path / "chroma"), "items", embedder), llm)
    client = Client(launch_app(demo_settings, empty, object()), verbose=False)
    with pytest.raises(AppError, match="no catalog is indexed yet: run `recochat index"):
        client.predict(KIDS, "not-indexed", api_name="/recommend")


def test_cards_escape_catalog_text():
    rec = {
        "item_id": 'x"1',
        "title": "<script>alert(1)</script>",
        "reason": "Fun & <b>bold</b>",
        "facts": {"year": 1999, "runtime_min": 95, "rating": "PG", "genres": ["comedy"]},
    }
    html = render_cards([rec], votes={'x"1': "down"})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Fun &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert 'data-item-id="x&quot;1"' in html and "voted-down" in html
    assert all(f">{fact}<" in html for fact in ("1999", "1h 35m", "PG", "comedy"))
    assert 'data-filter="no &lt;horror&gt;"' in render_filters(["no <horror>"])
