"""``chatmod db``: migrations (upgrade, downgrade, current) and data maintenance (purge-text,
erase-user, verify-audit)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

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


def _open(database_url: str | None, config: str | None) -> Any:
    """A SqlStore configured from the settings (retention, erasure salt), at ``database_url`` if given."""
    from bot.settings import load_settings
    from moderation.store import open_store

    database = load_settings(config).database
    salt = getattr(database, "erasure_salt", None)  # a SecretStr once settings carry one
    if salt is not None and hasattr(salt, "get_secret_value"):
        salt = salt.get_secret_value()
    return open_store(
        database_url or database.url,
        retention=timedelta(days=database.retention_days),
        erasure_salt=salt or None,
    )


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

    @db.command("purge-text")
    def purge_text(database_url: DatabaseUrl = None, config: ConfigPath = None) -> None:
        """Erase message texts older than the retention window (database.retention_days)."""

        async def run() -> int:
            async with _open(database_url, config) as store:
                n: int = await store.purge_expired_text(datetime.now(UTC))
                return n

        typer.echo(f"purged {asyncio.run(run())} text(s)")

    @db.command("erase-user")
    def erase_user(
        platform: Annotated[str, typer.Argument(help="discord, slack, demo or api.")],
        user_id: Annotated[str, typer.Argument(help="The member's platform user id.")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
        database_url: DatabaseUrl = None,
        config: ConfigPath = None,
    ) -> None:
        """Erase one member's texts and ids (decision counts are kept). Cannot be undone."""
        from moderation.domain import Platform

        try:
            where = Platform(platform)
        except ValueError:
            raise typer.BadParameter(f"unknown platform {platform!r}", param_hint="PLATFORM") from None
        if not yes:
            typer.confirm(f"Erase all personal data of {where.value}:{user_id}?", abort=True)

        async def run() -> Any:
            async with _open(database_url, config) as store:
                return await store.delete_data_for_user(where, user_id)

        report = asyncio.run(run())
        typer.echo(
            f"erased {where.value}:{user_id} -> {report.pseudonym}: {report.messages} message(s), "
            f"{report.cases} case(s), {report.appeals} appeal(s), {report.strikes} strike(s), "
            f"{report.overrides} override(s), {report.audit_entries} audit entr(ies)"
        )

    @db.command("verify-audit")
    def verify_audit(
        expected_head: Annotated[
            str | None, typer.Option("--expected-head", help="A head hash recorded earlier.")
        ] = None,
        database_url: DatabaseUrl = None,
        config: ConfigPath = None,
    ) -> None:
        """Check the audit log's hash chain; exit status 1 if it was tampered with."""

        async def run() -> Any:
            async with _open(database_url, config) as store:
                return await store.verify_chain(expected_head)

        result = asyncio.run(run())
        if result.ok:
            typer.echo(f"audit log intact: {result.checked} entries, head {result.head}")
            return
        typer.echo(
            f"audit log TAMPERED: {result.reason} (row {result.bad_id}); {result.checked} entries verified",
            err=True,
        )
        raise typer.Exit(1)

    app.add_typer(db, name="db")
