"""Shared pytest fixtures: real components, built once per test session, in temp dirs."""

from __future__ import annotations

import os

import pytest

from recochat.env import set_env_defaults

set_env_defaults()  # as `recochat` sets them, before torch loads

from retrieval.embeddings import load_embedder  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Every data path defaults into the test's tmp dir; no user config leaks in."""
    monkeypatch.setenv("RECOCHAT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RECOCHAT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def embedder():
    """The real bundled embedder, loaded once per test session (~5 s)."""
    return load_embedder()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One converted copy of the default LLM per test session."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def llm(model_cache):
    """The real default LLM (SmolLM2-135M-Instruct), loaded once; it decodes from the weights
    RECOCHAT_LLM__DECODE_WEIGHTS names, as a served one does (bf16 unless set)."""
    from inference.llm import load_llm
    from inference.settings import LLMSettings

    weights = os.environ.get("RECOCHAT_LLM__DECODE_WEIGHTS", "bf16")
    return load_llm(LLMSettings(decode_weights=weights), model_cache)


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory, embedder):
    """A data dir with the bundled demo catalog indexed into a real Chroma store."""
    from chatbot.config import Settings
    from chatbot.indexing import index_catalog
    from retrieval.catalog import demo_catalog_path
    from retrieval.store import ItemStore

    home = tmp_path_factory.mktemp("demo-home")
    settings = Settings(home=home)
    store = ItemStore(settings.chroma_location, settings.retrieval.collection, embedder)
    index_catalog(settings, demo_catalog_path(), progress=False, store=store)
    return home


@pytest.fixture(scope="session")
def demo_store(demo_home, embedder):
    from chatbot.config import Settings
    from retrieval.store import ItemStore

    settings = Settings(home=demo_home)
    return ItemStore(settings.chroma_location, settings.retrieval.collection, embedder)


@pytest.fixture(scope="session")
def recommender(demo_home, demo_store, llm):
    """The product's recommender over the demo catalog (shared; use a fresh DialogueState)."""
    from chatbot.config import Settings
    from chatbot.turn import Recommender
    from retrieval.collab import CollabSignals

    settings = Settings(home=demo_home)
    return Recommender(settings, demo_store, llm, CollabSignals.load(settings.collab_path))


@pytest.fixture(scope="session")
def demo_catalog() -> dict[str, dict]:
    """The bundled demo catalog's rows by id (ground truth for app and browser tests)."""
    import json

    from retrieval.catalog import demo_catalog_path

    lines = demo_catalog_path().read_text(encoding="utf-8").splitlines()
    return {row["id"]: row for row in map(json.loads, filter(None, lines))}


@pytest.fixture(scope="session")
def launch_app():
    """Factory: serve `chatbot.serving.app.build_app(...)` on a free local port; returns its URL.

    Servers run in this process (`prevent_thread_lock=True`) and close at session end.
    """
    import socket

    from chatbot.serving.app import build_app, launch

    demos = []

    def start(settings, recommender, feedback_store=None, **kwargs):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = settings.server.model_copy(update={"host": "127.0.0.1", "port": port})
        settings = settings.model_copy(update={"server": server})
        demo = build_app(settings, recommender, feedback_store, **kwargs)
        demos.append(demo)
        _, url, _ = launch(demo, settings, prevent_thread_lock=True, quiet=True)
        return url

    yield start
    for demo in demos:
        demo.close()
