"""Fixtures for the SQL store tests: every test runs on SQLite and on a fresh Postgres database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from moderation.store import SqlStore
from tests.store.fixtures import STORE_KINDS, fresh_database_url, open_test_store

RETENTION = timedelta(days=30)


@pytest.fixture(params=STORE_KINDS)
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A fresh, migrated ``SqlStore`` (retention 30 days), on SQLite and on Postgres."""
    async with open_test_store(
        request.param, tmp_path, retention=RETENTION, erasure_salt="test-salt"
    ) as store:
        yield store


@pytest.fixture(params=STORE_KINDS)
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty (unmigrated) database, on SQLite and on Postgres."""
    async with fresh_database_url(request.param, tmp_path) as url:
        yield url
