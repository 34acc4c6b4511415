"""Delivery deduplication: Slack redelivers an event (X-Slack-Retry-Num) when it did not see our 200
in time, with the same ``event_id``. A bounded, time-limited memory of recent ids drops those cheaply;
across restarts the service's per-version idempotency (unique message key, per-case action marks)
still guarantees that nothing is acted on twice.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RecentIds:
    """An LRU of ids seen within ``ttl`` seconds, at most ``maxsize`` of them."""

    def __init__(
        self, maxsize: int = 10_000, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ):
        if maxsize < 1 or ttl <= 0:
            raise ValueError("maxsize must be >= 1 and ttl > 0")
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._maxsize = maxsize
        self._ttl = ttl
        self._clock = clock

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, key: str) -> bool:
        """Record ``key``; True if it was not seen within the TTL (i.e. this delivery should be handled)."""
        now = self._clock()
        self._expire(now)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = now
        if len(self._seen) > self._maxsize:
            self._seen.popitem(last=False)
        return True

    def forget(self, key: str) -> None:
        """Undo ``first_time`` (we refused the delivery, so Slack's retry must be handled)."""
        self._seen.pop(key, None)

    def _expire(self, now: float) -> None:
        while self._seen:
            _key, at = next(iter(self._seen.items()))
            if now - at < self._ttl:
                break
            self._seen.popitem(last=False)
