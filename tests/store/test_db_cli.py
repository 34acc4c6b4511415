"""``chatmod db upgrade | current | downgrade`` through the real typer app."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from typer.testing import CliRunner

import migrations
from bot.commands import db


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:  # a group, as in bot.cli
        pass

    db.register(app)
    return app


def test_db_commands_with_an_explicit_url(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    app = make_app()

    result = runner.invoke(app, ["db", "current", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "base (empty)" in result.output and "needs `chatmod db upgrade`" in result.output

    result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"at revision {migrations.head()}" in result.output
    assert asyncio.run(migrations.current(url)) == migrations.head()

    result = runner.invoke(app, ["db", "current", "-d", url])
    assert "up to date" in result.output

    result = runner.invoke(app, ["db", "downgrade", "base", "-d", url])
    assert result.exit_code == 0, result.output
    assert asyncio.run(migrations.current(url)) is None


def test_db_upgrade_defaults_to_the_configured_url(tmp_path: Path) -> None:
    target = tmp_path / "configured.db"
    config = tmp_path / "chatmod.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{target}"\n', encoding="utf-8")
    result = CliRunner().invoke(make_app(), ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert target.exists()
    assert asyncio.run(migrations.current(f"sqlite:///{target}")) == migrations.head()


def test_migrations_are_found_from_any_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(make_app(), ["db", "upgrade", "-d", "sqlite+aiosqlite:///here.db"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "here.db").exists()


def test_maintenance_commands(tmp_path: Path) -> None:
    from moderation.domain import AuditEntry
    from moderation.store import open_store
    from tests.store.helpers import T0, hold, msg, scores

    url = f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"
    runner = CliRunner()
    app = make_app()
    assert runner.invoke(app, ["db", "upgrade", "-d", url]).exit_code == 0

    async def seed() -> None:
        async with open_store(url) as store:
            await store.record_decision(msg(), scores(), hold(), T0)  # long past the 30-day window
            await store.append(AuditEntry(T0, "discord:alice", "appeal.submit", "g1", "1", {}))

    asyncio.run(seed())

    result = runner.invoke(app, ["db", "verify-audit", "-d", url])
    assert result.exit_code == 0 and "intact: 1 entries" in result.output

    result = runner.invoke(app, ["db", "purge-text", "-d", url])
    assert result.exit_code == 0 and "purged 1 text(s)" in result.output

    result = runner.invoke(app, ["db", "erase-user", "discord", "alice", "-d", url], input="n\n")
    assert result.exit_code == 1  # declined
    result = runner.invoke(app, ["db", "erase-user", "nowhere", "alice", "--yes", "-d", url])
    assert result.exit_code == 2
    result = runner.invoke(app, ["db", "erase-user", "discord", "alice", "--yes", "-d", url])
    assert result.exit_code == 0, result.output
    assert "1 case(s)" in result.output and "1 audit entr(ies)" in result.output

    async def check() -> tuple[str, str | None]:
        async with open_store(url) as store:
            case = await store.get_case(1)
            return case.author.user_id, case.text

    user_id, text = asyncio.run(check())
    assert user_id.startswith("erased:") and text is None
    assert runner.invoke(app, ["db", "verify-audit", "-d", url]).exit_code == 0
    tampered = runner.invoke(app, ["db", "verify-audit", "-d", url, "--expected-head", "0" * 64])
    assert tampered.exit_code == 1 and "TAMPERED" in tampered.output
