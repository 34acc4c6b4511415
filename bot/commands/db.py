"""``chatmod db``: apply, revert and inspect the database migrations."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "-d",
        help="SQLAlchemy URL, e.g. sqlite+aiosqlite:///chatmod.db or postgresql+asyncpg://user@host/db. "
        "Default: the configured database.url.",
        show_default=False,
    ),
]
ConfigPath = Annotated[str | None, typer.Option("--config", "-c", help="Settings TOML file.")]


def _resolve_url(database_url: str | None, config: str | None) -> str:
    if database_url:
        return database_url
    from bot.settings import load_settings

    return load_settings(config).database.url


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _quiet_alembic() -> None:
    # Alembic 1.20 logs every autogenerate plugin it loads at INFO; only the migrations are news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True, callback=_quiet_alembic)

    @db.command()
    def upgrade(
        revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
        database_url: DatabaseUrl = None,
        config: ConfigPath = None,
    ) -> None:
        """Apply migrations up to REVISION (default: the newest)."""
        import migrations

        url = _resolve_url(database_url, config)
        asyncio.run(migrations.upgrade(url, revision))
        rev = asyncio.run(migrations.current(url))
        typer.echo(f"{_redacted(url)}: at revision {rev}")

    @db.command()
    def downgrade(
        revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops every table.")],
        database_url: DatabaseUrl = None,
        config: ConfigPath = None,
    ) -> None:
        """Revert migrations down to REVISION (e.g. -1, base)."""
        import migrations

        url = _resolve_url(database_url, config)
        asyncio.run(migrations.downgrade(url, revision))
        rev = asyncio.run(migrations.current(url))
        typer.echo(f"{_redacted(url)}: at revision {rev or 'base (empty)'}")

    @db.command()
    def current(database_url: DatabaseUrl = None, config: ConfigPath = None) -> None:
        """Show the database's revision and the newest one this code ships."""
        import migrations

        url = _resolve_url(database_url, config)
        rev = asyncio.run(migrations.current(url))
        head = migrations.head()
        state = "up to date" if rev == head else "needs `chatmod db upgrade`"
        typer.echo(f"{_redacted(url)}: at revision {rev or 'base (empty)'}; head is {head} ({state})")

    app.add_typer(db, name="db")
