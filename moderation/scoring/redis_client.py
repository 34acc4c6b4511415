"""``RedisScoreClient``: the bot's ``ScoreClient`` when scoring runs in separate ``chatmod worker``s.

``score()`` coalesces concurrent calls: the requests queued during one event-loop turn go to Redis in
one bounded-intake script call (one round trip), which refuses entries past ``max_pending`` — the
caller gets ``ScoringOverloaded`` and the bot holds and escalates rather than piling up work. One
reader task follows this client's results stream with ``XREAD BLOCK`` from the last id it saw and
resolves the waiting futures by request id; a duplicate reply (at-least-once delivery after a worker
crash) is counted and ignored, so each caller gets exactly one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from redis.asyncio import Redis

from moderation.domain import ScoreResult
from moderation.errors import ScoringError, ScoringOverloaded, ScoringTimeout
from moderation.scoring.redis_transport import BOUNDED_XADD, TRANSIENT, Backoff, StreamNames, connect
from moderation.scoring.wire import ScoreReply, ScoreRequest, WireError, decode_reply, encode_request

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Traced:
    """A reply with client-side timings: ``enqueue_s`` (intake round trip), ``total_s`` (enqueue start
    → reply read) and ``received_at`` (UNIX time, to set against the worker's ``done_at``)."""

    reply: ScoreReply
    enqueue_s: float
    total_s: float
    received_at: float


@dataclass(slots=True)
class ClientStats:
    sent: int = 0
    answered: int = 0
    duplicates: int = 0
    late: int = 0
    overloaded: int = 0
    timeouts: int = 0
    enqueue_retries: int = 0
    bad_replies: int = 0


class RedisScoreClient:
    """``async with RedisScoreClient(redis) as client: result = await client.score(text)``."""

    def __init__(
        self,
        redis: Redis,
        *,
        names: StreamNames | None = None,
        max_pending: int = 10_000,
        default_timeout: float = 5.0,
        client_id: str | None = None,
        read_count: int = 512,
        block_ms: int = 250,
    ) -> None:
        self.redis = redis
        self.names = names or StreamNames()
        self.max_pending = max_pending
        self.default_timeout = default_timeout
        self.client_id = client_id or uuid.uuid4().hex
        self.results_key = self.names.results_key(self.client_id)
        self.read_count = read_count
        self.block_ms = block_ms
        self._script = redis.register_script(BOUNDED_XADD)
        self._waiting: dict[str, asyncio.Future[tuple[ScoreReply, float]]] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._outbox: list[tuple[bytes, asyncio.Future[bool], float]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._seq = 0
        self._last_id = b"0-0"
        self._closed = False
        self._owns_redis = False
        self.stats = ClientStats()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str | None = None,
        group: str | None = None,
        max_pending: int = 10_000,
        socket_timeout: float = 5.0,
        default_timeout: float = 5.0,
    ) -> RedisScoreClient:
        """A client with its own connection pool (closed by ``close()``), for the composition root."""
        defaults = StreamNames()
        names = StreamNames(stream=stream or defaults.stream, group=group or defaults.group)
        client = cls(
            connect(url, socket_timeout=socket_timeout),
            names=names,
            max_pending=max_pending,
            default_timeout=default_timeout,
        )
        client._owns_redis = True
        return client

    async def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_results(), name="chatmod-score-results")

    async def __aenter__(self) -> RedisScoreClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reading; callers still waiting get ``ScoringOverloaded``; delete our results stream."""
        if self._closed:
            return
        self._closed = True
        # Let the reader leave its blocking XREAD by itself: cancelling a blocked redis-py read can
        # leave the connection's close hanging.
        for task, grace in ((self._reader, self.block_ms / 1000 + 1.0), (self._flusher, 1.0)):
            if task is not None and not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), grace)
                except TimeoutError:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ScoringOverloaded("score client closed"))
        self._waiting.clear()
        with contextlib.suppress(*TRANSIENT):
            await self.redis.delete(self.results_key)
        if self._owns_redis:
            await self.redis.aclose()

    # ------------------------------------------------------------------ scoring

    async def score(self, text: str, *, timeout: float | None = None) -> ScoreResult:
        """Score one text. Raises ``ScoringOverloaded`` (backlog full) or ``ScoringTimeout``."""
        reply = (await self.request(text, timeout=timeout)).reply
        if reply.error == "expired":
            raise ScoringTimeout("the worker dropped the request: its deadline passed")
        if reply.error is not None:
            raise ScoringError(f"scoring failed: {reply.error} {reply.detail}".strip())
        return ScoreResult(reply.scores, reply.model_version, empty=not text.strip())

    async def request(self, text: str, *, timeout: float | None = None, normalized: bool = False) -> Traced:
        """The raw reply (with the worker's stage timings) and the client-side timings."""
        if self._closed or self._reader is None:
            raise ScoringOverloaded("score client is not running")
        timeout = self.default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        sent_at = time.time()
        self._seq += 1
        rid = f"{self.client_id}:{self._seq}"
        req = ScoreRequest(
            rid, text, self.results_key, deadline=sent_at + timeout, normalized=normalized, sent_at=sent_at
        )
        fut: asyncio.Future[tuple[ScoreReply, float]] = loop.create_future()
        self._waiting[rid] = fut
        try:
            async with asyncio.timeout(timeout):
                if not await self._enqueue(encode_request(req), sent_at + timeout):
                    self.stats.overloaded += 1
                    raise ScoringOverloaded(f"scoring backlog is full ({self.max_pending})", after=0.5)
                enqueued = time.perf_counter()
                self.stats.sent += 1
                reply, received = await fut
        except TimeoutError:
            self.stats.timeouts += 1
            raise ScoringTimeout(f"no score within {timeout:.3f}s", after=timeout) from None
        finally:
            self._waiting.pop(rid, None)
        return Traced(reply, enqueued - started, received - started, sent_at + (received - started))

    async def _enqueue(self, payload: bytes, deadline: float) -> bool:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outbox.append((payload, fut, deadline))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="chatmod-score-enqueue")
        return await fut

    async def _flush(self) -> None:
        backoff = Backoff()
        await asyncio.sleep(0)  # let every caller of this loop turn join the round trip
        while self._outbox:
            now = time.time()
            batch = [item for item in self._outbox[:1000] if not item[1].done() and item[2] > now]
            del self._outbox[:1000]
            if not batch:
                continue
            try:
                ids = await self._script(
                    keys=[self.names.stream], args=[self.max_pending, *(b[0] for b in batch)]
                )
            except TRANSIENT as exc:
                # Re-queue and retry: a request whose reply was lost may be added twice; the worker
                # then answers twice and the reader drops the duplicate.
                self.stats.enqueue_retries += 1
                self._outbox[:0] = batch
                await backoff.wait("enqueue", exc)
                continue
            except Exception as exc:  # e.g. OOM: Redis refuses writes — to the bot that is overload
                log.error("redis refused %d scoring requests: %s", len(batch), exc)
                for _payload, fut, _deadline in batch:
                    if not fut.done():
                        fut.set_exception(ScoringOverloaded(f"redis refused the request: {exc}", after=1.0))
                continue
            backoff.reset()
            added = len(cast(list[Any], ids))
            for i, (_payload, fut, _deadline) in enumerate(batch):
                if not fut.done():
                    fut.set_result(i < added)

    # ------------------------------------------------------------------ results

    async def _read_results(self) -> None:
        backoff = Backoff()
        since_trim = 0
        while not self._closed:
            try:
                resp = await self.redis.xread(
                    {self.results_key: self._last_id}, count=self.read_count, block=self.block_ms
                )
            except TRANSIENT as exc:
                await backoff.wait("result read", exc)
                continue
            except Exception as exc:  # never let the one reader die: every caller would time out
                log.exception("reading results from %s failed", self.results_key)
                await backoff.wait("result read", exc)
                continue
            backoff.reset()
            received = time.perf_counter()
            streams = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], resp or [])
            for _key, entries in streams:
                for entry_id, fields in entries:
                    self._last_id = entry_id
                    self._deliver(fields.get(b"m", b""), received)
                    since_trim += 1
            if since_trim >= 256:
                since_trim = 0
                with contextlib.suppress(*TRANSIENT):
                    await self.redis.xtrim(self.results_key, minid=self._last_id, approximate=False)

    def _deliver(self, raw: bytes, received: float) -> None:
        try:
            reply = decode_reply(raw)
        except WireError as exc:
            self.stats.bad_replies += 1
            log.warning("undecodable reply on %s: %s", self.results_key, exc)
            return
        fut = self._waiting.get(reply.id)
        if fut is not None and not fut.done():
            fut.set_result((reply, received))
            self.stats.answered += 1
            self._answered[reply.id] = None
            if len(self._answered) > 100_000:
                self._answered.popitem(last=False)
        elif reply.id in self._answered:
            self.stats.duplicates += 1
        else:
            self.stats.late += 1  # the caller timed out before the reply came
