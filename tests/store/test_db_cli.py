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
