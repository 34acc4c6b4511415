"""Translate discord.py HTTP failures into the core's ``PlatformActionFailed``.

discord.py's HTTP client already waits out 429s (per-bucket ``X-RateLimit-*`` headers, ``Retry-After``
and the global limit) and retries 500/502/504/524 up to five attempts with backoff. What reaches us
here is therefore final: a 403 is a missing permission (never retried, reported to admins once by the
service), a 5xx is a Discord outage that outlasted discord.py's retries (retryable later).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import discord

from moderation.errors import PlatformActionFailed

T = TypeVar("T")


def translate(action: str, exc: discord.HTTPException | discord.RateLimited) -> PlatformActionFailed:
    if isinstance(exc, discord.RateLimited):
        err = PlatformActionFailed(
            action, f"rate limited for {exc.retry_after:.1f}s", retryable=True, status=429
        )
    elif isinstance(exc, discord.Forbidden):
        err = PlatformActionFailed(
            action, f"missing permission (Discord code {exc.code}: {exc.text})", retryable=False, status=403
        )
    elif isinstance(exc, discord.DiscordServerError):
        err = PlatformActionFailed(action, f"Discord error {exc.status}", retryable=True, status=exc.status)
    else:
        err = PlatformActionFailed(
            action, f"HTTP {exc.status} (code {exc.code}: {exc.text})", retryable=False, status=exc.status
        )
    err.__cause__ = exc
    return err


async def call(action: str, aw: Awaitable[T]) -> T:
    """Await a discord.py call, raising ``PlatformActionFailed`` for HTTP failures."""
    try:
        return await aw
    except (discord.HTTPException, discord.RateLimited) as exc:
        raise translate(action, exc) from exc
