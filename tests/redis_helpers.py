"""Shared fixtures-in-functions for the Redis scoring tests (real Redis, unique key prefix per test)."""

from __future__ import annotations

import asyncio
import time
import uuid

from redis.asyncio import Redis

from moderation.fakes import FakeScorer
from moderation.scoring.redis_transport import StreamNames


def unique_names() -> StreamNames:
    return StreamNames.with_prefix(f"chatmod-test-{uuid.uuid4().hex[:10]}")


async def delete_keys(redis: Redis, names: StreamNames) -> None:
    prefix = names.stream.split(":", 1)[0]
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


class SlowScorer(FakeScorer):
    """FakeScorer that sleeps per model call (blocking the inference thread, like a real model)."""

    def __init__(self, delay: float, version: str = "slow-1") -> None:
        super().__init__(version=version, call_seconds=delay)
