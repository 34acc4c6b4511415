"""Redis plumbing shared by the scorer worker and ``RedisScoreClient``: key names, connection
options (timeouts, health checks, retries with backoff) and the bounded-intake script.

Requests: one Redis Stream read by a consumer group. A worker XACKs *and XDELs* an entry in the same
script call as the result write (``COMPLETE_AND_FETCH``), so ``XLEN`` of the request stream is the
unprocessed backlog; the intake script refuses new entries past ``max_pending`` instead of trimming
(clients see ``ScoringOverloaded``).
Results: one small stream per client (``<results_prefix><client_id>``), read with XREAD from the last
seen id, so a reply lost with a dropped connection is simply read again after reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

log = logging.getLogger(__name__)

#: Errors after which a loop reconnects with backoff instead of failing.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

# KEYS[1] = request stream; ARGV[1] = max unprocessed entries; ARGV[2..] = encoded requests.
# Returns the ids of the entries added, in order; the requests past the limit are not added.
BOUNDED_XADD = """
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local ids = {}
for i = 2, #ARGV do
  if i - 1 > room then break end
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
end
return ids
"""


# The worker's write of one batch, in one round trip (atomic like the MULTI it replaces):
# KEYS[1] = request stream, KEYS[2..] = the results streams the replies go to.
# ARGV = group, consumer, results maxlen, results ttl, fetch, n, then n request entry ids to XACK + XDEL,
# then (KEYS index, encoded reply) pairs. With fetch > 0 it then reads up to that many new entries for
# ``consumer`` (the model is free again: the next batch comes back with the acknowledgement) and returns
# the XREADGROUP reply; else (or when the group is gone) false. pcall: a group lost to a Redis restart
# without persistence must not fail the result writes, which have been made already.
COMPLETE_AND_FETCH = """
local group, consumer, maxlen = ARGV[1], ARGV[2], ARGV[3]
local ttl, fetch, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
for i = 7 + n, #ARGV - 1, 2 do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', maxlen, '*', 'm', ARGV[i + 1])
end
for k = 2, #KEYS do redis.call('EXPIRE', KEYS[k], ttl) end
if n > 0 then
  redis.pcall('XACK', KEYS[1], group, unpack(ARGV, 7, 6 + n))
  redis.call('XDEL', KEYS[1], unpack(ARGV, 7, 6 + n))
end
if fetch > 0 then
  local got = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', fetch, 'STREAMS', KEYS[1], '>')
  if type(got) == 'table' and got.err == nil then return got end
end
return false
"""


@dataclass(frozen=True, slots=True)
class StreamNames:
    """Every Redis key the scoring pipeline uses; tests give each run its own prefix."""

    stream: str = "chatmod:score:requests"
    group: str = "chatmod-workers"
    dead_letter: str = "chatmod:score:dead"
    results_prefix: str = "chatmod:results:"
    reload_channel: str = "chatmod:model:reload"

    @classmethod
    def with_prefix(cls, prefix: str) -> StreamNames:
        return cls(
            stream=f"{prefix}:score:requests",
            group=f"{prefix}-workers",
            dead_letter=f"{prefix}:score:dead",
            results_prefix=f"{prefix}:results:",
            reload_channel=f"{prefix}:model:reload",
        )

    def results_key(self, client_id: str) -> str:
        return f"{self.results_prefix}{client_id}"


def connect(
    url: str, *, socket_timeout: float = 5.0, health_check_interval: float = 15.0, **kwargs: Any
) -> Redis:
    """A ``redis.asyncio.Redis`` whose broken connections are noticed and retried with backoff.

    ``socket_timeout`` must exceed every BLOCK time used on the connection (it does: ≤ 1 s).
    """
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=min(socket_timeout, 2.0),
        socket_keepalive=True,
        health_check_interval=health_check_interval,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **kwargs,
    )


class Backoff:
    """Exponential backoff with full jitter for reconnect loops; ``reset()`` after a success."""

    def __init__(self, base: float = 0.05, cap: float = 2.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def reset(self) -> None:
        self.attempt = 0

    async def wait(self, what: str, exc: BaseException) -> None:
        self.attempt += 1
        delay = random.uniform(0, min(self.cap, self.base * 2**self.attempt))
        log.warning(
            "redis %s failed (%s: %s); retry %d in %.2fs", what, type(exc).__name__, exc, self.attempt, delay
        )
        await asyncio.sleep(delay)


async def ensure_group(redis: Redis, names: StreamNames) -> None:
    """Create the consumer group (and the stream) if missing; idempotent."""
    try:
        await redis.xgroup_create(names.stream, names.group, id="0", mkstream=True)
    except Exception as exc:
        if "BUSYGROUP" not in str(exc):
            raise
