"""Slack Web API access: clients with Retry-After honoured, per-method pacing, typed errors.

Slack rate-limits per method and workspace in tiers (Tier 2 ≈ 20/min, Tier 3 ≈ 50/min, Tier 4 ≈ 100/min;
chat.postMessage ≈ 1/s per channel, short bursts allowed). The pacer spaces our own calls so a burst
of flagged messages does not turn into a wall of HTTP 429s; when Slack still answers 429, slack_sdk's
``AsyncRateLimitErrorRetryHandler`` sleeps for its Retry-After and retries. Whatever still fails
becomes a ``PlatformActionFailed`` the moderation service audits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from moderation.errors import PlatformActionFailed

log = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"


def web_client(
    token: str,
    *,
    base_url: str = SLACK_API_URL,
    rate_limit_retries: int = 3,
    timeout: int = 10,
) -> AsyncWebClient:
    """An ``AsyncWebClient`` that honours Retry-After on 429 and retries connection/5xx errors once."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncServerErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        ],
    )


# ---------------------------------------------------------------------------------------- pacing


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: ``per_minute`` sustained, ``burst`` at once; ``per_channel`` keys it by channel."""

    per_minute: float
    burst: int = 1
    per_channel: bool = False


TIER2, TIER3, TIER4 = Limit(20, 3), Limit(50, 5), Limit(100, 10)

METHOD_LIMITS: Mapping[str, Limit] = {
    "chat.postMessage": Limit(60, 4, per_channel=True),
    "chat.postEphemeral": TIER4,
    "chat.update": TIER3,
    "chat.delete": TIER3,
    "views.open": TIER4,
    "usergroups.list": TIER2,
    "users.info": TIER4,
    "auth.test": TIER4,
}


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    at: float


def take(bucket: Bucket | None, limit: Limit, now: float) -> tuple[Bucket, float]:
    """Take one token at ``now``; returns the new bucket and how long to wait first. Pure.

    A caller that must wait is charged now (tokens go negative), so concurrent callers queue up
    behind each other instead of all waking at the same instant.
    """
    rate = limit.per_minute / 60.0
    if bucket is None:
        bucket = Bucket(float(limit.burst), now)
    tokens = min(float(limit.burst), bucket.tokens + (now - bucket.at) * rate)
    tokens -= 1.0
    wait = 0.0 if tokens >= 0 else -tokens / rate
    return Bucket(tokens, now), wait


class Pacer:
    """Spaces calls per method (and per channel where Slack limits per channel)."""

    def __init__(
        self,
        limits: Mapping[str, Limit] = METHOD_LIMITS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self.waited: float = 0.0

    async def wait(self, method: str, channel: str | None = None) -> None:
        limit = self._limits.get(method)
        if limit is None:
            return
        key = (method, (channel or "") if limit.per_channel else "")
        self._buckets[key], delay = take(self._buckets.get(key), limit, self._clock())
        if delay > 0:
            self.waited += delay
            log.debug("pacing %s for %.2fs", method, delay)
            await self._sleep(delay)


# ---------------------------------------------------------------------------------------- errors

#: Slack error codes that mean "the token may not do this" (→ an admin alert, never retried).
FORBIDDEN = frozenset(
    {
        "missing_scope",
        "not_allowed_token_type",
        "cant_delete_message",
        "cant_update_message",
        "restricted_action",
        "not_in_channel",
        "is_archived",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "ekm_access_denied",
        "no_permission",
    }
)
NOT_FOUND = frozenset({"message_not_found", "channel_not_found", "user_not_found", "thread_not_found"})
RETRYABLE = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackActionFailed(PlatformActionFailed):
    """A Web API call failed; ``slack_error`` is Slack's error code (None for transport failures)."""

    def __init__(
        self,
        action: str,
        message: str,
        *,
        slack_error: str | None,
        retryable: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(action, message, retryable=retryable, status=status)
        self.slack_error = slack_error


def to_action_failed(action: str, method: str, exc: Exception) -> SlackActionFailed:
    """Map slack_sdk/aiohttp failures to the core's typed error (status: 403, 404, 429, 5xx or None)."""
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error", "unknown_error"))
        http_status = exc.response.status_code
        if http_status == 429 or code == "ratelimited":
            headers = {k.lower(): v for k, v in exc.response.headers.items()}
            retry_after = headers.get("retry-after")
            return SlackActionFailed(
                action,
                f"{method} rate limited (Retry-After {retry_after})",
                slack_error=code,
                retryable=True,
                status=429,
            )
        if code in FORBIDDEN:
            return SlackActionFailed(action, f"{method}: {code}", slack_error=code, status=403)
        if code in NOT_FOUND:
            return SlackActionFailed(action, f"{method}: {code}", slack_error=code, status=404)
        retryable = code in RETRYABLE or http_status >= 500
        return SlackActionFailed(
            action, f"{method}: {code}", slack_error=code, retryable=retryable, status=http_status
        )
    if isinstance(exc, aiohttp.ClientError | TimeoutError | SlackClientError):
        return SlackActionFailed(
            action, f"{method}: {type(exc).__name__}: {exc}", slack_error=None, retryable=True
        )
    raise TypeError(f"not a Slack API failure: {exc!r}") from exc


def slack_error(exc: PlatformActionFailed) -> str | None:
    return exc.slack_error if isinstance(exc, SlackActionFailed) else None


class SlackApi:
    """Paced, typed access to the Web API methods the adapter uses (bot token; admin token optional)."""

    def __init__(self, bot: AsyncWebClient, admin: AsyncWebClient | None = None, pacer: Pacer | None = None):
        self.bot = bot
        self.admin = admin
        self.pacer = pacer or Pacer()

    async def call(
        self, action: str, method: str, *, client: AsyncWebClient | None = None, **kwargs: Any
    ) -> AsyncSlackResponse:
        client = client or self.bot
        await self.pacer.wait(method, kwargs.get("channel"))
        try:
            # The typed methods know each endpoint's encoding (JSON for writes, form/query for reads).
            fn = getattr(client, method.replace(".", "_"))
            response: AsyncSlackResponse = await fn(**_drop_none(kwargs))
            return response
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError) as exc:
            raise to_action_failed(action, method, exc) from exc


def _drop_none(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}
