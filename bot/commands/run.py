"""`chatmod run`: the bot process — Discord and/or Slack adapters over one moderation service.

Lifecycle: open the database (migrations applied), start the scorer client (in-process batcher or the
Redis client for `chatmod worker`s), start each configured adapter; on SIGINT/SIGTERM stop intake,
drain in-flight events within the worker's drain deadline, close pools, and log one summary line.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

import typer

from bot.settings import Settings, load_settings

log = logging.getLogger("chatmod.run")


class ConfigError(Exception):
    """The configuration cannot start a bot (no adapter enabled, missing token)."""


def check_config(settings: Settings) -> list[str]:
    """What `chatmod run` would start; raises ConfigError naming the missing setting."""
    started: list[str] = []
    if settings.discord.enabled:
        if not settings.discord.token.get_secret_value():
            raise ConfigError("discord.enabled is true but CHATMOD_DISCORD__TOKEN is not set")
        started.append("discord")
    if settings.slack.enabled:
        if not settings.slack.bot_token.get_secret_value():
            raise ConfigError("slack.enabled is true but CHATMOD_SLACK__BOT_TOKEN is not set")
        if settings.slack.socket_mode:
            if not settings.slack.app_token.get_secret_value():
                raise ConfigError("slack.socket_mode is true but CHATMOD_SLACK__APP_TOKEN is not set")
        elif not settings.slack.signing_secret.get_secret_value():
            raise ConfigError("Slack over HTTP needs CHATMOD_SLACK__SIGNING_SECRET")
        started.append("slack-socket" if settings.slack.socket_mode else "slack-http")
    if not started:
        raise ConfigError("no adapter enabled: set [discord] enabled = true and/or [slack] enabled = true")
    return started


async def run_bot(settings: Settings, stop: asyncio.Event) -> dict[str, Any]:
    """Run the configured adapters until ``stop`` is set; returns summary counters."""
    from bot.compose import build_service, open_database, score_client

    adapters = check_config(settings)
    summary: dict[str, Any] = {"adapters": adapters}
    started_at = time.monotonic()
    async with (
        open_database(settings.database, model=settings.model) as store,
        score_client(settings.worker, settings.model, settings.redis) as scorer,
    ):
        service = build_service(settings, scorer=scorer, store=store, actions={})
        from bot.compose import purge_loop

        tasks: list[asyncio.Task[Any]] = []
        closers: list[Any] = []
        purger = asyncio.create_task(purge_loop(store, settings.database.purge_interval_s), name="purge")
        if "discord" in adapters:
            from bot.adapters.discord.bot import build_discord_bot

            # The bot drains within a deadline shorter than the outer wait_for around close().
            discord_bot = build_discord_bot(
                service, settings.discord, drain_timeout_s=settings.worker.drain_timeout_s * 0.8
            )
            tasks.append(asyncio.create_task(discord_bot.start(settings.discord.token.get_secret_value())))
            closers.append(discord_bot.close)
        if any(a.startswith("slack") for a in adapters):
            from bot.adapters.slack.app import adapter_for, build_slack_app

            bolt_app = build_slack_app(service, settings.slack)
            adapter = adapter_for(bolt_app)
            if settings.slack.socket_mode:
                tasks.append(asyncio.create_task(adapter.start_socket_mode()))
            else:
                tasks.append(asyncio.create_task(_serve_slack_http(bolt_app, settings, stop)))
            closers.append(lambda: adapter.close(settings.worker.drain_timeout_s))
        log.info("chatmod run: started %s", ", ".join(adapters))
        stop_wait = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_wait and task.exception() is not None:
                log.error("adapter stopped with an error: %r", task.exception())
                summary["error"] = repr(task.exception())
        # Two-phase stop: adapters stop intake and drain their in-flight events, then pools close.
        for close in closers:
            try:
                await asyncio.wait_for(close(), settings.worker.drain_timeout_s)
            except Exception as exc:  # a failing close must not keep the others from closing
                log.error("error while closing an adapter: %r", exc)
        for task in [stop_wait, purger, *tasks]:
            task.cancel()
        await asyncio.gather(stop_wait, purger, *tasks, return_exceptions=True)
    summary["uptime_s"] = round(time.monotonic() - started_at, 1)
    return summary


async def _serve_slack_http(bolt_app: Any, settings: Settings, stop: asyncio.Event) -> None:
    """Slack's Events API over HTTP: /slack/events (+ /health) on the API host/port."""
    import uvicorn
    from fastapi import FastAPI

    from bot.adapters.slack.http import slack_router

    app = FastAPI(title="chatmod slack events")
    app.include_router(slack_router(bolt_app))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.api.host, port=settings.api.port, log_level="info")
    )
    serve = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await serve


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        config: Path | None = typer.Option(
            None, "--config", "-c", help="TOML config (default: ./chatmod.toml)"
        ),
    ) -> None:
        """Run the bot: the Discord and/or Slack adapters enabled in the config."""
        settings = load_settings(config)
        try:
            check_config(settings)
        except ConfigError as exc:
            typer.echo(f"chatmod run: {exc}", err=True)
            raise typer.Exit(2) from None

        async def main() -> dict[str, Any]:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            return await run_bot(settings, stop)

        summary = asyncio.run(main())
        log.info("chatmod run stopped: %s", summary)
