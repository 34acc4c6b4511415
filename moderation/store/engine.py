"""Engine construction: SQLite (aiosqlite) tuned for a bot, or Postgres (asyncpg).

SQLite notes. WAL lets readers proceed while one writer writes; ``busy_timeout`` makes a second
writer wait instead of failing at once. pysqlite's own transaction handling is switched off and
SQLAlchemy emits ``BEGIN`` itself, so that write transactions can start with ``BEGIN IMMEDIATE``:
with a deferred ``BEGIN``, a transaction that read first and then writes after another writer
committed fails with SQLITE_BUSY at once (busy_timeout does not apply), which would turn a harmless
duplicate delivery into an error. The store asks for IMMEDIATE through the ``WRITE`` execution option.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

#: Execution option: on SQLite, start the transaction with BEGIN IMMEDIATE (take the write lock).
SQLITE_BEGIN = "chatmod_sqlite_begin"
WRITE: dict[str, Any] = {SQLITE_BEGIN: "IMMEDIATE"}

DEFAULT_BUSY_TIMEOUT_MS = 30_000


def _install_sqlite_hooks(engine: AsyncEngine, busy_timeout_ms: int, wal: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see module docstring)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(
    url: str | URL,
    *,
    echo: bool = False,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine for ``url`` with chatmod's connection settings applied.

    Accepts ``sqlite+aiosqlite:///path.db`` and ``postgresql+asyncpg://...``; plain ``sqlite:///`` and
    ``postgresql://`` URLs are mapped to those async drivers.
    """
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        if in_memory:
            from sqlalchemy.pool import StaticPool

            # One shared connection, or every session would see its own empty database.
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_async_engine(parsed, echo=echo, **kwargs)
        _install_sqlite_hooks(engine, busy_timeout_ms, wal=not in_memory)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, echo=echo, **kwargs)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
