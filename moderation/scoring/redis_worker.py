"""The scorer worker (``chatmod worker``): Redis stream in, batched model, per-client results out.

Tasks of one worker process:

* **reader** — ``XREADGROUP ... COUNT n BLOCK t`` fetches up to a batch in one round trip, decodes and
  tokenises the entries, and queues them in the ``Batcher``. It reads only while the local queue has
  room, so a busy worker leaves new work in the stream for its peers. While the model computes, the
  reader pauses: arrivals collect in the stream (where an idle peer can take them) and the batch loop
  fetches them with one read as the model frees up — one round trip and one tokeniser call per batch,
  not one per arriving message.
* **batch loop** — flushes the batcher (size / deadline / token budget), runs the micro-batches on the
  single inference thread, and hands the replies to a writer.
* **writer** — one script call (``COMPLETE_AND_FETCH``): ``XADD`` each reply to its client's results
  stream, ``XACK`` + ``XDEL`` the requests. Acknowledgement and result are atomic: an entry is pending
  exactly until its reply exists. When the reader paused for the model, the same call also reads the
  entries that arrived meanwhile (the next batch): one round trip per batch under load.
  Transient Redis errors are retried with backoff; if that fails the entries stay pending.
* **claimer** — ``XAUTOCLAIM`` takes over entries idle longer than ``claim_idle`` (a dead worker's, or
  our own whose write gave up). Entries delivered more than ``max_deliveries`` times go to the
  dead-letter stream instead of crashing workers forever.
* **reloader** — a pub/sub notice on ``reload_channel`` (an artifact path) loads the new model in a
  thread and swaps it in between batches: no request is dropped.

Malformed entries never crash the worker: they are moved to the dead-letter stream with the reason (and
their sender, when identifiable, gets an immediate ``malformed`` reply). ``stop()`` is the first phase
of shutdown (stop reading); ``run()`` then drains queued and in-flight batches within ``drain_timeout``,
waits for the writes, and returns a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from moderation.errors import ScoringOverloaded
from moderation.ports import TextScorer
from moderation.scoring.batcher import Batch, Batcher, BatchPolicy
from moderation.scoring.metrics import ScoringMetrics
from moderation.scoring.redis_transport import (
    COMPLETE_AND_FETCH,
    TRANSIENT,
    Backoff,
    StreamNames,
    ensure_group,
)
from moderation.scoring.runner import InferenceRunner, Prepared
from moderation.scoring.wire import (
    ScoreReply,
    ScoreRequest,
    WireError,
    decode_request,
    encode_reply,
    peek_reply_address,
)

log = logging.getLogger(__name__)


def _entries(resp: Any) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
    """Entries of a raw ``XREADGROUP`` reply returned by a script: ``[[stream, [[id, [k, v, ...]]]]]``
    (no redis-py response callback runs on ``EVALSHA``); a deleted entry's fields are nil."""
    out: list[tuple[bytes, dict[bytes, bytes] | None]] = []
    for _stream, entries in resp or ():
        for entry_id, flat in entries:
            out.append((entry_id, dict(zip(flat[::2], flat[1::2], strict=True)) if flat else None))
    return out


@dataclass(slots=True)
class _Entry:
    entry_id: bytes
    request: ScoreRequest
    prepared: Prepared
    received_at: float


@dataclass(slots=True)
class WorkerSummary:
    consumer: str
    batches: int = 0
    answered: int = 0
    expired: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    reloads: int = 0
    write_retries: int = 0
    model_seconds: float = 0.0
    #: CPU seconds of the event-loop thread: everything but the model (decode, tokenise, batch, I/O).
    loop_cpu_seconds: float = 0.0
    left_pending: int = 0
    sizes: list[int] = field(default_factory=list)


class ScoreWorker:
    """One scorer worker. ``await worker.run()`` until ``worker.stop()`` (or SIGTERM via the CLI)."""

    def __init__(
        self,
        redis: Redis,
        scorer: TextScorer,
        *,
        names: StreamNames | None = None,
        policy: BatchPolicy | None = None,
        consumer: str | None = None,
        claim_idle: float = 10.0,
        claim_interval: float = 1.0,
        max_deliveries: int = 5,
        read_block_ms: int = 100,
        drain_timeout: float = 10.0,
        write_retry_for: float = 30.0,
        results_ttl: int = 300,
        results_maxlen: int = 100_000,
        loader: Callable[[str], TextScorer] | None = None,
        metrics: ScoringMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.names = names or StreamNames()
        self.policy = policy or BatchPolicy()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.runner = InferenceRunner(scorer)
        self.batcher: Batcher[_Entry] = Batcher(self.policy)
        self.metrics = metrics or ScoringMetrics()
        self.metrics.set_model(scorer.version)
        self.claim_idle = claim_idle
        self.claim_interval = claim_interval
        self.max_deliveries = max_deliveries
        self.read_block_ms = read_block_ms
        self.drain_timeout = drain_timeout
        self.write_retry_for = write_retry_for
        self.results_ttl = results_ttl
        self.results_maxlen = results_maxlen
        self.loader = loader
        self.clock = clock
        self._complete = redis.register_script(COMPLETE_AND_FETCH)
        #: Entries read but not yet written back: the claimer must not take them a second time.
        self._held: set[bytes] = set()
        self._local_cap = min(self.policy.max_queue, 2 * self.policy.max_batch)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        #: A batch is in the inference thread; the reader pauses (``_paused``) until ``_resume``.
        self._busy = False
        self._paused = False
        self._resume = asyncio.Event()
        self._stopping = asyncio.Event()
        self._writes: set[asyncio.Task[Any]] = set()
        self.summary = WorkerSummary(self.consumer)
        self._crash: BaseException | None = None
        self.ready = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Phase one of shutdown: stop reading and claiming. ``run()`` then drains and returns."""
        self._stopping.set()
        self._wake.set()
        self._room.set()
        self._resume.set()

    async def run(self) -> WorkerSummary:
        cpu_start = time.thread_time()
        await ensure_group(self.redis, self.names)
        tasks = [
            asyncio.create_task(self._reader(), name="chatmod-worker-reader"),
            asyncio.create_task(self._claimer(), name="chatmod-worker-claimer"),
        ]
        if self.loader is not None:
            tasks.append(asyncio.create_task(self._reloader(), name="chatmod-worker-reloader"))
        for t in tasks:
            t.add_done_callback(self._on_task_done)
        log.info("worker %s reading %s as group %s", self.consumer, self.names.stream, self.names.group)
        self.ready.set()
        try:
            await self._batch_loop()
        finally:
            self.stop()
            # The loops notice the stop flag within one BLOCK period; cancelling a blocked redis-py
            # read instead can leave the connection's close hanging.
            _done, late = await asyncio.wait(tasks, timeout=self.read_block_ms / 1000 + 2.0)
            for t in late:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._finish_writes()
            self.runner.close()
        if self._crash is not None:
            raise self._crash
        s = self.summary
        s.model_seconds = self.runner.model_seconds
        s.loop_cpu_seconds = time.thread_time() - cpu_start
        s.left_pending = self.batcher.depth + len(self._held)
        log.info(
            "worker %s stopped: batches=%d answered=%d expired=%d failed=%d dead=%d reclaimed=%d "
            "reloads=%d model_s=%.2f padding_waste=%.3f left_pending=%d",
            s.consumer,
            s.batches,
            s.answered,
            s.expired,
            s.failed,
            s.dead_lettered,
            s.reclaimed,
            s.reloads,
            s.model_seconds,
            self.batcher.stats.padding_waste,
            s.left_pending,
        )
        return s

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("worker task %s crashed; shutting down", task.get_name(), exc_info=task.exception())
            self._crash = task.exception()
            self.stop()

    async def _finish_writes(self) -> None:
        if self._writes:
            _done, pending = await asyncio.wait(self._writes, timeout=max(1.0, self.drain_timeout))
            for t in pending:
                t.cancel()

    # ------------------------------------------------------------------ intake

    async def _reader(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            room = self._local_cap - len(self._held)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            if self._busy:
                self._paused = True
                self._resume.clear()
                await self._resume.wait()
                self._paused = False
                continue
            try:
                entries = await self._read(room, block=self.read_block_ms)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await ensure_group(self.redis, self.names)  # e.g. Redis restarted without persistence
                continue
            except TRANSIENT as exc:
                await backoff.wait("read", exc)
                continue
            backoff.reset()
            if entries:
                await self._intake(entries)

    async def _read(
        self, room: int, block: int | None = None
    ) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        """One ``XREADGROUP`` of up to a batch of new entries (waiting ``block`` ms, or not at all)."""
        resp = await self.redis.xreadgroup(
            self.names.group,
            self.consumer,
            {self.names.stream: ">"},
            count=min(room, self.policy.max_batch),
            block=block,
        )
        # RESP2 reply shape: [[stream, [(id, fields), ...]], ...]
        streams = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]], resp or [])
        return [entry for _stream, entries in streams for entry in entries]

    async def _intake(self, entries: Sequence[tuple[bytes, dict[bytes, bytes] | None]]) -> None:
        now = self.clock()
        good: list[tuple[bytes, ScoreRequest]] = []
        dead: list[tuple[bytes, bytes, str, str]] = []
        for entry_id, fields in entries:
            if entry_id in self._held:
                continue
            raw = (fields or {}).get(b"m")
            if raw is None:
                dead.append((entry_id, b"", "missing_field", "entry has no 'm' field"))
                continue
            try:
                req = decode_request(raw)
            except WireError as exc:
                dead.append((entry_id, raw, exc.reason, exc.detail))
                continue
            if not req.reply_to.startswith(self.names.results_prefix):
                dead.append(
                    (entry_id, raw, "bad_reply_to", f"reply_to must start with {self.names.results_prefix}")
                )
                continue
            good.append((entry_id, req))
        if dead:
            await self._dead_letter(dead)
        if not good:
            return
        prepared = self.runner.prepare([req.text for _, req in good])
        for (entry_id, req), prep in zip(good, prepared, strict=True):
            try:
                self.batcher.add(_Entry(entry_id, req, prep, now), prep.tokens, now, deadline=req.deadline)
            except ScoringOverloaded:
                # Local queue full: leave the entry pending in Redis; XAUTOCLAIM hands it out later.
                self.metrics.errors.labels(kind="local_queue_full").inc()
                continue
            self._held.add(entry_id)
        self.metrics.queue_depth.set(self.batcher.depth)
        self._wake.set()

    async def _dead_letter(self, dead: Sequence[tuple[bytes, bytes, str, str]]) -> None:
        """Move malformed entries to the dead-letter stream (+ ack/del), telling senders we can name."""
        n = self.names

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                for entry_id, raw, reason, detail in dead:
                    pipe.xadd(
                        n.dead_letter,
                        {
                            "reason": reason,
                            "detail": detail[:500],
                            "raw": raw[:65536],
                            "source_id": entry_id,
                            "consumer": self.consumer,
                            "at": repr(self.clock()),
                        },
                        maxlen=10_000,
                        approximate=True,
                    )
                    addr = peek_reply_address(raw) if raw else None
                    if addr is not None and addr[1].startswith(n.results_prefix):
                        reply = ScoreReply(id=addr[0], error="malformed", detail=reason)
                        pipe.xadd(
                            addr[1], {"m": encode_reply(reply)}, maxlen=self.results_maxlen, approximate=True
                        )
                ids = [d[0] for d in dead]
                pipe.xack(n.stream, n.group, *ids)
                pipe.xdel(n.stream, *ids)
                await pipe.execute()

        await self._with_retry("dead-letter", write)
        self.summary.dead_lettered += len(dead)
        for _, _, reason, _ in dead:
            self.metrics.requests.labels(outcome="malformed").inc()
            self.metrics.errors.labels(kind=reason).inc()
        log.warning("dead-lettered %d entries: %s", len(dead), sorted({d[2] for d in dead}))

    # ------------------------------------------------------------------ batching and inference

    async def _batch_loop(self) -> None:
        drain_deadline: float | None = None
        while True:
            stopping = self._stopping.is_set()
            if stopping:
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + self.drain_timeout
                if self.batcher.depth == 0 or time.monotonic() > drain_deadline:
                    return
            now = self.clock()
            flush_at = self.batcher.next_flush_at()
            if flush_at is None or (flush_at > now and not stopping):
                self._wake.clear()
                timeout = None if flush_at is None else max(0.0, flush_at - now)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):  # no extra task per wait, unlike wait_for
                        await self._wake.wait()
                continue
            await self._process(self.batcher.take(now))

    async def _process(self, batch: Batch[_Entry]) -> None:
        replies: list[tuple[_Entry, ScoreReply]] = []
        for p in batch.expired:
            replies.append(
                (p.item, ScoreReply(id=p.item.request.id, error="expired", detail="deadline passed"))
            )
        self.summary.expired += len(batch.expired)
        micro = [list(m) for m in batch.micro if m]
        if micro:
            started = self.clock()
            self.metrics.observe_batch(batch.size, batch.real_tokens, batch.padded_tokens, len(micro))
            self._busy = True
            try:
                outcomes, version, seconds = await self.runner.run(
                    [[p.item.prepared for p in m] for m in micro]
                )
            finally:
                self._busy = False
            done = self.clock()
            self.metrics.stage_seconds.labels(stage="model").observe(seconds)
            self.summary.batches += 1
            self.summary.sizes.append(batch.size)
            if len(self.summary.sizes) > 10_000:
                del self.summary.sizes[:5_000]
            log.debug(
                "batch size=%d calls=%d real_tokens=%d padding_waste=%.3f model_ms=%.2f expired=%d depth=%d",
                batch.size,
                len(micro),
                batch.real_tokens,
                batch.padding_waste,
                seconds * 1000,
                len(batch.expired),
                self.batcher.depth,
            )
            queue_hist = self.metrics.stage_seconds.labels(stage="queue")
            for m, outs in zip(micro, outcomes, strict=True):
                for p, out in zip(m, outs, strict=True):
                    req = p.item.request
                    sent = req.sent_at if req.sent_at is not None else p.item.received_at
                    timings = {
                        "queue": (started - sent) * 1000,
                        "model": seconds * 1000,
                        "done_at": done,
                        "batch": float(batch.size),
                    }
                    queue_hist.observe(max(0.0, started - sent))
                    if out.scores is None:
                        self.summary.failed += 1
                        rep = ScoreReply(id=req.id, error="failed", detail=out.error or "", timings=timings)
                    else:
                        rep = ScoreReply(id=req.id, scores=out.scores, model_version=version, timings=timings)
                    replies.append((p.item, rep))
        self.metrics.queue_depth.set(self.batcher.depth)
        if replies and self._paused and not self._stopping.is_set():
            # The reader paused for the model: what arrived meanwhile comes back with the write.
            try:
                room = self._local_cap - len(self._held) + len(replies)
                fetched = await self._write(replies, fetch=min(room, self.policy.max_batch))
                if fetched:
                    await self._intake(fetched)
            finally:
                self._resume.set()
            return
        if replies:
            task = asyncio.create_task(self._write(replies))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
        self._resume.set()  # the reader only paused if we stop: it will see the stop flag
        # Bound the writes in flight: backpressure from a slow Redis reaches the reader.
        if replies and len(self._writes) > 4:
            await asyncio.wait(self._writes, return_when=asyncio.FIRST_COMPLETED)

    async def _write(
        self, replies: Sequence[tuple[_Entry, ScoreReply]], fetch: int = 0
    ) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        """Results, XACK and XDEL of one batch in one script call; with ``fetch`` > 0 the same call
        reads up to that many new entries, which are returned (the next batch, without a second round
        trip). Entries a failed attempt fetched stay pending and are reclaimed after ``claim_idle``."""
        n = self.names
        started = time.perf_counter()
        ids = [e.entry_id for e, _ in replies]
        keys: dict[str, int] = {}
        pairs: list[bytes | str | int] = []
        for entry, rep in replies:
            index = keys.setdefault(entry.request.reply_to, len(keys) + 2)
            pairs += (index, encode_reply(rep))
        args = [n.group, self.consumer, self.results_maxlen, self.results_ttl, fetch, len(ids), *ids, *pairs]
        fetched: list[Any] = []

        async def write() -> None:
            resp = await self._complete(keys=[n.stream, *keys], args=args)
            fetched[:] = _entries(resp)

        try:
            ok = await self._with_retry("result write", write)
        finally:
            self._held.difference_update(ids)
            self._room.set()
        if ok:
            self.metrics.stage_seconds.labels(stage="write").observe(time.perf_counter() - started)
            answered = sum(1 for _, r in replies if r.ok)
            self.summary.answered += answered
            self.metrics.requests.labels(outcome="ok").inc(answered)
            for _, r in replies:
                if not r.ok:
                    self.metrics.requests.labels(outcome=r.error or "error").inc()
        return fetched

    async def _with_retry(self, what: str, op: Callable[[], Any]) -> bool:
        backoff = Backoff()
        give_up = time.monotonic() + self.write_retry_for
        while True:
            try:
                await op()
                return True
            except (*TRANSIENT, ResponseError) as exc:
                # ResponseError: Redis refused the write (e.g. OOM at maxmemory, or a read-only replica
                # after a failover) — retried like a broken connection, and never fatal to the worker.
                self.summary.write_retries += 1
                self.metrics.errors.labels(
                    kind="redis" if isinstance(exc, TRANSIENT) else "redis_refused"
                ).inc()
                if time.monotonic() > give_up:
                    log.error(
                        "%s failed for %.0fs (%s: %s); entries stay pending for reclaim",
                        what,
                        self.write_retry_for,
                        type(exc).__name__,
                        exc,
                    )
                    return False
                await backoff.wait(what, exc)

    # ------------------------------------------------------------------ recovery and reload

    async def _claimer(self) -> None:
        backoff = Backoff()
        n = self.names
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.claim_interval)
            if self._stopping.is_set():
                return
            try:
                self.metrics.backlog.set(await self.redis.xlen(n.stream))
                start: bytes | str = "0-0"
                while len(self._held) < self._local_cap:
                    resp = await self.redis.xautoclaim(
                        n.stream,
                        n.group,
                        self.consumer,
                        min_idle_time=int(self.claim_idle * 1000),
                        start_id=start,
                        count=max(1, min(self.policy.max_batch, self._local_cap - len(self._held))),
                    )
                    start, claimed = resp[0], [e for e in resp[1] if e and e[0] not in self._held]
                    if claimed:
                        await self._intake_claimed(claimed)
                    if start in (b"0-0", "0-0"):
                        break
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
            except TRANSIENT as exc:
                await backoff.wait("claim", exc)
                continue
            backoff.reset()

    async def _intake_claimed(self, claimed: list[tuple[bytes, dict[bytes, bytes] | None]]) -> None:
        n = self.names
        ids = [e[0] for e in claimed]
        info = await self.redis.xpending_range(
            n.stream, n.group, min=min(ids), max=max(ids), count=len(ids) * 4
        )
        deliveries = {row["message_id"]: int(row["times_delivered"]) for row in info}
        poison = [e for e in claimed if deliveries.get(e[0], 0) > self.max_deliveries]
        fresh = [e for e in claimed if deliveries.get(e[0], 0) <= self.max_deliveries]
        if poison:
            await self._dead_letter(
                [
                    (
                        eid,
                        (f or {}).get(b"m", b""),
                        "too_many_deliveries",
                        f"delivered {deliveries.get(eid)} times without a reply",
                    )
                    for eid, f in poison
                ]
            )
        self.summary.reclaimed += len(fresh)
        self.metrics.reclaimed.inc(len(fresh))
        log.info("reclaimed %d pending entries from dead or stalled consumers", len(fresh))
        await self._intake(fresh)

    async def _reloader(self) -> None:
        assert self.loader is not None
        backoff = Backoff()
        while not self._stopping.is_set():
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.names.reload_channel)
                backoff.reset()
                while not self._stopping.is_set():
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if msg is not None:
                        await self._reload(msg["data"])
            except TRANSIENT as exc:
                await backoff.wait("reload subscription", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _reload(self, data: bytes | str) -> None:
        assert self.loader is not None
        path = data.decode() if isinstance(data, bytes) else str(data)
        try:
            scorer = await asyncio.to_thread(self.loader, path)
        except Exception:
            self.metrics.errors.labels(kind="reload").inc()
            log.exception("hot reload of %r failed; keeping model %s", path, self.runner.version)
            return
        old = self.runner.swap(scorer)
        self.metrics.set_model(scorer.version)
        self.summary.reloads += 1
        log.info("hot reload: %s -> %s (from %s)", old, scorer.version, path)
