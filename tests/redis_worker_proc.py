"""A scorer worker in its own process, for the crash tests (tests/test_redis_scoring.py).

Usage: python tests/redis_worker_proc.py URL PREFIX DELAY_S [CLAIM_IDLE_S]. Scores with ``FakeScorer``,
sleeping DELAY_S per model call so that a SIGKILL reliably lands mid-batch. Prints "ready" once
reading.
"""

from __future__ import annotations

import asyncio
import sys

from moderation.fakes import FakeScorer
from moderation.scoring.batcher import BatchPolicy
from moderation.scoring.redis_transport import StreamNames, connect
from moderation.scoring.redis_worker import ScoreWorker


async def main(url: str, prefix: str, delay: float, claim_idle: float) -> None:
    redis = connect(url)
    worker = ScoreWorker(
        redis,
        FakeScorer(version="slow-1", call_seconds=delay),
        names=StreamNames.with_prefix(prefix),
        policy=BatchPolicy(max_batch=16, max_wait=0.0, call_overhead_tokens=10_000),
        consumer=f"proc-{prefix}",
        claim_idle=claim_idle,
    )
    task = asyncio.create_task(worker.run())
    await worker.ready.wait()
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1], float(args[2]), float(args[3]) if len(args) > 3 else 10.0))
