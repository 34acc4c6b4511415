"""Alembic migrations: upgrade → downgrade → upgrade on SQLite and Postgres, and schema == model."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import migrations
from moderation.store import make_engine, open_store
from moderation.store.schema import metadata
from tests.store.helpers import T0, hold, msg, scores

TABLES = {t.name for t in metadata.sorted_tables}


async def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def schema_diff(url: str) -> list:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    url = empty_db_url
    assert await migrations.current(url) is None
    await migrations.upgrade(url)
    assert await migrations.current(url) == migrations.head()
    assert await table_names(url) == TABLES | {"alembic_version"}

    # Downgrading to base drops every table, data included.
    async with open_store(url) as store:
        await store.record_decision(msg(), scores(), hold(), T0)
    await migrations.downgrade(url, "base")
    assert await migrations.current(url) is None
    assert await table_names(url) <= {"alembic_version"}

    await migrations.upgrade(url)
    assert await migrations.current(url) == migrations.head()
    async with open_store(url) as store:
        assert await store.list_cases() == []
        case, created = await store.record_decision(msg(), scores(), hold(), T0)
        assert created and case.id == 1
    await migrations.upgrade(url)  # already at head: a no-op
    assert await migrations.current(url) == migrations.head()


async def test_migrated_schema_matches_the_model(empty_db_url: str) -> None:
    await migrations.upgrade(empty_db_url)
    assert await schema_diff(empty_db_url) == []


async def test_sync_run_upgrade_for_scripts(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    await asyncio.to_thread(migrations.run_upgrade, url)
    assert await migrations.current(url) == migrations.head()


async def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pragmas.db'}"
    await migrations.upgrade(url)
    async with open_store(url) as store:
        assert store.engine is not None
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() > 0


async def test_in_memory_sqlite_is_migrated_through_the_engine_and_serialises_sessions() -> None:
    async with open_store("sqlite+aiosqlite://") as store:
        assert store.engine is not None
        await migrations.upgrade(store.engine)  # a URL would open (and lose) another in-memory database
        assert await migrations.current(store.engine) == migrations.head()
        results = await asyncio.gather(
            *(store.record_decision(msg(), scores(), hold(), T0) for _ in range(5))
        )
        assert sum(created for _, created in results) == 1
        distinct = await asyncio.gather(
            *(store.record_decision(msg(f"x{i}"), scores(), hold(), T0) for i in range(5))
        )
        assert all(created for _, created in distinct)
        assert len(await store.list_cases()) == 6
