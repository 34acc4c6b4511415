"""The web edge's view of scoring: a cache for repeated texts and a prediction log with latencies.

``InstrumentedScoreClient`` wraps whatever ``ScoreClient`` the composition root built (the in-process
batcher, the Redis client or a fake) and is itself a ``ScoreClient``, so the moderation service, the
API and the demo chat all share one cache and log every prediction the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from moderation.domain import ScoreResult
from moderation.errors import ScoringError, ScoringTimeout
from moderation.labels import LABELS
from moderation.normalize import normalize_for_scoring
from moderation.ports import Clock, ScoreClient
from moderation.store.analytics import PredictionBucket

log = logging.getLogger(__name__)


def text_key(text: str) -> str:
    """Hash of the normalised text: two spellings the model sees identically share a cache entry."""
    return hashlib.sha256(normalize_for_scoring(text).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One scored text, as the ``predictions`` table stores it (no text: only its hash)."""

    created_at: datetime
    source: str
    text_hash: str
    model_version: str
    latency_ms: float
    scores: dict[str, float]
    cached: bool = False

    @property
    def top(self) -> tuple[str | None, float | None]:
        if not self.scores:
            return None, None
        label = max(self.scores, key=lambda k: self.scores[k])
        return label, self.scores[label]


class PredictionSink(Protocol):
    async def write(self, records: Sequence[PredictionRecord]) -> None: ...

    async def stats(self, since: datetime, until: datetime, bucket: timedelta) -> list[PredictionBucket]: ...


def bucket_records(
    records: Sequence[PredictionRecord],
    since: datetime,
    until: datetime,
    bucket: timedelta,
    flag_at: float = 0.5,
) -> list[PredictionBucket]:
    """The same aggregation as ``SqlStore.prediction_stats``, over records held in memory."""
    n = max(1, math.ceil((until - since) / bucket))
    groups: list[list[PredictionRecord]] = [[] for _ in range(n)]
    for r in records:
        if since <= r.created_at < until:
            groups[min(n - 1, int((r.created_at - since) / bucket))].append(r)
    out = []
    for i, group in enumerate(groups):
        start = since + bucket * i
        flagged = dict.fromkeys(LABELS, 0)
        if not group:
            out.append(PredictionBucket(start, start + bucket, 0, flagged=flagged))
            continue
        lat = sorted(r.latency_ms for r in group)
        sums = dict.fromkeys(LABELS, 0.0)
        for r in group:
            for label, p in r.scores.items():
                sums[label] = sums.get(label, 0.0) + p
                flagged[label] = flagged.get(label, 0) + (p >= flag_at)
        out.append(
            PredictionBucket(
                start,
                start + bucket,
                len(group),
                latency_mean_ms=sum(lat) / len(lat),
                latency_p50_ms=lat[max(1, math.ceil(0.5 * len(lat))) - 1],
                latency_p95_ms=lat[max(1, math.ceil(0.95 * len(lat))) - 1],
                latency_max_ms=lat[-1],
                flagged=flagged,
                mean_scores={k: v / len(group) for k, v in sums.items()},
            )
        )
    return out


class MemoryPredictionSink:
    """A bounded in-memory sink (tests, and deployments without the SQL store)."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self.records: deque[PredictionRecord] = deque(maxlen=maxlen)

    async def write(self, records: Sequence[PredictionRecord]) -> None:
        self.records.extend(records)

    async def stats(self, since: datetime, until: datetime, bucket: timedelta) -> list[PredictionBucket]:
        return bucket_records(list(self.records), since, until, bucket)


class StorePredictionSink:
    """Writes prediction records to the SQL store's ``predictions`` table and reads the store's
    time-bucketed aggregates back for the charts (so they survive restarts)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    async def write(self, records: Sequence[PredictionRecord]) -> None:
        for r in records:
            await self._store.record_prediction(
                r.text_hash,
                r.model_version,
                r.latency_ms,
                r.scores,
                r.created_at,
                source=(r.source + "+cache") if r.cached else r.source,
            )

    async def stats(self, since: datetime, until: datetime, bucket: timedelta) -> list[PredictionBucket]:
        return list(await self._store.prediction_stats(since, until, bucket))


class PredictionLog:
    """Buffers prediction records and writes them in the background, off the request's path.

    A failed write is logged and the batch dropped: prediction logging must never fail a request.
    """

    def __init__(self, sink: PredictionSink, *, flush_interval: float = 0.5, max_buffer: int = 50_000):
        self.sink = sink
        self._buffer: list[PredictionRecord] = []
        self._interval = flush_interval
        self._max = max_buffer
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def add(self, record: PredictionRecord) -> None:
        if len(self._buffer) >= self._max:
            self.dropped += 1
            return
        self._buffer.append(record)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="chatmod-prediction-log")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            await self.sink.write(batch)
        except Exception:  # logging must never take the API down
            log.exception("could not write %d prediction records", len(batch))

    async def stats(self, since: datetime, until: datetime, bucket: timedelta) -> list[PredictionBucket]:
        await self.flush()
        return await self.sink.stats(since, until, bucket)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


class ScoreCache:
    """LRU of score results keyed by (normalised-text hash, model version)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str], ScoreResult] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, version: str) -> ScoreResult | None:
        if self.size <= 0:
            return None
        hit = self._data.get((key, version))
        if hit is None:
            self.misses += 1
            return None
        self._data.move_to_end((key, version))
        self.hits += 1
        return hit

    def put(self, key: str, version: str, result: ScoreResult) -> None:
        if self.size <= 0:
            return
        self._data[(key, version)] = result
        self._data.move_to_end((key, version))
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class Scored:
    result: ScoreResult
    cached: bool
    latency_ms: float


class InstrumentedScoreClient:
    """``ScoreClient`` with a cache and a prediction log. ``version()`` names the live model version."""

    def __init__(
        self,
        inner: ScoreClient,
        *,
        version: Callable[[], str],
        cache: ScoreCache,
        log: PredictionLog,
        clock: Clock,
        on_score: Callable[[Scored], None] | None = None,
    ) -> None:
        self.inner = inner
        self.version = version
        self.cache = cache
        self.log = log
        self._clock = clock
        self._on_score = on_score
        self._last_seen: str | None = None

    async def score(self, text: str, *, timeout: float | None = None) -> ScoreResult:
        return (await self.score_detailed(text, timeout=timeout, source="chat")).result

    async def score_detailed(self, text: str, *, timeout: float | None = None, source: str = "api") -> Scored:
        started = time.perf_counter()
        key = text_key(text)
        version = self.version()
        if version in ("remote", "loading"):
            # Redis workers: the version is only known from results; a reload shows on the next miss.
            version = self._last_seen or version
        hit = self.cache.get(key, version)
        if hit is not None:
            scored = Scored(hit, True, (time.perf_counter() - started) * 1000)
        else:
            result = await self.inner.score(text, timeout=timeout)
            self._last_seen = result.model_version
            self.cache.put(key, result.model_version, result)
            scored = Scored(result, False, (time.perf_counter() - started) * 1000)
        self.log.add(
            PredictionRecord(
                created_at=self._clock.now(),
                source=source,
                text_hash=key,
                model_version=scored.result.model_version,
                latency_ms=round(scored.latency_ms, 3),
                scores={k: round(float(v), 6) for k, v in scored.result.scores.items()},
                cached=scored.cached,
            )
        )
        if self._on_score is not None:
            self._on_score(scored)
        return scored


class DeferredScoreClient:
    """A ``ScoreClient`` whose real client arrives later: the web server starts (and prints its URL)
    while the model loads in a thread. Requests made meanwhile wait for the model, up to ``startup_wait``
    seconds, before their own timeout starts."""

    def __init__(self, startup_wait: float = 120.0) -> None:
        self._ready = asyncio.Event()
        self._client: ScoreClient | None = None
        self._error: BaseException | None = None
        self.startup_wait = startup_wait
        self.scorer: Any = None
        self.loaded_in: float | None = None

    @property
    def ready(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> ScoreClient | None:
        return self._client

    def set(self, client: ScoreClient, scorer: Any = None, loaded_in: float | None = None) -> None:
        self._client, self.scorer, self.loaded_in = client, scorer, loaded_in
        self._ready.set()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._ready.set()

    async def wait(self) -> None:
        await self._ready.wait()

    async def score(self, text: str, *, timeout: float | None = None) -> ScoreResult:
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), self.startup_wait)
            except TimeoutError:
                raise ScoringTimeout("the model is still loading", after=2.0) from None
        if self._client is None:
            raise ScoringError(f"the model failed to load: {self._error}")
        return await self._client.score(text, timeout=timeout)
