"""Discord's failure modes at the fake API: 429 storms, 403s, 500s."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import discord
import pytest

from bot.adapters.discord.errors import translate
from moderation.domain import Action, Member, Platform, Role
from tests.discord.conftest import GENERAL, GUILD, MEMBER_ID, MEMES, REVIEW, Harness
from tests.discord.fake_api import per_message_counts

ADMIN = Member(Platform.DISCORD, "1200000000000000001", "Alice", roles=frozenset({Role.ADMIN}))


async def test_429_storm_every_action_applied_once_within_the_limits(h: Harness) -> None:
    await h.bot.service.set_auto_action(Platform.DISCORD, GUILD, ADMIN, True)
    # Per-channel buckets like Discord's (small, so the burst must queue), plus forced 429s:
    h.api.limit("POST /channels/{id}/messages", 2, 0.3)
    h.api.limit("DELETE /channels/{id}/messages/{id}", 2, 0.3)
    h.api.limit("PATCH /channels/{id}/messages/{id}", 2, 0.3)
    h.api.limit("POST /channels/{id}/messages/bulk-delete", 1, 0.3)
    h.api.fail("POST", r"/users/@me/channels", 429, times=2, retry_after=0.2, is_global=True)
    h.api.fail("POST", r"/channels/\d+/messages/bulk-delete", 429, times=1, retry_after=0.15)
    h.api.fail("PATCH", r"/guilds/\d+/members/\d+", 429, times=1, retry_after=0.1)

    burst = [h.message(f"you fucking idiot {i}", channel_id=(GENERAL, MEMES)[i % 2]) for i in range(8)]
    for data in burst:
        h.dispatch("MESSAGE_CREATE", data)
    await h.settle(timeout=30)

    assert h.api.rate_limited >= 4  # the storm happened…
    assert h.api.violations == 0  # …and no request came back before its Retry-After
    assert per_message_counts(h.api.calls) == {d["id"]: 1 for d in burst}
    footers = Counter(
        c.body["embeds"][0]["footer"]["text"]
        for c in h.api.find("POST", rf"/channels/{REVIEW}/messages")
        if c.body.get("embeds")
    )
    assert footers == {f"chatmod case {i}": 1 for i in range(1, 9)}
    dm_channel = h.api.dm_channels[MEMBER_ID]
    assert len(h.api.find("POST", rf"/channels/{dm_channel}/messages")) == 8
    timeouts = [c for c in h.store.cases.values() if c.decision.action is Action.TIMEOUT]
    assert len(h.api.find("PATCH", rf"/guilds/{GUILD}/members/{MEMBER_ID}")) == len(timeouts)
    for case in h.store.cases.values():
        assert {(case.id, "delete"), (case.id, "escalate"), (case.id, "notify")} <= h.store.actions.keys()
    assert not [e for e in h.store.audit if e.action == "action.failed"]


async def test_403_is_not_retried_recorded_and_reported_to_admins_once(h: Harness) -> None:
    await h.bot.service.set_auto_action(Platform.DISCORD, GUILD, ADMIN, True)
    h.api.fail("DELETE", r"/channels/\d+/messages/\d+", 403, times=100, code=50013)
    first = await h.send("what the fuck")
    second = await h.send("fuck this")

    deletes = [c for c in h.api.calls if c.method == "DELETE" and c.path.startswith(f"/channels/{GENERAL}/")]
    assert [c.status for c in deletes] == [403, 403]  # one attempt per message, none retried
    assert {c.path.rsplit("/", 1)[1] for c in deletes} == {first["id"], second["id"]}
    failed = [e for e in h.store.audit if e.action == "action.failed"]
    assert [(e.detail["action"], e.detail["status"]) for e in failed] == [("delete", 403), ("delete", 403)]
    alerts = [
        c.body["content"]
        for c in h.api.find("POST", rf"/channels/{REVIEW}/messages")
        if "lacks permission" in (c.body.get("content") or "")
    ]
    assert len(alerts) == 1 and "Missing Permissions" in alerts[0]
    # the review post and the member notice still went out
    assert len([c for c in h.api.find("POST", rf"/channels/{REVIEW}/messages") if c.body.get("embeds")]) == 2


async def test_500_is_retried_by_discord_py_and_applied_once(h: Harness) -> None:
    await h.bot.service.set_auto_action(Platform.DISCORD, GUILD, ADMIN, True)
    h.api.fail("DELETE", r"/channels/\d+/messages/\d+", 500, times=1)
    msg = await h.send("what the fuck")
    statuses = [c.status for c in h.api.calls if c.method == "DELETE"]
    assert statuses == [500, 204]
    assert per_message_counts(h.api.calls) == {msg["id"]: 1}
    assert not [e for e in h.store.audit if e.action == "action.failed"]


def _http_error(cls: type[discord.HTTPException], status: int, code: int = 0) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="x")
    return cls(response, {"message": "m", "code": code})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "status", "retryable"),
    [
        (_http_error(discord.Forbidden, 403, 50013), 403, False),
        (_http_error(discord.DiscordServerError, 503), 503, True),
        (_http_error(discord.NotFound, 404, 10008), 404, False),
        (_http_error(discord.HTTPException, 400, 50035), 400, False),
        (discord.RateLimited(120.0), 429, True),
    ],
)
def test_http_failures_translate_to_platform_action_failed(exc, status, retryable) -> None:
    err = translate("delete", exc)
    assert (err.status, err.retryable, err.action) == (status, retryable, "delete")
    assert err.__cause__ is exc
