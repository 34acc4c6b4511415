"""Harness: the real ChatmodDiscordBot (discord.py Client, ConnectionState, CommandTree, view store) fed
recorded gateway payloads, with discord.py's HTTP pointed at a local fake Discord API."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import discord.http
import pytest

from bot.adapters.discord import ChatmodDiscordBot, build_discord_bot
from bot.settings import DiscordSettings
from moderation.fakes import FakeScoreClient, FixedClock, MemoryStore
from moderation.service import ModerationService
from tests.discord.fake_api import FakeDiscordAPI

FIXTURES = Path(__file__).parent / "fixtures"
GUILD = "1100000000000000001"
GENERAL = "1500000000000000001"
REVIEW = "1500000000000000002"
MEMES = "1500000000000000003"
BOT_ID = "1300000000000000001"
ADMIN_ID = "1200000000000000001"
MOD_ID = "1200000000000000002"
MEMBER_ID = "1200000000000000003"
MEMBER_PERMS = "1071698660929"
_TASK_PREFIXES = ("chatmod-", "CommandTree-invoker", "discord.py: ", "discord-ui-")


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class Harness:
    """Drives the bot the way the gateway does: payload dicts into discord.py's parsers."""

    def __init__(
        self,
        bot: ChatmodDiscordBot,
        api: FakeDiscordAPI,
        store: MemoryStore,
        scorer: FakeScoreClient,
        clock: FixedClock,
    ) -> None:
        self.bot, self.api, self.store, self.scorer, self.clock = bot, api, store, scorer, clock
        self._ids = iter(range(1, 10_000))

    def snowflake(self) -> str:
        return str(discord.utils.time_snowflake(discord.utils.utcnow()) + next(self._ids))

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.bot._connection.parsers[event](copy.deepcopy(data))

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every event, command and view task the dispatch started has finished."""
        deadline = time.monotonic() + timeout
        me = asyncio.current_task()
        while time.monotonic() < deadline:
            busy = [
                t
                for t in asyncio.all_tasks()
                if t is not me and not t.done() and t.get_name().startswith(_TASK_PREFIXES)
            ]
            if not busy:
                return
            await asyncio.wait(busy, timeout=0.05)
        raise AssertionError("bot did not settle")

    # ------------------------------------------------------------------ payloads

    def message(
        self,
        content: str,
        *,
        author_id: str = MEMBER_ID,
        channel_id: str = GENERAL,
        message_id: str | None = None,
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        data = load("message_create")
        data.update(
            id=message_id or self.snowflake(),
            content=content,
            channel_id=channel_id,
            timestamp=discord.utils.utcnow().isoformat(),
        )
        data["author"]["id"] = author_id
        data["member"]["roles"] = roles or []
        return data

    async def send(self, content: str, **kw: Any) -> dict[str, Any]:
        data = self.message(content, **kw)
        self.dispatch("MESSAGE_CREATE", data)
        await self.settle()
        return data

    def interaction(
        self,
        fixture: str,
        *,
        user_id: str = MOD_ID,
        permissions: str | None = None,
        roles: list[str] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        data = load(fixture)
        data["id"] = self.snowflake()
        data["token"] = f"itok-{data['id']}"
        if "member" in data:
            data["member"]["user"]["id"] = user_id
            data["member"]["user"]["username"] = {ADMIN_ID: "alice_admin", MOD_ID: "mo_moderator"}.get(
                user_id, "tom_member"
            )
            if permissions is not None:
                data["member"]["permissions"] = permissions
            if roles is not None:
                data["member"]["roles"] = roles
        data.update(fields)
        return data

    def slash(
        self, group: str | None, name: str, options: list[dict[str, Any]] | None = None, **kw: Any
    ) -> dict[str, Any]:
        opts = options or []
        command = (
            {
                "type": 1,
                "name": group,
                "id": "1441000000000000101",
                "options": [{"type": 1, "name": name, "options": opts}],
            }
            if group
            else {"type": 1, "name": name, "id": "1441000000000000103", "options": opts}
        )
        guild = load("guild_create")
        channels = {c["id"]: c for c in guild["channels"]}
        resolved: dict[str, Any] = {}
        for opt in opts:  # Discord resolves channel options into full objects alongside the ids
            if opt["type"] == 7:
                ch = channels[opt["value"]]
                resolved.setdefault("channels", {})[opt["value"]] = {
                    "id": ch["id"],
                    "name": ch["name"],
                    "type": ch["type"],
                    "parent_id": None,
                    "permissions": "2251799813685247",
                    "flags": 0,
                    "guild_id": GUILD,
                    "topic": ch.get("topic"),
                    "nsfw": False,
                    "rate_limit_per_user": 0,
                    "last_message_id": None,
                }
        if resolved:
            command["resolved"] = resolved
        return self.interaction("interaction_slash_command", data=command, **kw)

    async def run(self, payload: dict[str, Any]) -> None:
        self.dispatch("INTERACTION_CREATE", payload)
        await self.settle()

    def followups(self) -> list[dict[str, Any]]:
        """Bodies of interaction follow-ups (ephemeral replies after a deferral)."""
        return [c.body for c in self.api.find("POST", rf"/webhooks/{BOT_ID}/itok-\d+")]

    def last_reply(self) -> str:
        replies = self.followups()
        assert replies, "no interaction reply; calls:\n" + "\n".join(self.api.routes())
        body = replies[-1]
        assert body.get("flags", 0) & 64, "reply is not ephemeral"
        return body.get("content") or json.dumps(body.get("embeds"))


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscordAPI]:
    fake = FakeDiscordAPI()
    base = await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", base)
    yield fake
    await fake.close()


async def start_bot(
    api: FakeDiscordAPI,
    store: MemoryStore,
    *,
    settings: DiscordSettings | None = None,
    ready: bool = True,
    **options: Any,
) -> Harness:
    clock = FixedClock(discord.utils.utcnow())
    scorer = FakeScoreClient()
    service = ModerationService(scorer=scorer, store=store, actions={}, clock=clock)
    settings = settings or DiscordSettings(
        enabled=True, guild_ids=[int(GUILD)], notice_delete_after_s=0.05, backfill_limit=50
    )
    options.setdefault("bulk_window_s", 0.05)
    bot = build_discord_bot(service, settings, clock=clock, guild_ready_timeout=0.05, **options)
    await bot.login("fake-token")
    harness = Harness(bot, api, store, scorer, clock)
    if ready:
        harness.dispatch("READY", load("ready"))
        harness.dispatch("GUILD_CREATE", load("guild_create"))
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        await harness.settle()
    return harness


@pytest.fixture
async def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def h(api: FakeDiscordAPI, store: MemoryStore) -> AsyncIterator[Harness]:
    harness = await start_bot(api, store)
    await set_review_channel(harness)
    yield harness
    await harness.bot.close()


async def set_review_channel(h: Harness) -> None:
    from moderation.domain import Member, Platform, Role

    admin = Member(Platform.DISCORD, ADMIN_ID, "Alice", roles=frozenset({Role.ADMIN}))
    await h.bot.service.set_review_channel(Platform.DISCORD, GUILD, admin, REVIEW)
