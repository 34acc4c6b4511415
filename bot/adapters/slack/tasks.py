"""Supervised background work: one task per inbound Slack delivery, bounded, drained on close.

Slack wants its HTTP 200 within 3 seconds, so listeners acknowledge first and hand the work here.
bolt's own "process after ack" mode fires untracked futures; these tasks are owned, counted, logged
when they fail, and cancelled/awaited on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """More deliveries are pending than the adapter accepts; the caller answers non-200 so Slack retries."""


class TaskRunner:
    def __init__(self, *, max_concurrency: int = 16, max_pending: int = 512) -> None:
        self._sem = asyncio.Semaphore(max_concurrency)
        self._max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[None]:
        if self._closed or len(self._tasks) >= self._max_pending:
            coro.close()
            raise Overloaded(f"{len(self._tasks)} deliveries pending" if not self._closed else "closed")
        task = asyncio.create_task(self._run(name, coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        async with self._sem:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("slack task %s failed", name)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for everything in flight (tests; graceful shutdown)."""
        while self._tasks:
            done, _ = await asyncio.wait(set(self._tasks), timeout=timeout)
            if timeout is not None and not done:
                break

    async def close(self, timeout: float = 10.0) -> None:
        """Stop intake, let in-flight work finish within ``timeout``, cancel the rest. Idempotent."""
        self._closed = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        log.info("slack tasks closed: %d cancelled after %.1fs drain", len(pending), timeout)
