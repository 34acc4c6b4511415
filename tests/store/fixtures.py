"""Fresh, migrated SQL stores for tests — importable by any test module.

``open_test_store("sqlite" | "postgres", tmp_path)`` is an async context manager yielding a ``SqlStore``
on a brand-new database with the Alembic migrations applied: a file in ``tmp_path`` for SQLite, a
uniquely named database (``chatmod_test_<random>``) on the local Postgres, dropped afterwards (copied
from a template migrated once per test process; the migration tests themselves start from empty
databases, ``fresh_database_url``).

To run other tests (e.g. the service tests) on the SQL store::

    from tests.store.fixtures import STORE_KINDS, open_test_store

    @pytest.fixture(params=STORE_KINDS)
    async def sql_store(request, tmp_path):
        async with open_test_store(request.param, tmp_path) as store:
            yield store

(``tests/store/conftest.py`` defines exactly that fixture for the store's own tests.)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

#: The kinds of SQL store; Postgres ones carry the ``postgres`` marker.
STORE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# The admin connection used to create/drop the per-test databases (trust auth on the local server).
PG_ADMIN_DSN = os.environ.get("CHATMOD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_url(dbname: str) -> str:
    from sqlalchemy.engine import make_url

    return (
        make_url(PG_ADMIN_DSN)
        .set(drivername="postgresql+asyncpg", database=dbname)
        .render_as_string(hide_password=False)
    )


async def _pg_admin(sql: str) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({exc!r}); start it (pg_ctlcluster "
            "--skip-systemctl-redirect <version> main start) or deselect with -m 'not postgres'"
        )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of ``kind``, removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'chatmod-{secrets.token_hex(4)}.db'}"
        return
    if kind != "postgres":
        raise ValueError(f"unknown store kind {kind!r}")
    name = f"chatmod_test_{secrets.token_hex(6)}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Postgres: the migrations run once per test process into a template database; each test's database
# is then a copy of it (CREATE DATABASE ... TEMPLATE), several times faster than migrating each one.
_pg_template: str | None = None


def _drop_template() -> None:
    if _pg_template is not None:
        import asyncio

        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{_pg_template}" WITH (FORCE)'))


async def _migrated_template() -> str:
    global _pg_template
    if _pg_template is None:
        import atexit

        import migrations

        name = f"chatmod_test_tmpl_{secrets.token_hex(6)}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        try:
            await migrations.upgrade(_pg_url(name))  # disposes its engine: no connection stays open
        except BaseException:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            raise
        _pg_template = name
        atexit.register(_drop_template)
    return _pg_template


@asynccontextmanager
async def migrated_database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh database of ``kind`` at the newest migration, removed afterwards."""
    if kind != "postgres":
        import migrations

        async with fresh_database_url(kind, tmp_path) as url:
            await migrations.upgrade(url)
            yield url
        return
    template = await _migrated_template()
    name = f"chatmod_test_{secrets.token_hex(6)}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_url(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def open_test_store(kind: str, tmp_path: Path, **store_kwargs: Any) -> AsyncIterator[Any]:
    """A ``SqlStore`` on a fresh, migrated database of ``kind`` ("sqlite" or "postgres")."""
    from moderation.store import open_store

    async with migrated_database_url(kind, tmp_path) as url:
        store = open_store(url, **store_kwargs)
        try:
            yield store
        finally:
            await store.close()
