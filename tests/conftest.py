"""Shared test setup: offline model loading, no hub access, paths to the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA} (CI runs with ../shared beside the repo)")
    return SHARED_DATA


@pytest.fixture(params=["memory"])
async def store(request):
    """A fresh Store for the service tests: in-memory, then the SQL store on SQLite and Postgres."""
    from moderation.fakes import MemoryStore

    yield MemoryStore()
