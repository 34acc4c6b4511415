"""Builders used by the CLI commands: settings slice in, component out. The one place that wires things.

Heavy imports (torch, redis, sqlalchemy engines) happen inside the builders so a command loads only
what it runs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.settings import DatabaseSettings, ModelSettings, RedisSettings, Settings, WorkerSettings
from moderation.domain import Platform
from moderation.policy import Tiers
from moderation.ports import Clock, PlatformActions, ScoreClient, TextScorer
from moderation.scoring.batcher import BatchPolicy
from moderation.service import ModerationService

if TYPE_CHECKING:
    from moderation.store.sql import SqlStore

log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def build_text_scorer(model: ModelSettings) -> TextScorer:
    """The model backend: the shipped/configured artifact, or the deterministic fake (tests only)."""
    if model.backend == "fake":
        from moderation.fakes import FakeScorer

        log.warning("using the FAKE lexicon scorer: for tests only, not moderation")
        return FakeScorer()
    from moderation.scoring.backend import TorchScorer

    return TorchScorer.load(
        model.path or None,
        device=model.device,
        quantize=model.int8,
        threads=model.threads or None,
        engine=model.engine,
        serial_tokens=model.serial_tokens,
    )


#: ``max_wait_ms`` when settings leave it unset, by the scorer's device (see ``WorkerSettings``).
AUTO_MAX_WAIT_MS = {"cpu": 0.0, "cuda": 2.0}


def max_wait_ms_for(worker: WorkerSettings, scorer: object = None) -> float:
    """The configured ``max_wait_ms``, or the device's default when it is unset."""
    if worker.max_wait_ms != "auto":
        return worker.max_wait_ms
    device = getattr(getattr(scorer, "device", None), "type", "cpu")
    return AUTO_MAX_WAIT_MS.get(device, 0.0)


def batch_policy(worker: WorkerSettings, scorer: object = None) -> BatchPolicy:
    """The batcher's knobs from settings; the per-call cost estimate comes from the scorer's engine."""
    overhead = getattr(scorer, "call_overhead_tokens", None)
    return BatchPolicy(
        max_batch=worker.max_batch,
        max_tokens=worker.token_budget,
        max_wait=max_wait_ms_for(worker, scorer) / 1000,
        max_queue=worker.queue_size,
        **({"call_overhead_tokens": int(overhead)} if isinstance(overhead, int) else {}),
    )


@asynccontextmanager
async def score_client(
    worker: WorkerSettings, model: ModelSettings, redis: RedisSettings
) -> AsyncIterator[ScoreClient]:
    """In-process batcher over the model (embedded), or the Redis client feeding `chatmod worker`s."""
    if worker.transport == "redis":
        from moderation.scoring.redis_client import RedisScoreClient

        async with RedisScoreClient.from_url(
            redis.url,
            stream=redis.stream,
            max_pending=redis.max_pending,
            socket_timeout=redis.socket_timeout_s,
            default_timeout=worker.score_timeout_s,
        ) as client:
            yield client
        return
    from moderation.scoring.local import LocalScoreClient

    scorer = build_text_scorer(model)
    async with LocalScoreClient(
        scorer,
        batch_policy(worker, scorer),
        default_timeout=worker.score_timeout_s,
        drain_timeout=worker.drain_timeout_s,
    ) as client:
        yield client


def card_tiers(model: ModelSettings) -> dict[str, Tiers] | None:
    """The model card's recommended per-label tiers: what a new server starts with.

    They were chosen on validation data for this model's calibrated probabilities (docs/MODEL.md);
    the fixed ``DEFAULT_TIERS`` apply only without a card (the fake scorer).
    """
    if model.backend == "fake":
        return None
    from moderation.scoring.artifact import default_model_path, read_card

    card = read_card(model.path or default_model_path())
    try:
        return {label: Tiers(t.review_at, t.act_at) for label, t in card.thresholds.items()}
    except ValueError as exc:
        log.warning("model card thresholds unusable (%s): using the built-in defaults", exc)
        return None


@asynccontextmanager
async def open_database(
    database: DatabaseSettings, *, migrate: bool = True, model: ModelSettings | None = None
) -> AsyncIterator[SqlStore]:
    """Open the SQL store; applies pending migrations first when ``migrate`` (idempotent).

    With ``model``, servers seen for the first time get the model card's recommended thresholds.
    """
    from moderation.store.sql import open_store

    if migrate:
        from migrations import upgrade

        await upgrade(database.url)
    store = open_store(
        database.url,
        retention=timedelta(days=database.retention_days),
        echo=database.echo,
        erasure_salt=database.erasure_salt.get_secret_value() or None,
    )
    if model is not None:
        store.default_thresholds = card_tiers(model)
    try:
        yield store
    finally:
        await store.close()


def build_service(
    settings: Settings,
    *,
    scorer: ScoreClient,
    store: SqlStore,
    actions: Mapping[Platform, PlatformActions],
    clock: Clock | None = None,
) -> ModerationService:
    return ModerationService(
        scorer=scorer,
        store=store,
        actions=actions,
        clock=clock or SystemClock(),
        score_timeout=settings.worker.score_timeout_s,
    )


async def purge_loop(store: SqlStore, interval_s: float, clock: SystemClock | None = None) -> None:
    """Erase message texts older than the retention window, now and every ``interval_s``."""
    import asyncio

    clock = clock or SystemClock()
    while True:
        try:
            purged = await store.purge_expired_text(clock.now())
            log.info("retention purge: %s", purged)
        except Exception:  # a failed purge must not stop the bot; it is retried next round
            log.exception("retention purge failed")
        await asyncio.sleep(interval_s)
