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


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def store(request, tmp_path):
    """A fresh Store for the service tests: in-memory, the SQL store on SQLite and on the real Postgres."""
    if request.param == "memory":
        from moderation.fakes import MemoryStore

        yield MemoryStore()
        return
    from tests.store.fixtures import open_test_store

    async with open_test_store(request.param, tmp_path) as sql:
        yield sql


@pytest.fixture
async def redis():
    """A client of the real local Redis (tests use their own key prefixes). Fails, never skips, when
    Redis is down: CI starts it, and a silently skipped Redis suite would hide a broken worker."""
    from moderation.scoring.redis_transport import connect

    client = connect("redis://127.0.0.1:6379/0")
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.fail(
            f"Redis is not reachable at 127.0.0.1:6379 ({exc!r}); start it (see .ci/run) "
            "or deselect with -m 'not redis'"
        )
    yield client
    await client.aclose()
