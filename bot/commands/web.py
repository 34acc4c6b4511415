"""``chatmod demo``, ``chatmod api`` and ``chatmod bench-api``: compose the web app from settings slices."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.settings import Settings
    from bot.web.context import WebContext

log = logging.getLogger(__name__)

ConfigPath = Annotated[str | None, typer.Option("--config", "-c", help="Settings TOML file.")]


def explainer_for(scorer: Any) -> Callable[[str, Any], dict[str, list[tuple[str, float]]]] | None:
    """Word-level evidence: occlusion on the real model, the lexicon hits on the fake."""
    if hasattr(scorer, "score_matrix"):
        from bot.web.explain import occlusion_evidence

        return lambda text, labels: occlusion_evidence(scorer, text, list(labels))
    if hasattr(scorer, "evidence"):

        def lexicon(text: str, labels: Any) -> dict[str, list[tuple[str, float]]]:
            ev = scorer.evidence(text)
            return {k: [(w, 0.0) for w in dict.fromkeys(v)] for k, v in ev.items() if k in labels}

        return lexicon
    return None


@dataclass
class Composed:
    ctx: WebContext
    app: FastAPI
    extra: dict[str, Any]


@asynccontextmanager
async def compose_web(
    settings: Settings,
    *,
    demo: bool,
    database_url: str,
    admin_token: str,
    mount_slack: bool = False,
) -> AsyncIterator[Composed]:
    """Build store, scorer, service, web context and app; close them all on exit."""
    from prometheus_client import CollectorRegistry

    from bot.compose import SystemClock, build_service, open_database, purge_loop
    from bot.web.app import create_app
    from bot.web.context import ApiMetrics, Limits, WebContext
    from bot.web.scoring import InstrumentedScoreClient, PredictionLog, ScoreCache, StorePredictionSink
    from moderation.domain import Platform

    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    clock = SystemClock()
    extra: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        t0 = time.perf_counter()
        db_settings = settings.database.model_copy(update={"url": database_url})
        store = await stack.enter_async_context(open_database(db_settings, model=settings.model))
        extra["db_seconds"] = time.perf_counter() - t0
        # The API and demo store message texts too: the same retention purge as `chatmod run`.
        purger = asyncio.create_task(
            purge_loop(store, settings.database.purge_interval_s, clock), name="chatmod-purge"
        )
        extra["purger"] = purger

        async def stop_purger() -> None:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger

        stack.push_async_callback(stop_purger)

        not_used: dict[str, str] = {}
        health: dict[str, Any] = {}
        if settings.worker.transport == "redis" and not demo:
            from bot.compose import score_client

            inner = await stack.enter_async_context(
                score_client(settings.worker, settings.model, settings.redis)
            )
            version_of: Callable[[], str] = lambda: getattr(inner, "model_version", None) or "remote"  # noqa: E731
            health["redis"] = _redis_check(settings.redis.url)
            depth: Callable[[], int] = lambda: 0  # noqa: E731
        else:
            inner, version_of, depth = await _load_model_in_background(settings, registry, stack, extra)
            not_used["redis"] = "embedded mode: in-process queue, no Redis"

        health["database"] = _db_check(store)
        plog = PredictionLog(StorePredictionSink(store))
        cache = ScoreCache(settings.api.cache_size)
        scorer = InstrumentedScoreClient(
            inner, version=version_of, cache=cache, log=plog, clock=clock, on_score=metrics.observe_score
        )
        service = build_service(settings, scorer=scorer, store=store, actions={}, clock=clock)
        model_info: dict[str, object] = {"backend": settings.model.backend}
        ctx = WebContext(
            service=service,
            scorer=scorer,
            clock=clock,
            registry=registry,
            metrics=metrics,
            limits=Limits(
                max_text_chars=settings.api.max_text_chars,
                max_batch_items=settings.api.max_batch_items,
                max_body_bytes=max(
                    64_000, settings.api.max_text_chars * 8 * min(settings.api.max_batch_items, 256)
                ),
            ),
            api_key=settings.api.api_key.get_secret_value(),
            admin_token=admin_token,
            explainer=_deferred_explainer(inner),
            health_checks=health,
            not_used=not_used,
            scoring_depth=depth,
            model_info=model_info,
            default_server=(Platform.DEMO, "demo") if demo else (Platform.API, "default"),
            sample_interval=5.0 if demo else 15.0,
        )
        routers = []
        if demo:
            from bot.web.demo import build_demo_router, setup_demo_policy
            from bot.web.demo_actions import DemoActions
            from bot.web.hub import ChatHub

            hub = ChatHub()
            service.register_actions(Platform.DEMO, DemoActions(hub))
            await setup_demo_policy(service)
            routers.append(build_demo_router(ctx, hub))
            extra["hub"] = hub
        if mount_slack:
            from bot.adapters.slack.app import adapter_for, build_slack_app
            from bot.adapters.slack.http import slack_router

            bolt_app = build_slack_app(service, settings.slack)
            routers.append(slack_router(bolt_app))
            adapter = adapter_for(bolt_app)
            ctx.closers.append(lambda: adapter.close(settings.worker.drain_timeout_s))
        app = create_app(ctx, extra_routers=routers, title="chatmod demo" if demo else "chatmod API")
        extra["startup_seconds"] = time.perf_counter() - t0
        yield Composed(ctx, app, extra)


async def _load_model_in_background(
    settings: Settings, registry: Any, stack: AsyncExitStack, extra: dict[str, Any]
) -> tuple[Any, Callable[[], str], Callable[[], int]]:
    """Start loading the model in a thread and return at once: the server can listen (and print its
    URL) while torch and transformers import, which takes seconds on a small CPU box."""
    from bot.compose import batch_policy, build_text_scorer
    from bot.web.scoring import DeferredScoreClient

    if settings.model.backend == "torch":
        # Fail at once, before listening, on a missing or broken artifact (cheap: no torch import).
        from moderation.scoring.artifact import check_artifact, default_model_path

        check_artifact(settings.model.path or default_model_path())
    deferred = DeferredScoreClient()

    async def load() -> None:
        started = time.perf_counter()
        try:
            text_scorer = await asyncio.to_thread(build_text_scorer, settings.model)
            from moderation.scoring.local import LocalScoreClient
            from moderation.scoring.metrics import ScoringMetrics

            local = LocalScoreClient(
                text_scorer,
                batch_policy(settings.worker, text_scorer),
                default_timeout=settings.worker.score_timeout_s,
                drain_timeout=settings.worker.drain_timeout_s,
                metrics=ScoringMetrics(registry),
            )
            await local.start()
        except Exception as exc:
            log.exception("could not load the model")
            deferred.fail(exc)
            return
        extra["model_seconds"] = time.perf_counter() - started
        deferred.set(local, text_scorer, extra["model_seconds"])
        log.info("model %s ready in %.1fs", text_scorer.version, extra["model_seconds"])

    task = asyncio.create_task(load(), name="chatmod-model-load")

    async def close() -> None:
        if not task.done():
            await asyncio.wait([task], timeout=120)
        client = deferred.client
        if client is not None:
            await client.close()  # type: ignore[attr-defined]

    stack.push_async_callback(close)
    extra["deferred"] = deferred

    def version() -> str:
        client = deferred.client
        return client.runner.version if client is not None else "loading"  # type: ignore[attr-defined]

    def depth() -> int:
        client = deferred.client
        return client.depth if client is not None else 0  # type: ignore[attr-defined]

    return deferred, version, depth


def _deferred_explainer(inner: Any) -> Callable[[str, Any], dict[str, list[tuple[str, float]]]]:
    def explain(text: str, labels: Any) -> dict[str, list[tuple[str, float]]]:
        fn = explainer_for(getattr(inner, "scorer", None))
        return fn(text, labels) if fn is not None else {}

    return explain


def _db_check(store: Any) -> Callable[[], Any]:
    async def check() -> bool:
        from sqlalchemy import text

        engine = store.engine
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    return check


def _redis_check(url: str) -> Callable[[], Any]:
    async def check() -> bool:
        import redis.asyncio as aioredis

        client = aioredis.from_url(url, socket_timeout=2)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    return check


async def serve(app: FastAPI, host: str, port: int, on_started: Callable[[int], None]) -> None:
    """Run uvicorn until SIGINT/SIGTERM; ``on_started`` gets the bound port (useful with port 0)."""
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", ws="websockets-sansio", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # re-raise the startup error
            return
        await asyncio.sleep(0.02)
    bound = port
    for s in server.servers:
        for sock in s.sockets:
            bound = sock.getsockname()[1]
    on_started(bound)
    await task


def _sqlite_url(path: str) -> str:
    return f"sqlite+aiosqlite:///{Path(path).expanduser().resolve()}"


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        port: Annotated[
            int | None, typer.Option(help="Port (0 = a free port). Default: demo.port (8080).")
        ] = None,
        host: Annotated[str | None, typer.Option(help="Interface. Default: demo.host (127.0.0.1).")] = None,
        db: Annotated[
            str | None, typer.Option("--db", help="SQLite file. Default: demo.database_url.")
        ] = None,
        config: ConfigPath = None,
    ) -> None:
        """Run the embedded demo: a local web chat moderated live by the real model, plus the dashboard."""
        from bot.settings import load_settings

        logging.getLogger("alembic").setLevel(logging.WARNING)
        settings = load_settings(config)
        url = _sqlite_url(db) if db else settings.demo.database_url
        token = settings.api.admin_token.get_secret_value() or secrets.token_urlsafe(12)
        _run_or_exit(
            _run_demo(
                settings, url, host or settings.demo.host, settings.demo.port if port is None else port, token
            )
        )

    @app.command()
    def api(
        port: Annotated[
            int | None, typer.Option(help="Port (0 = a free port). Default: api.port (8000).")
        ] = None,
        host: Annotated[str | None, typer.Option(help="Interface. Default: api.host.")] = None,
        config: ConfigPath = None,
    ) -> None:
        """Run the HTTP API (/v1/moderate, /predict, /health, /metrics, /docs) and the dashboard."""
        from bot.settings import load_settings

        settings = load_settings(config)
        _run_or_exit(
            _run_api(settings, host or settings.api.host, settings.api.port if port is None else port)
        )

    @app.command("bench-api")
    def bench_api(
        requests: Annotated[int, typer.Option("--requests", "-n", help="Requests to send.")] = 1000,
        concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 1,
        db: Annotated[
            str | None, typer.Option("--db", help="SQLite file (default: a temporary one).")
        ] = None,
        config: ConfigPath = None,
    ) -> None:
        """Measure /predict latency (p50/p99) over HTTP against a local `chatmod api` on a free port."""
        from bot.web.bench import run_bench

        run_bench(requests=requests, concurrency=concurrency, db=db, config=config)


def _run_or_exit(main: Any) -> None:
    """Run a server coroutine; a missing/corrupt model or an unreachable database is one clear line."""
    from moderation.scoring.artifact import ArtifactError

    try:
        asyncio.run(main)
    except ArtifactError as exc:
        typer.echo(f"error: cannot load the model: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _announce(lines: list[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


async def _announce_model(composed: Composed, what: str) -> None:
    deferred = composed.extra.get("deferred")
    if deferred is None:
        return
    await deferred.wait()
    if deferred.ready:
        _announce([f"Model {composed.ctx.model_version} loaded in {deferred.loaded_in:.1f}s: {what}"])
    else:
        _announce(["Model failed to load (see the log above): messages are held for review unscored."])


async def _run_demo(settings: Settings, database_url: str, host: str, port: int, token: str) -> None:
    started = time.perf_counter()
    async with compose_web(settings, demo=True, database_url=database_url, admin_token=token) as composed:
        announcer: list[asyncio.Task[None]] = []

        def on_started(bound: int) -> None:
            base = f"http://{host}:{bound}"
            _announce(
                [
                    f"chatmod demo listening after {time.perf_counter() - started:.1f}s "
                    f"(database {database_url})",
                    f"  Chat:       {base}/   (open several tabs, one name per tab)",
                    f"  Dashboard:  {base}/dashboard   admin token: {token}",
                    f"  API docs:   {base}/docs",
                    "Press Ctrl+C to stop.",
                ]
            )
            announcer.append(
                asyncio.create_task(_announce_model(composed, "every message is now moderated live"))
            )

        try:
            await serve(composed.app, host, port, on_started)
        finally:
            for task in announcer:
                task.cancel()


async def _run_api(settings: Settings, host: str, port: int) -> None:
    token = settings.api.admin_token.get_secret_value()
    mount_slack = settings.slack.enabled and not settings.slack.socket_mode
    async with compose_web(
        settings, demo=False, database_url=settings.database.url, admin_token=token, mount_slack=mount_slack
    ) as composed:
        announcer: list[asyncio.Task[None]] = []

        def on_started(bound: int) -> None:
            base = f"http://{host}:{bound}"
            _announce(
                [
                    "chatmod api listening"
                    + (
                        " (model loading; /health is 503 until it is ready)"
                        if composed.ctx.model_version == "loading"
                        else ""
                    ),
                    f"  API:        {base}/v1/moderate  {base}/predict   docs: {base}/docs",
                    f"  Dashboard:  {base}/dashboard"
                    + ("" if token else "   (admin login disabled: set CHATMOD_API__ADMIN_TOKEN)"),
                ]
            )
            announcer.append(asyncio.create_task(_announce_model(composed, "serving predictions")))

        try:
            await serve(composed.app, host, port, on_started)
        finally:
            for task in announcer:
                task.cancel()
