"""``SqlStore``: the ``moderation.ports.Store`` implementation on SQLAlchemy 2 async.

SQLite (aiosqlite, WAL) is the default; Postgres (asyncpg) for production. The schema is created
by the Alembic migrations in ``migrations/`` (``chatmod db upgrade`` or ``migrations.upgrade(url)``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from moderation.store.analytics import AnalyticsMixin
from moderation.store.appeals import AppealMixin
from moderation.store.audit import AuditMixin
from moderation.store.cases import CaseMixin
from moderation.store.engine import make_engine, make_session_factory
from moderation.store.policies import PolicyMixin
from moderation.store.privacy import PrivacyMixin
from moderation.store.types import utcnow

DEFAULT_RETENTION = timedelta(days=30)


class SqlStore(PolicyMixin, CaseMixin, AppealMixin, AuditMixin, PrivacyMixin, AnalyticsMixin):
    """Everything the moderation service persists, in SQL.

    ``retention`` is how long message texts are kept (``purge_expired_text``). ``erasure_salt`` keys
    the pseudonyms that replace a member's ids on erasure: pass a stable secret from settings so
    repeated erasures agree; the default is random per process. ``engine``, when given, is disposed
    by ``close()``.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        retention: timedelta = DEFAULT_RETENTION,
        *,
        engine: AsyncEngine | None = None,
        erasure_salt: str | bytes | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(session_factory, retention, engine=engine, clock=clock)
        if erasure_salt is None:
            erasure_salt = secrets.token_bytes(32)
        self._erasure_salt = erasure_salt.encode() if isinstance(erasure_salt, str) else erasure_salt

    @property
    def engine(self) -> AsyncEngine | None:
        return self._engine

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def open_store(
    url: str | URL,
    *,
    retention: timedelta = DEFAULT_RETENTION,
    erasure_salt: str | bytes | None = None,
    clock: Callable[[], datetime] = utcnow,
    echo: bool = False,
    **engine_kwargs: Any,
) -> SqlStore:
    """Create an engine for ``url`` and a store owning it. Use ``async with open_store(url) as store``
    or call ``await store.close()``. The schema must exist (run the migrations first)."""
    engine = make_engine(url, echo=echo, **engine_kwargs)
    return SqlStore(
        make_session_factory(engine), retention, engine=engine, erasure_salt=erasure_salt, clock=clock
    )
