"""Session plumbing shared by the SqlStore parts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import StaticPool

from moderation.policy import Tiers
from moderation.store.engine import WRITE
from moderation.store.types import utcnow


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE (``AsyncSession.execute`` is typed as returning ``Result``)."""
    return int(cast(CursorResult[Any], result).rowcount)


def new_id(result: Result[Any]) -> int:
    """The primary key of the row an INSERT created."""
    key = cast(CursorResult[Any], result).inserted_primary_key
    assert key is not None
    return int(key[0])


def clean_text(value: str) -> str:
    """Text as both backends can store it.

    Postgres rejects NUL characters and neither backend accepts lone surrogates (invalid UTF-8 that
    reached us as ``surrogateescape``); they become U+FFFD. The message key keeps the hash of the
    original text, so idempotency is unaffected.
    """
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


class SqlBase:
    """Holds the session factory, the retention window and the clock."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        retention: timedelta,
        *,
        engine: AsyncEngine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if retention <= timedelta(0):
            raise ValueError("retention must be positive")
        #: Thresholds a new server starts with (the model card's recommendations); None = DEFAULT_TIERS.
        self.default_thresholds: Mapping[str, Tiers] | None = None
        self._sessions = session_factory
        self._engine = engine
        bind = session_factory.kw.get("bind")
        # An in-memory SQLite database lives on one shared connection (StaticPool), which cannot
        # hold two transactions at once: sessions take turns.
        self._one_at_a_time = asyncio.Lock() if isinstance(getattr(bind, "pool", None), StaticPool) else None
        self.retention = retention
        self._clock = clock

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._one_at_a_time is None:
            yield
            return
        async with self._one_at_a_time:
            yield

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        async with self._turn(), self._sessions() as session:
            yield session

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read session whose statements all see one snapshot (for reads spanning several queries).

        SQLite's deferred transactions already read from one snapshot under WAL; Postgres needs
        REPEATABLE READ instead of its default READ COMMITTED.
        """
        async with self._turn(), self._sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction (SQLite: BEGIN IMMEDIATE), committed on success."""
        async with self._turn(), self._sessions() as session:
            await session.connection(execution_options=WRITE)
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def close(self) -> None:
        """Dispose of the engine if this store created it. Idempotent."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()
