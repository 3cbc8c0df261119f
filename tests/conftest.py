"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from retrieval.embeddings import load_embedder


@pytest.fixture(scope="session")
def embedder():
    """The real bundled embedder, loaded once per test session (~5 s)."""
    return load_embedder()
