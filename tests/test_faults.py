"""Faults: the Chroma server dies mid-conversation and comes back.

A real `chroma run` on loopback (tmp dir, free port), settings pointing at it through
`retrieval.chroma = "http://127.0.0.1:PORT"`, the real embedder and default LLM. The server is
killed with SIGKILL between turns and restarted on the same port and path.

The other fault requirements are tested next to the component they concern:
- index updates atomic for readers: tests/test_store.py
  (test_crash_mid_sync_leaves_the_old_version_complete, test_reader_during_sync_...);
- the feedback store survives kill -9: tests/test_feedback.py::test_acknowledged_writes_survive_kill_9;
- fine-tuning resumes from its last checkpoint: tests/test_finetune.py.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from chatbot.config import load_settings
from chatbot.indexing import index_catalog
from chatbot.turn import Recommender
from chatbot.understanding.state import DialogueState
from retrieval.catalog import demo_catalog_path
from retrieval.errors import RetrievalUnavailable
from retrieval.store import ItemStore

OUTAGE = "is unreachable: start it (`chroma run --path DIR --port N`) or fix retrieval.chroma"


class ChromaServer:
    """`chroma run` as a child process that can be killed and started again in place."""

    def __init__(self, path: Path, log: Path) -> None:
        exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which(
            "chroma"
        )
        if exe is None:
            pytest.skip("the chroma CLI is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.argv = [exe, "run", "--path", str(path), "--port", str(self.port)]
        self.argv += ["--host", "127.0.0.1"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"chroma exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail(f"chroma did not answer within {timeout} s: {self.log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server", tmp_path / "chroma.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def served(chroma: ChromaServer, tmp_path: Path, embedder, llm) -> Recommender:
    """A recommender over 12 demo items indexed into the Chroma server, as configured."""
    settings = load_settings(
        {
            "retrieval.chroma": chroma.url,
            "retrieval.k_candidates": 6,
            "retrieval.k_final": 3,
            "reasons": False,  # the outage is about retrieval; reasons are tested elsewhere
        }
    )
    assert settings.chroma_location == chroma.url
    lines = demo_catalog_path().read_text(encoding="utf-8").splitlines()[:12]
    catalog = tmp_path / "tiny.jsonl"
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = ItemStore(settings.chroma_location, settings.retrieval.collection, embedder)
    assert index_catalog(settings, catalog, progress=False, store=store).indexed == 12
    return Recommender(settings, store, llm)


def ids(result) -> list[str]:
    return [r.item_id for r in result.recommendations]


def test_server_killed_mid_conversation_then_back(chroma: ChromaServer, served) -> None:
    state = DialogueState("outage")
    first = served.recommend(state, "a sci-fi action movie")
    assert first.recommendations
    history = list(state.history)

    chroma.kill()
    with pytest.raises(RetrievalUnavailable, match=re.escape(f"Chroma at {chroma.url} {OUTAGE}")):
        served.recommend(state, "Show me a few more")
    assert state.history == history  # the failed turn left the session as it was

    chroma.start()  # same port, same data dir
    second = served.recommend(state, "Show me a few more")
    assert second.recommendations
    assert not set(ids(first)) & set(ids(second))  # the session continues where it was


def test_app_shows_the_outage_as_a_message_and_recovers(
    chroma: ChromaServer, served, launch_app
) -> None:
    client = Client(launch_app(served.settings, served, object()), verbose=False)
    first = client.predict("a sci-fi action movie", "app-outage", api_name="/recommend")
    assert first["recommendations"]

    chroma.kill()
    with pytest.raises(AppError) as info:
        client.predict("Show me a few more", "app-outage", api_name="/recommend")
    message = str(info.value)
    assert message == f"Chroma at {chroma.url} {OUTAGE}"
    history = client.predict("a sci-fi action movie", api_name="/chat")[1]
    shown = json.dumps(history[-1]["content"], ensure_ascii=False)
    assert "⚠️" in shown and OUTAGE.split(":")[0] in shown and "Traceback" not in shown

    chroma.start()
    again = client.predict("Show me a few more", "app-outage", api_name="/recommend")
    assert again["recommendations"]
    assert not {r["item_id"] for r in first["recommendations"]} & {
        r["item_id"] for r in again["recommendations"]
    }
