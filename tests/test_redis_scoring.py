"""The Redis scorer pipeline against the real local Redis: results, dead letters, backpressure, drain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from moderation.errors import ScoringOverloaded, ScoringTimeout
from moderation.fakes import FakeScorer
from moderation.scoring.batcher import BatchPolicy
from moderation.scoring.redis_client import RedisScoreClient
from moderation.scoring.redis_transport import COMPLETE_AND_FETCH, StreamNames
from moderation.scoring.redis_worker import ScoreWorker, _entries
from moderation.scoring.wire import ScoreRequest, decode_reply, encode_request
from tests.redis_helpers import SlowScorer, delete_keys, unique_names, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.timeout(20)]

TEXTS = ["hello there", "you are an idiot", "I will kill you", "nice picture!", "shut up moron", ""]


@pytest.fixture
async def names(redis: Redis) -> AsyncIterator[StreamNames]:
    n = unique_names()
    yield n
    await delete_keys(redis, n)


def start_worker(
    redis: Redis, names: StreamNames, scorer: FakeScorer, **kw: object
) -> tuple[ScoreWorker, asyncio.Task[object]]:
    kw.setdefault("policy", BatchPolicy(max_batch=32, max_wait=0.005))
    worker = ScoreWorker(redis, scorer, names=names, **kw)  # type: ignore[arg-type]
    return worker, asyncio.create_task(worker.run())


async def test_results_match_direct_scoring(redis: Redis, names: StreamNames) -> None:
    scorer = FakeScorer()
    worker, task = start_worker(redis, names, scorer)
    async with RedisScoreClient(redis, names=names) as client:
        results = await asyncio.gather(*(client.score(t, timeout=10) for t in TEXTS * 10))
        stats = client.stats
    worker.stop()
    summary = await task
    assert [dict(r.scores) for r in results] == FakeScorer().score_batch(TEXTS * 10)
    assert {r.model_version for r in results} == {"fake-1"}
    assert results[5].empty
    assert max(summary.sizes) > 1  # concurrent requests were batched into shared model calls
    assert stats.answered == 60 and stats.duplicates == 0
    assert await redis.xlen(names.stream) == 0  # acked entries are deleted: XLEN is the backlog
    assert (await redis.xpending(names.stream, names.group))["pending"] == 0


async def test_malformed_entries_go_to_dead_letter_and_worker_survives(
    redis: Redis, names: StreamNames
) -> None:
    await redis.xgroup_create(names.stream, names.group, id="0", mkstream=True)
    reply_key = names.results_key("dl")
    junk = {
        b"{not json": "bad_json",
        json.dumps({"v": 99, "id": "x1", "text": "a", "reply_to": reply_key}).encode(): "bad_version",
        json.dumps({"v": 1, "id": "x2", "text": 42, "reply_to": reply_key}).encode(): "bad_field",
        json.dumps({"v": 1, "id": "x3", "text": "a", "reply_to": "someone:else"}).encode(): "bad_reply_to",
        "\udcff".encode("utf-8", "surrogatepass"): "bad_json",
    }
    for raw in junk:
        await redis.xadd(names.stream, {"m": raw})
    await redis.xadd(names.stream, {"other": b"field"})
    good = ScoreRequest("ok1", "you idiot", reply_key)
    await redis.xadd(names.stream, {"m": encode_request(good)})
    worker, task = start_worker(redis, names, FakeScorer())
    await wait_until(lambda: redis.xlen(names.dead_letter), timeout=10)
    await wait_until(lambda: worker.summary.answered == 1, timeout=10)
    worker.stop()
    summary = await task
    dead = await redis.xrange(names.dead_letter)
    reasons = sorted(fields[b"reason"].decode() for _, fields in dead)
    assert reasons == sorted([*junk.values(), "missing_field"])
    assert summary.dead_lettered == 6 and summary.answered == 1
    replies = [decode_reply(f[b"m"]) for _, f in await redis.xrange(reply_key)]
    by_id = {r.id: r for r in replies}
    assert by_id["ok1"].ok and by_id["ok1"].scores["insult"] > 0.5
    # Identifiable senders are told at once instead of waiting for their timeout.
    assert by_id["x1"].error == "malformed" and by_id["x2"].error == "malformed"
    assert await redis.xlen(names.stream) == 0


async def test_backpressure_refuses_instead_of_trimming(redis: Redis, names: StreamNames) -> None:
    async with RedisScoreClient(redis, names=names, max_pending=5) as client:
        waiting = [asyncio.create_task(client.score(f"text {i}", timeout=10)) for i in range(5)]
        await wait_until(lambda: client.stats.sent == 5)
        with pytest.raises(ScoringOverloaded):
            await client.score("one too many", timeout=10)
        assert await redis.xlen(names.stream) == 5  # nothing trimmed, nothing lost
        worker, task = start_worker(redis, names, FakeScorer())
        results = await asyncio.gather(*waiting)
        assert len(results) == 5 and client.stats.overloaded == 1
    worker.stop()
    await task


async def test_timeout_is_typed_and_expired_requests_skip_the_model(redis: Redis, names: StreamNames) -> None:
    scorer = FakeScorer()
    async with RedisScoreClient(redis, names=names) as client:
        with pytest.raises(ScoringTimeout):
            await client.score("nobody is listening", timeout=0.2)
        worker, task = start_worker(redis, names, scorer)
        fresh = await client.score("now someone is", timeout=10)
    await wait_until(lambda: worker.summary.expired == 1)
    worker.stop()
    await task
    assert fresh.model_version == "fake-1"
    assert [t for call in scorer.calls for t in call] == ["now someone is"]
    assert await redis.xlen(names.stream) == 0


async def test_graceful_shutdown_drains_in_flight_batches(redis: Redis, names: StreamNames) -> None:
    scorer = SlowScorer(0.05)
    worker, task = start_worker(
        redis, names, scorer, policy=BatchPolicy(max_batch=4, max_wait=0), drain_timeout=10
    )
    async with RedisScoreClient(redis, names=names) as client:
        calls = [asyncio.create_task(client.score(f"msg {i}", timeout=20)) for i in range(24)]
        await wait_until(lambda: len(scorer.calls) >= 1)
        await wait_until(lambda: worker._busy)
        worker.stop()  # phase one: stop reading; what it holds is finished, written and acked
        summary = await task
        held = summary.answered
        assert summary.left_pending == 0 and held >= 1
        # What the stopped worker never read is still in the stream for the next worker.
        successor, task2 = start_worker(redis, names, FakeScorer())
        results = await asyncio.gather(*calls)
    successor.stop()
    s2 = await task2
    assert len(results) == 24
    assert held + s2.answered == 24 and client.stats.duplicates == 0


async def test_hot_reload_swaps_model_without_dropping(redis: Redis, names: StreamNames) -> None:
    loaded: list[str] = []

    def loader(path: str) -> FakeScorer:
        loaded.append(path)
        return FakeScorer(version=f"fake-{path}")

    worker, task = start_worker(redis, names, FakeScorer(), loader=loader)
    async with RedisScoreClient(redis, names=names) as client:
        first = await client.score("hi", timeout=10)
        stream = [asyncio.create_task(client.score(f"during {i}", timeout=10)) for i in range(50)]
        await wait_until(lambda: _subscribed(redis, names.reload_channel))
        await redis.publish(names.reload_channel, "v2")
        await wait_until(lambda: worker.summary.reloads == 1)
        during = await asyncio.gather(*stream)
        after = await client.score("hi", timeout=10)
    worker.stop()
    await task
    assert first.model_version == "fake-1" and after.model_version == "fake-v2"
    assert loaded == ["v2"] and len(during) == 50
    assert first.scores == after.scores


async def _subscribed(redis: Redis, channel: str) -> bool:
    counts = await redis.pubsub_numsub(channel)
    return bool(counts and counts[0][1] > 0)


async def test_from_url_client_owns_its_connection(redis: Redis, names: StreamNames) -> None:
    # As deployed: stream and group from settings, results keys under the default prefix.
    deployed = StreamNames(stream=names.stream, group=names.group)
    worker, task = start_worker(redis, deployed, FakeScorer())
    client = RedisScoreClient.from_url(
        "redis://127.0.0.1:6379/0", stream=names.stream, group=names.group, default_timeout=10
    )
    async with client:
        result = await client.score("you moron")
    worker.stop()
    await task
    assert result.scores["insult"] > 0.5
    assert client.results_key.startswith("chatmod:results:")
    assert client.redis.connection_pool is not redis.connection_pool
    assert await redis.exists(client.results_key) == 0  # closing removed its results stream


async def test_redis_refusing_writes_is_overload_not_a_hang(redis: Redis, names: StreamNames) -> None:
    await redis.set(names.stream, "not a stream")  # every XLEN/XADD on it now fails with WRONGTYPE
    async with RedisScoreClient(redis, names=names) as client:
        with pytest.raises(ScoringOverloaded):
            await client.score("hello", timeout=5)
        assert client.stats.timeouts == 0


async def test_entry_that_keeps_killing_workers_is_dead_lettered(redis: Redis, names: StreamNames) -> None:
    await redis.xgroup_create(names.stream, names.group, id="0", mkstream=True)
    poison = ScoreRequest("p1", "crashes every worker", names.results_key("c"))
    entry_id = await redis.xadd(names.stream, {"m": encode_request(poison)})
    for ghost in ("ghost-1", "ghost-2"):  # two workers read it and died without acknowledging
        await redis.xreadgroup(
            names.group, ghost, {names.stream: ">" if ghost == "ghost-1" else "0"}, count=1
        )
        await redis.xclaim(names.stream, names.group, ghost, min_idle_time=0, message_ids=[entry_id])
    scorer = FakeScorer()
    worker, task = start_worker(redis, names, scorer, claim_idle=0.05, claim_interval=0.05, max_deliveries=2)
    await wait_until(lambda: worker.summary.dead_lettered == 1, timeout=10)
    worker.stop()
    await task
    dead = await redis.xrange(names.dead_letter)
    assert [f[b"reason"] for _, f in dead] == [b"too_many_deliveries"]
    assert scorer.calls == []  # never handed to the model again
    assert (await redis.xpending(names.stream, names.group))["pending"] == 0


async def test_reader_coalesces_arrivals_while_the_model_is_busy(redis: Redis, names: StreamNames) -> None:
    """Messages arriving one by one while a batch computes are fetched with one read afterwards (the
    one riding on the batch's result write) and form one batch, instead of one XREADGROUP round trip
    (and tokeniser call) per arrival."""
    worker, task = start_worker(redis, names, SlowScorer(0.4), policy=BatchPolicy(max_batch=64, max_wait=0.0))
    reads: list[int] = []  # entries per fetch: blocking reads, and the fetches riding on result writes
    real_intake = worker._intake

    async def counting_intake(entries: Any) -> None:
        reads.append(len(entries))
        await real_intake(entries)

    worker._intake = counting_intake  # type: ignore[method-assign]
    async with RedisScoreClient(redis, names=names) as client:
        first = asyncio.create_task(client.score("the first one", timeout=10))
        await wait_until(lambda: worker._busy, timeout=5)
        reads_before = len(reads)
        later = []
        for i in range(12):  # one at a time, each in its own round trip, while the model computes
            later.append(asyncio.create_task(client.score(f"arrival {i}", timeout=10)))
            await asyncio.sleep(0.01)
        results = await asyncio.gather(first, *later)
    worker.stop()
    summary = await task
    assert len(results) == 13 and all(r.model_version == "slow-1" for r in results)
    busy_reads = [n for n in reads[reads_before:] if n]
    # The twelve arrivals came in one read (plus, at most, the one blocking read already in flight when
    # the model turned busy), not in twelve reads — and formed one batch.
    assert sum(busy_reads) == 12 and len(busy_reads) <= 2 and max(busy_reads) >= 11, reads
    assert 12 in summary.sizes, summary.sizes


async def test_complete_and_fetch_writes_acks_and_brings_the_next_batch(
    redis: Redis, names: StreamNames
) -> None:
    """The worker's one-round-trip batch write: replies to each client's stream (with a TTL), the
    requests acknowledged and deleted, and the entries that arrived meanwhile read for the consumer."""
    await redis.xgroup_create(names.stream, names.group, id="0", mkstream=True)
    first = [await redis.xadd(names.stream, {"m": f"req-{i}"}) for i in range(3)]
    await redis.xreadgroup(names.group, "w1", {names.stream: ">"}, count=3)
    later = [await redis.xadd(names.stream, {"m": f"later-{i}"}) for i in range(2)]
    a, b = names.results_key("a"), names.results_key("b")
    script = redis.register_script(COMPLETE_AND_FETCH)
    args = [names.group, "w1", 1000, 60, 10, 3, *first, 2, b"ra0", 3, b"rb", 2, b"ra1"]
    resp = await script(keys=[names.stream, a, b], args=args)
    assert [f[b"m"] for _, f in await redis.xrange(a)] == [b"ra0", b"ra1"]
    assert [f[b"m"] for _, f in await redis.xrange(b)] == [b"rb"]
    assert 0 < await redis.ttl(a) <= 60 and 0 < await redis.ttl(b) <= 60
    assert _entries(resp) == [(later[0], {b"m": b"later-0"}), (later[1], {b"m": b"later-1"})]
    pending = await redis.xpending_range(names.stream, names.group, min="-", max="+", count=10)
    assert [p["message_id"] for p in pending] == later  # the fetched ones are now ours; the first acked
    assert await redis.xlen(names.stream) == 2  # acknowledged entries are deleted
    # Nothing to fetch: false. Group gone (Redis restarted without persistence): the result writes
    # still happen and the call does not fail.
    await redis.xgroup_destroy(names.stream, names.group)
    resp = await script(keys=[names.stream, a], args=[names.group, "w1", 1000, 60, 5, 1, later[0], 2, b"r"])
    assert resp is None and _entries(resp) == []
    assert [f[b"m"] for _, f in await redis.xrange(a)][-1] == b"r"


async def test_refused_result_write_is_retried_and_never_kills_the_worker(
    redis: Redis, names: StreamNames
) -> None:
    """Redis refusing the batch write (here: the OOM error it gives at maxmemory, twice) is retried
    with backoff like a broken connection; every request is still answered once."""
    from redis.exceptions import ResponseError

    worker, task = start_worker(redis, names, FakeScorer())
    real = worker._complete
    refusals = {"left": 2}

    async def refusing(*args: Any, **kw: Any) -> Any:
        if refusals["left"]:
            refusals["left"] -= 1
            raise ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
        return await real(*args, **kw)

    worker._complete = refusing  # type: ignore[assignment]
    async with RedisScoreClient(redis, names=names) as client:
        results = await asyncio.gather(*(client.score(t, timeout=10) for t in TEXTS))
        assert client.stats.duplicates == 0
    worker.stop()
    summary = await task
    assert [dict(r.scores) for r in results] == FakeScorer().score_batch(TEXTS)
    assert refusals["left"] == 0 and summary.write_retries >= 2 and summary.answered == len(TEXTS)
    assert (await redis.xpending(names.stream, names.group))["pending"] == 0
