"""Alembic migrations for chatmod's database, runnable from code as well as from the CLI.

``await upgrade(url)`` / ``downgrade(url, rev)`` / ``current(url)`` work inside a running event loop
(tests, the demo); ``run_upgrade(url)`` is the synchronous form for scripts. The Alembic environment
and scripts are located through this package, never through the working directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from moderation.store.engine import make_engine

HERE = Path(__file__).resolve().parent
INI = HERE / "alembic.ini"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` pointing at this package's scripts (``url`` travels in ``attributes``,
    which avoids configparser's %-interpolation of passwords in URLs)."""
    cfg = Config(str(INI))
    cfg.set_main_option("script_location", str(HERE))
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def head() -> str:
    """The newest revision shipped with this code."""
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert rev is not None
    return rev


async def _with_connection(url: str | URL | AsyncEngine, fn: Callable[[Connection], Any]) -> Any:
    engine = url if isinstance(url, AsyncEngine) else make_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.run_sync(fn)
            await conn.commit()
            return result
    finally:
        if engine is not url:
            await engine.dispose()


def _run_command(cmd: Callable[..., Any], *args: Any) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        cmd(cfg, *args)

    return run


async def upgrade(url: str | URL | AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    await _with_connection(url, _run_command(command.upgrade, revision))


async def downgrade(url: str | URL | AsyncEngine, revision: str = "base") -> None:
    """Revert migrations down to ``revision`` (``base``: drop everything)."""
    await _with_connection(url, _run_command(command.downgrade, revision))


async def current(url: str | URL | AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""

    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    rev: str | None = await _with_connection(url, read)
    return rev


def run_upgrade(url: str | URL, revision: str = "head") -> None:
    """Synchronous ``upgrade`` for scripts (not for use inside a running event loop)."""
    asyncio.run(upgrade(url, revision))
