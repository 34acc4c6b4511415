"""What the web app is given by the composition root (``bot/commands/web.py``): no globals, no env."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bot.web.scoring import InstrumentedScoreClient, Scored
from moderation.domain import Platform
from moderation.labels import LABELS
from moderation.ports import Clock
from moderation.service import ModerationService

log = logging.getLogger(__name__)

#: label -> [(word, how much the label's score fell without it)], for the labels asked about.
Explainer = Callable[[str, Sequence[str]], Mapping[str, Sequence[tuple[str, float]]]]
HealthCheck = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Limits:
    max_text_chars: int = 4000
    max_batch_items: int = 256
    #: Hard cap on a request body; bigger bodies are refused with 413 before being parsed.
    max_body_bytes: int = 2_000_000


class ApiMetrics:
    """The API's own Prometheus series (the scoring pipeline registers its own on the same registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "chatmod_api_requests", "API requests by route and status", ["route", "status"], registry=registry
        )
        self.latency = Histogram(
            "chatmod_api_request_seconds",
            "API request latency by route",
            ["route"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.cache = Counter(
            "chatmod_api_cache", "Score cache lookups by result", ["result"], registry=registry
        )
        self.predictions = Counter(
            "chatmod_predictions", "Texts scored (API, demo and bot)", ["source"], registry=registry
        )
        self.score_latency = Histogram(
            "chatmod_prediction_seconds",
            "Time to get scores for one text (cache, queue and model)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=registry,
        )
        self.review_queue = Gauge(
            "chatmod_review_queue_depth", "Open cases awaiting review", registry=registry
        )

    def observe_score(self, scored: Scored) -> None:
        self.cache.labels(result="hit" if scored.cached else "miss").inc()
        self.score_latency.observe(scored.latency_ms / 1000)


@dataclass(frozen=True, slots=True)
class QueueSample:
    at: datetime
    review_open: int
    scoring_depth: int


@dataclass
class WebContext:
    """Everything the routers use. Built once by the composition root, closed by the app's lifespan."""

    service: ModerationService
    scorer: InstrumentedScoreClient
    clock: Clock
    registry: CollectorRegistry
    metrics: ApiMetrics
    labels: tuple[str, ...] = LABELS
    limits: Limits = field(default_factory=Limits)
    api_key: str = ""
    admin_token: str = ""
    explainer: Explainer | None = None
    #: name -> async check; /health reports each (e.g. database, redis). Model is always reported.
    health_checks: Mapping[str, HealthCheck] = field(default_factory=dict)
    #: name -> "not used" note for components this deployment does not have (e.g. redis in embedded mode).
    not_used: Mapping[str, str] = field(default_factory=dict)
    scoring_depth: Callable[[], int] = lambda: 0
    model_info: Mapping[str, object] = field(default_factory=dict)
    #: Servers the dashboard opens by default: (platform, server id).
    default_server: tuple[Platform, str] = (Platform.API, "default")
    #: Periodic queue-depth samples for the dashboard chart (bounded).
    queue_samples: list[QueueSample] = field(default_factory=list)
    sample_interval: float = 15.0
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    explanations: ExplanationCache | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.explanations is None:
            self.explanations = ExplanationCache(self.explainer)

    @property
    def model_version(self) -> str:
        return self.scorer.version()

    async def start(self) -> None:
        await self.scorer.log.start()
        self._tasks.append(asyncio.create_task(self._sample_loop(), name="chatmod-queue-sampler"))

    async def sample_queues(self) -> QueueSample:
        open_cases = await self.service.store.list_cases(status="open", limit=100_000)
        sample = QueueSample(self.clock.now(), len(open_cases), self.scoring_depth())
        self.metrics.review_queue.set(sample.review_open)
        self.queue_samples.append(sample)
        del self.queue_samples[:-2000]
        return sample

    async def _sample_loop(self) -> None:
        while True:
            try:
                await self.sample_queues()
            except Exception:
                log.exception("queue sampling failed")
            await asyncio.sleep(self.sample_interval)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.scorer.log.close()
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:
                log.exception("error while closing web context")
        self.closers.clear()


class ExplanationCache:
    """Which words drove a case's labels, computed once per case off the event loop (the real model
    scores one variant per word, so this is only done for cases moderators look at)."""

    def __init__(self, explainer: Explainer | None, max_items: int = 2000) -> None:
        self._explainer = explainer
        self._cache: dict[int, Mapping[str, Sequence[tuple[str, float]]]] = {}
        self._max = max_items
        self._lock = asyncio.Lock()

    async def for_case(
        self, case_id: int, text: str | None, labels: Sequence[str]
    ) -> Mapping[str, Sequence[tuple[str, float]]]:
        if self._explainer is None or not text or not labels:
            return {}
        if case_id in self._cache:
            return self._cache[case_id]
        async with self._lock:  # one explanation at a time: it is a burst of model calls
            if case_id not in self._cache:
                try:
                    result = await asyncio.to_thread(self._explainer, text, tuple(labels))
                except Exception:
                    log.exception("explanation failed for case %s", case_id)
                    result = {}
                if len(self._cache) >= self._max:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[case_id] = result
        return self._cache[case_id]
