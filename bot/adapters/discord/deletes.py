"""Deletions: bursts in one channel become one bulk-delete; a message already gone counts as deleted."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import discord

from bot.adapters.discord.errors import call, translate
from moderation.errors import PlatformActionFailed

log = logging.getLogger(__name__)

#: Discord refuses bulk-delete for messages older than 14 days; keep a margin.
_BULK_MAX_AGE = timedelta(days=13, hours=23)
_BULK_MAX = 100


@dataclass
class _Pending:
    ids: dict[int, list[asyncio.Future[None]]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class DeleteBatcher:
    """Coalesces deletions per channel for ``window`` seconds into one bulk-delete.

    A spammer's burst (say 20 messages in a second) costs one request instead of twenty, which keeps
    the bot well inside the per-channel delete bucket.
    """

    def __init__(self, client: discord.Client, window: float) -> None:
        self._client = client
        self._window = window
        self._pending: dict[int, _Pending] = {}

    async def delete(self, channel_id: int, message_id: int) -> None:
        pending = self._pending.setdefault(channel_id, _Pending())
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.ids.setdefault(message_id, []).append(fut)
        if pending.task is None:
            pending.task = asyncio.create_task(
                self._flush_later(channel_id), name=f"chatmod-bulk-{channel_id}"
            )
        await fut

    async def _flush_later(self, channel_id: int) -> None:
        pending: _Pending | None = None
        try:
            await asyncio.sleep(self._window)
            pending = self._pending.pop(channel_id)
            await self._flush(channel_id, list(pending.ids))
        except asyncio.CancelledError:
            _settle(
                pending or self._pending.pop(channel_id, _Pending()),
                PlatformActionFailed("delete", "cancelled"),
            )
            raise
        except Exception as exc:  # every waiter must hear about it, or its action would hang
            _settle(pending or self._pending.pop(channel_id, _Pending()), exc)
        else:
            _settle(pending, None)

    async def _flush(self, channel_id: int, ids: list[int]) -> None:
        http = self._client.http
        cutoff = discord.utils.utcnow() - _BULK_MAX_AGE
        recent = [i for i in ids if discord.utils.snowflake_time(i) > cutoff]
        single = [i for i in ids if i not in recent]
        for start in range(0, len(recent), _BULK_MAX):
            chunk = recent[start : start + _BULK_MAX]
            if len(chunk) == 1:
                single.extend(chunk)
                continue
            ids_: list[str | int] = list(chunk)
            try:
                await call("delete", http.delete_messages(channel_id, ids_, reason="chatmod: moderation"))
                log.info("bulk-deleted %d messages in channel %s", len(chunk), channel_id)
            except PlatformActionFailed as exc:
                if exc.status not in (400, 404):
                    raise
                single.extend(chunk)  # an id already gone makes Discord refuse the batch: go one by one
        for message_id in single:
            await delete_one(http, channel_id, message_id)


async def delete_one(http: discord.http.HTTPClient, channel_id: int, message_id: int) -> None:
    try:
        await http.delete_message(channel_id, message_id, reason="chatmod: moderation")
    except discord.NotFound:
        log.info("message %s in %s already gone", message_id, channel_id)
    except (discord.HTTPException, discord.RateLimited) as exc:
        raise translate("delete", exc) from exc


def _settle(pending: _Pending, exc: BaseException | None) -> None:
    for futures in pending.ids.values():
        for fut in futures:
            if fut.done():
                continue
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
