"""Fixtures for the memory tests: the real sentence embedder, loaded once per session."""
from __future__ import annotations

import pytest

from memory.embedder import Embedder, get_embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return get_embedder()
