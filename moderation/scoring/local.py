"""``LocalScoreClient``: the embedded-mode score client (``chatmod demo``, single-process deployments).

The same ``Batcher`` and ``InferenceRunner`` as the Redis worker, behind an in-process queue: each
``score()`` call queues a request with its own future; one batch loop flushes the batcher, runs the
model on the inference thread and resolves the futures. Requests whose caller gave up (timed out or
cancelled) are skipped before they reach the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from types import TracebackType

from moderation.domain import ScoreResult
from moderation.errors import ScoringError, ScoringOverloaded, ScoringTimeout
from moderation.ports import TextScorer
from moderation.scoring.batcher import Batcher, BatchPolicy
from moderation.scoring.metrics import ScoringMetrics
from moderation.scoring.runner import InferenceRunner, Prepared

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Request:
    prepared: Prepared
    future: asyncio.Future[ScoreResult]


class LocalScoreClient:
    """In-process ``ScoreClient``. Use as ``async with LocalScoreClient(scorer) as client: ...``."""

    def __init__(
        self,
        scorer: TextScorer,
        policy: BatchPolicy | None = None,
        *,
        default_timeout: float = 5.0,
        drain_timeout: float = 10.0,
        metrics: ScoringMetrics | None = None,
    ) -> None:
        self._runner = InferenceRunner(scorer)
        self._batcher: Batcher[_Request] = Batcher(policy)
        self._default_timeout = default_timeout
        self._drain_timeout = drain_timeout
        self.metrics = metrics or ScoringMetrics()
        self.metrics.set_model(scorer.version)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    @property
    def runner(self) -> InferenceRunner:
        return self._runner

    @property
    def depth(self) -> int:
        return self._batcher.depth

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._batch_loop(), name="chatmod-local-batcher")

    async def __aenter__(self) -> LocalScoreClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def swap_scorer(self, scorer: TextScorer) -> None:
        """Hot reload: the next batch uses ``scorer``; requests already queued are not dropped."""
        old = self._runner.swap(scorer)
        self.metrics.set_model(scorer.version)
        log.info("model swapped %s -> %s", old, scorer.version)

    async def score(self, text: str, *, timeout: float | None = None) -> ScoreResult:
        """Score one text; raises ``ScoringOverloaded`` when the queue is full, ``ScoringTimeout`` late."""
        if self._closing or self._task is None:
            raise ScoringOverloaded("local scorer is not running")
        timeout = self._default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        now = loop.time()
        future: asyncio.Future[ScoreResult] = loop.create_future()
        prepared = self._runner.prepare([text])[0]
        self._batcher.add(_Request(prepared, future), prepared.tokens, now, deadline=now + timeout)
        self.metrics.queue_depth.set(self._batcher.depth)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            future.cancel()
            raise ScoringTimeout(f"no score within {timeout:.3f}s", after=timeout) from None

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._closing and self._batcher.depth == 0:
                return
            flush_at = self._batcher.next_flush_at()
            now = loop.time()
            if flush_at is None or (flush_at > now and not self._closing):
                self._wake.clear()
                delay = None if flush_at is None else flush_at - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            await self._run_batch(loop.time())

    async def _run_batch(self, now: float) -> None:
        batch = self._batcher.take(now)
        self.metrics.queue_depth.set(self._batcher.depth)
        for p in batch.expired:
            self.metrics.requests.labels(outcome="expired").inc()
            if not p.item.future.done():
                p.item.future.set_exception(ScoringTimeout("deadline passed before scoring"))
        # Drop requests whose caller already gave up; keep the length-sorted grouping of the rest.
        micro = [[p for p in m if not p.item.future.done()] for m in batch.micro]
        micro = [m for m in micro if m]
        if not micro:
            return
        for m in micro:
            for p in m:
                self.metrics.stage_seconds.labels(stage="queue").observe(now - p.enqueued_at)
        self.metrics.observe_batch(batch.size, batch.real_tokens, batch.padded_tokens, len(micro))
        try:
            outcomes, version, seconds = await self._runner.run([[p.item.prepared for p in m] for m in micro])
        except Exception as exc:  # the runner isolates per-item failures; this is the executor failing
            log.exception("inference thread failed")
            for m in micro:
                for p in m:
                    if not p.item.future.done():
                        p.item.future.set_exception(ScoringError(f"inference failed: {exc}"))
            return
        self.metrics.stage_seconds.labels(stage="model").observe(seconds)
        done = asyncio.get_running_loop().time()
        for m, outs in zip(micro, outcomes, strict=True):
            for p, out in zip(m, outs, strict=True):
                fut = p.item.future
                if fut.done():
                    continue
                if out.scores is None:
                    self.metrics.requests.labels(outcome="failed").inc()
                    fut.set_exception(ScoringError(f"scoring failed: {out.error}"))
                else:
                    self.metrics.requests.labels(outcome="ok").inc()
                    self.metrics.stage_seconds.labels(stage="total").observe(done - p.enqueued_at)
                    fut.set_result(ScoreResult(out.scores, version, empty=not p.item.prepared.text.strip()))

    async def close(self) -> None:
        """Stop intake, finish queued requests within the drain timeout, stop the inference thread."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        started = time.monotonic()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self._drain_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            for p in self._batcher.clear():
                if not p.item.future.done():
                    p.item.future.set_exception(ScoringOverloaded("scorer shut down"))
        self._runner.close()
        self._closed = True
        st = self._batcher.stats
        log.info(
            "local scorer closed: batches=%d items=%d expired=%d rejected=%d padding_waste=%.3f drain=%.3fs",
            st.batches,
            st.items,
            st.expired,
            st.rejected,
            st.padding_waste,
            time.monotonic() - started,
        )
