"""Crash recovery against real Redis: a SIGKILLed worker and a SIGKILLed (AOF) Redis lose nothing.

Each test prints one ``RECOVERY`` line with the counts (sent / answered / duplicates); run with ``-s``
to see them (BENCHMARKS.md quotes them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from moderation.fakes import FakeScorer
from moderation.scoring.batcher import BatchPolicy
from moderation.scoring.redis_client import RedisScoreClient
from moderation.scoring.redis_transport import StreamNames, connect
from moderation.scoring.redis_worker import ScoreWorker
from tests.redis_helpers import SlowScorer, delete_keys, unique_names, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]

REPO = Path(__file__).resolve().parents[1]
SHARED_URL = "redis://127.0.0.1:6379/0"


def report(name: str, **figures: object) -> None:
    print(f"RECOVERY {name} {json.dumps(figures)}", flush=True)


async def test_sigkilled_worker_mid_batch_loses_nothing(redis: Redis) -> None:
    names = unique_names()
    prefix = names.stream.split(":", 1)[0]
    proc = subprocess.Popen(  # noqa: ASYNC220 - Popen only starts it; waits go through to_thread
        [sys.executable, str(REPO / "tests" / "redis_worker_proc.py"), SHARED_URL, prefix, "0.15", "60"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    n = 200
    try:
        assert proc.stdout is not None
        assert (await asyncio.to_thread(proc.stdout.readline)).strip() == "ready"
        async with RedisScoreClient(redis, names=names) as client:
            texts = [f"message {i} you idiot" if i % 3 == 0 else f"message {i}" for i in range(n)]
            calls = [asyncio.create_task(client.score(t, timeout=60)) for t in texts]
            await wait_until(lambda: client.stats.answered >= 20, timeout=30)

            async def victim_pending() -> int:
                info = await redis.xpending(names.stream, names.group)
                return sum(
                    int(c["pending"]) for c in info["consumers"] if c["name"] == f"proc-{prefix}".encode()
                )

            await wait_until(lambda: victim_pending(), timeout=10)
            proc.send_signal(signal.SIGKILL)  # mid-batch: it holds read, unacknowledged entries
            proc.wait(10)
            pending_at_kill = await victim_pending()
            answered_at_kill = client.stats.answered
            rescuer = ScoreWorker(
                redis,
                FakeScorer(),
                names=names,
                policy=BatchPolicy(max_batch=32, max_wait=0.002),
                claim_idle=0.5,
                claim_interval=0.2,
            )
            task = asyncio.create_task(rescuer.run())
            results = await asyncio.gather(*calls)
            stats = client.stats
        rescuer.stop()
        summary = await task
        report(
            "worker_sigkill",
            sent=n,
            answered=stats.answered,
            duplicates=stats.duplicates,
            late=stats.late,
            answered_before_kill=answered_at_kill,
            pending_at_kill=pending_at_kill,
            reclaimed=summary.reclaimed,
        )
        assert pending_at_kill > 0
        assert summary.reclaimed >= pending_at_kill
        assert len(results) == n and stats.answered == n  # every caller answered exactly once
        assert stats.duplicates == 0  # result+ack are atomic: a reclaimed entry had no reply yet
        assert [dict(r.scores) for r in results] == FakeScorer().score_batch(texts)
        assert await redis.xlen(names.stream) == 0
        assert (await redis.xpending(names.stream, names.group))["pending"] == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        await delete_keys(redis, names)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(workdir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server binary not installed")
async def test_redis_killed_and_restarted_with_aof_loses_nothing(tmp_path: Path) -> None:
    port = _free_port()
    server = _start_redis(port, tmp_path)
    redis = connect(f"redis://127.0.0.1:{port}/0", socket_timeout=2.0)
    names = StreamNames.with_prefix("aof")
    n = 300
    try:
        await wait_until(lambda: _pings(redis), timeout=10)
        worker = ScoreWorker(
            redis,
            SlowScorer(0.01),
            names=names,
            policy=BatchPolicy(max_batch=16, max_wait=0.002),
            claim_idle=2.0,
            claim_interval=0.5,
        )
        wtask = asyncio.create_task(worker.run())
        async with RedisScoreClient(redis, names=names) as client:
            calls: list[asyncio.Task[object]] = []
            restarted_at = 0
            for i in range(n):
                calls.append(asyncio.create_task(client.score(f"msg {i}", timeout=60)))
                await asyncio.sleep(0.004)
                if i == n // 3:
                    server.send_signal(signal.SIGKILL)  # a crash, not a clean shutdown
                    server.wait(10)
                    await asyncio.sleep(0.5)
                    server = _start_redis(port, tmp_path)
                    restarted_at = i
            results = await asyncio.gather(*calls)
            # At-least-once: an enqueue whose reply died with the server is retried, so the stream may
            # hold a second copy of a request the caller already has an answer for. The worker must
            # still drain it (the client drops the duplicate reply) before the backlog checks below.
            await wait_until(lambda: _drained(redis, names), timeout=20)
            stats = client.stats
        worker.stop()
        summary = await wtask
        report(
            "redis_sigkill_restart_aof",
            sent=n,
            answered=stats.answered,
            duplicates=stats.duplicates,
            late=stats.late,
            killed_after=restarted_at + 1,
            enqueue_retries=stats.enqueue_retries,
            worker_write_retries=summary.write_retries,
            reclaimed=summary.reclaimed,
        )
        assert len(results) == n and stats.answered == n
        assert await redis.xlen(names.stream) == 0
        assert (await redis.xpending(names.stream, names.group))["pending"] == 0
    finally:
        await redis.aclose()
        server.kill()
        server.wait(10)


async def _drained(redis: Redis, names: StreamNames) -> bool:
    try:
        pending = (await redis.xpending(names.stream, names.group))["pending"]
        return await redis.xlen(names.stream) == 0 and pending == 0
    except Exception:
        return False


async def _pings(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except Exception:
        return False


def test_recovery_report_format(capsys: pytest.CaptureFixture[str]) -> None:
    report("x", sent=1)
    assert capsys.readouterr().out == 'RECOVERY x {"sent": 1}\n'
