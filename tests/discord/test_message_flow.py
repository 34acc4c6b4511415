"""Inbound messages and edits, through discord.py's parsers, against the fake Discord API."""

from __future__ import annotations

import asyncio
import re

import discord
import pytest

from moderation.domain import Action, Member, Platform, Role, Verdict
from tests.discord.conftest import BOT_ID, GENERAL, GUILD, MEMBER_ID, REVIEW, Harness, load
from tests.discord.fake_api import per_message_counts

ADMIN = Member(Platform.DISCORD, "1200000000000000001", "Alice", roles=frozenset({Role.ADMIN}))


async def auto_on(h: Harness) -> None:
    await h.bot.service.set_auto_action(Platform.DISCORD, GUILD, ADMIN, True)


def review_posts(h: Harness) -> list[dict]:
    return [c.body for c in h.api.find("POST", rf"/channels/{REVIEW}/messages") if c.body.get("embeds")]


def dm_posts(h: Harness) -> list[dict]:
    dm_ids = set(h.api.dm_channels.values())
    return [
        c.body
        for c in h.api.calls
        if c.method == "POST"
        and c.path.split("/")[2:3]
        and c.path.split("/")[2] in dm_ids
        and 200 <= c.status < 300
    ]


async def test_toxic_message_is_deleted_posted_for_review_and_member_dmed(h: Harness) -> None:
    await auto_on(h)
    msg = await h.send("what the fuck is wrong with you")

    assert per_message_counts(h.api.calls) == {msg["id"]: 1}
    [post] = review_posts(h)
    embed = post["embeds"][0]
    assert embed["footer"]["text"] == "chatmod case 1"
    assert embed["description"] == "what the fuck is wrong with you"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Author"] == f"<@{MEMBER_ID}>" and fields["Channel"] == f"<#{GENERAL}>"
    assert "**obscene**: 0.95 (review 0.85 / act 0.97)" in fields["Scores (thresholds)"]
    assert fields["Model"] == "fake-1"
    buttons = [b["custom_id"] for row in post["components"] for b in row["components"]]
    assert buttons == [f"chatmod:review:{v}:1" for v in ("restore", "delete", "timeout", "dismiss")]
    # the words that drove the scores are added once scoring returned
    [edit] = [c.body for c in h.api.find("PATCH", rf"/channels/{REVIEW}/messages/\d+")]
    words = {f["name"]: f["value"] for f in edit["embeds"][0]["fields"]}["Words that drove it"]
    assert "toxic: fuck" in words

    [dm] = dm_posts(h)
    dm_fields = {f["name"]: f["value"] for f in dm["embeds"][0]["fields"]}
    assert dm_fields["Category"] == "toxic or abusive language"
    assert "over this channel's removal threshold" in dm_fields["Rule"]
    assert dm_fields["Your message"] == "what the fuck is wrong with you"
    assert [b["custom_id"] for b in dm["components"][0]["components"]] == ["chatmod:appeal:1"]
    case = await h.store.get_case(1)
    assert case.decision.action is Action.DELETE and case.decision.strike


async def test_review_first_default_holds_and_queues(h: Harness) -> None:
    msg = await h.send("you are an idiot")
    assert per_message_counts(h.api.calls) == {msg["id"]: 1}  # Discord cannot hide: removed…
    assert len(review_posts(h)) == 1
    queue = await h.bot.service.review_queue(Platform.DISCORD, GUILD)
    assert [c.decision.action for c in queue] == [Action.HOLD]  # …and kept for review


async def test_clean_message_is_left_alone(h: Harness) -> None:
    before = len(h.api.calls)
    await h.send("good morning everyone")
    assert h.api.calls[before:] == []
    assert (await h.store.get_case(1)).decision.action is Action.ALLOW


async def test_duplicate_delivery_acts_once(h: Harness) -> None:
    await auto_on(h)
    data = h.message("you stupid moron")
    for _ in range(3):  # gateway replays after a resume, or the same event delivered twice
        h.dispatch("MESSAGE_CREATE", data)
    await h.settle()
    assert per_message_counts(h.api.calls) == {data["id"]: 1}
    assert len(review_posts(h)) == 1 and len(dm_posts(h)) == 1
    assert len(h.store.cases) == 1


async def test_edit_to_toxic_is_rescored_but_not_punished_twice(h: Harness) -> None:
    await auto_on(h)
    data = await h.send("see you later")
    assert per_message_counts(h.api.calls) == {}

    edited = load("message_update")
    edited.update(id=data["id"], content="see you later, you fucking idiot")
    h.dispatch("MESSAGE_UPDATE", edited)
    await h.settle()
    assert per_message_counts(h.api.calls) == {data["id"]: 1}
    versions = await h.store.cases_for_message(Platform.DISCORD, GENERAL, data["id"])
    assert [c.decision.action for c in versions] == [Action.ALLOW, Action.DELETE]
    assert versions[1].decision.strike

    again = dict(edited, content="see you later, you fucking moron")
    h.dispatch("MESSAGE_UPDATE", again)
    h.dispatch("MESSAGE_UPDATE", again)  # same version twice: one decision
    await h.settle()
    versions = await h.store.cases_for_message(Platform.DISCORD, GENERAL, data["id"])
    assert len(versions) == 3
    assert not versions[2].decision.strike and versions[2].decision.reason.endswith("+edit")
    assert len([s for s in h.store.strikes if not s.reversed]) == 1


async def test_edit_without_content_is_fetched_and_scored(h: Harness) -> None:
    data = await h.send("hello there")
    fetched = dict(load("message_update"), id=data["id"], content="hello there, idiot")
    h.api.seed_message(fetched)
    h.dispatch("MESSAGE_UPDATE", dict(load("message_update_no_content"), id=data["id"]))
    await h.settle()
    assert h.api.find("GET", rf"/channels/{GENERAL}/messages/{data['id']}")
    versions = await h.store.cases_for_message(Platform.DISCORD, GENERAL, data["id"])
    assert [c.decision.action for c in versions] == [Action.ALLOW, Action.HOLD]


async def test_edit_still_withheld_after_fetch_is_recorded_and_alerted(h: Harness) -> None:
    data = await h.send("hello there")
    h.api.seed_message(dict(load("message_update_no_content"), id=data["id"]))
    h.dispatch("MESSAGE_UPDATE", dict(load("message_update_no_content"), id=data["id"]))
    await h.settle()
    skipped = [e for e in h.store.audit if e.action == "discord.edit_skipped"]
    assert skipped and skipped[0].subject == f"{GENERAL}:{data['id']}"
    alerts = [c.body["content"] for c in h.api.find("POST", rf"/channels/{REVIEW}/messages")]
    assert any("cannot read message content" in a for a in alerts)
    assert (
        len(await h.store.cases_for_message(Platform.DISCORD, GENERAL, data["id"])) == 1
    )  # not scored clean


async def test_missing_message_content_intent_alerts_admins_once_and_never_scores_clean(h: Harness) -> None:
    await h.send("")
    await h.send("")
    assert h.store.cases == {}
    alerts = [c.body["content"] for c in h.api.find("POST", rf"/channels/{REVIEW}/messages")]
    assert len([a for a in alerts if "cannot read message content" in a]) == 1


async def test_attachment_only_message_is_not_a_missing_content_alert(h: Harness) -> None:
    data = h.message("")
    data["attachments"] = [
        {
            "id": "1441550381234567999",
            "filename": "cat.png",
            "size": 1024,
            "content_type": "image/png",
            "url": "https://cdn.discordapp.com/attachments/1/2/cat.png",
            "proxy_url": "https://media.discordapp.net/attachments/1/2/cat.png",
            "width": 64,
            "height": 64,
        }
    ]
    h.dispatch("MESSAGE_CREATE", data)
    await h.settle()
    assert not [c for c in h.api.calls if c.method == "POST"]


async def test_bot_and_own_messages_are_skipped(h: Harness) -> None:
    data = h.message("you idiot", author_id=BOT_ID)
    data["author"]["bot"] = True
    h.dispatch("MESSAGE_CREATE", data)
    await h.settle()
    assert h.store.cases == {}


async def test_closed_dms_fall_back_to_a_self_deleting_channel_notice(h: Harness) -> None:
    h.api.close_dms(MEMBER_ID)
    await h.send("you are an idiot")
    notices = [c for c in h.api.find("POST", rf"/channels/{GENERAL}/messages")]
    assert len(notices) == 1
    content = notices[0].body["content"]
    assert content.startswith(f"<@{MEMBER_ID}>") and "/appeal case:1" in content
    assert "idiot" not in content  # their text is not repeated in public
    assert notices[0].body["allowed_mentions"]["parse"] == ["users"]
    await h.api.wait_for("DELETE", rf"/channels/{GENERAL}/messages/\d+", count=2)  # held msg + the notice


async def test_burst_from_one_member_is_bulk_deleted(h: Harness) -> None:
    await auto_on(h)
    burst = [h.message(f"idiot spam {i}") for i in range(6)]
    for data in burst:
        h.dispatch("MESSAGE_CREATE", data)
    await h.settle()
    bulk = h.api.find("POST", rf"/channels/{GENERAL}/messages/bulk-delete")
    assert len(bulk) == 1 and sorted(map(str, bulk[0].body["messages"])) == sorted(d["id"] for d in burst)
    assert per_message_counts(h.api.calls) == {d["id"]: 1 for d in burst}


async def test_backfill_scores_messages_sent_while_away(api, store) -> None:
    from tests.discord.conftest import set_review_channel, start_bot

    first = await start_bot(api, store)
    await set_review_channel(first)
    seen = await first.send("morning all")
    await first.bot.close()

    missed = [first.message("you idiot"), first.message("nice weather")]
    for data in missed:
        data["id"] = str(int(seen["id"]) + int(data["id"][-3:]))  # after the checkpoint, before restart
        api.seed_message(data)

    second = await start_bot(api, store)
    await second.settle()
    history = api.find("GET", rf"/channels/{GENERAL}/messages")
    assert history and history[0].query["after"] == seen["id"]
    actions = {c.key.message_id: c.decision.action for c in store.cases.values()}
    assert actions[missed[0]["id"]] is Action.HOLD and actions[missed[1]["id"]] is Action.ALLOW
    assert second.bot.stats["backfilled"] == 2
    await second.bot.close()


async def test_commands_are_guild_synced_with_default_permissions(h: Harness) -> None:
    [sync] = h.api.find("PUT", rf"/applications/{BOT_ID}/guilds/{GUILD}/commands")
    by_name = {c["name"]: c for c in sync.body}
    assert set(by_name) == {"mod", "config", "appeal"}
    assert str(by_name["mod"]["default_member_permissions"]) == "8192"  # manage_messages
    assert str(by_name["config"]["default_member_permissions"]) == "32"  # manage_guild
    assert by_name["appeal"]["default_member_permissions"] is None
    subs = {o["name"] for o in by_name["config"]["options"]}
    assert {"show", "threshold", "action", "auto", "exempt", "allow-term", "ladder", "review-channel"} <= subs
    assert re.fullmatch(r"fake-token", h.bot.http.token or "")


async def test_missing_bot_permissions_degrade_to_escalate(api, store) -> None:
    from tests.discord.conftest import set_review_channel, start_bot

    guild = load("guild_create")
    bot_role = next(r for r in guild["roles"] if r["name"] == "chatmod")
    bot_role["permissions"] = str(1024 | 2048 | 16384 | 65536)  # invited without Manage Messages/Timeout
    h = await start_bot(api, store, ready=False)
    h.dispatch("READY", load("ready"))
    h.dispatch("GUILD_CREATE", guild)
    await h.bot.wait_until_ready()
    await set_review_channel(h)
    await auto_on(h)

    await h.send("what the fuck")
    case = await store.get_case(1)
    assert case.decision.action is Action.ESCALATE and case.decision.degraded_from is Action.DELETE
    assert per_message_counts(api.calls) == {}
    assert len(review_posts(h)) == 1
    await h.bot.close()


async def test_close_drains_in_flight_messages(h: Harness) -> None:
    data = h.message("you are an idiot")
    h.dispatch("MESSAGE_CREATE", data)
    await asyncio.sleep(0)  # discord.py's dispatch task runs on_message, which starts our task
    assert len(h.bot._tasks) == 1
    await h.bot.close()  # stop intake, then finish what was already received
    assert (await h.store.get_case(1)).decision.action is Action.HOLD
    assert per_message_counts(h.api.calls) == {data["id"]: 1} and len(review_posts(h)) == 1

    async def late() -> None:
        raise AssertionError("ran after close")

    assert h.bot.spawn(late(), None, "chatmod-late") is None  # intake stopped: left for the next backfill
    assert h.bot.stats["dropped_at_shutdown"] == 1


async def test_gateway_refusing_the_message_content_intent_is_a_clear_error(api, store, monkeypatch) -> None:
    from bot.adapters.discord import MissingIntents
    from tests.discord.conftest import start_bot

    async def refuse(self, *, reconnect: bool = True) -> None:  # what the gateway's close code 4014 raises
        raise discord.PrivilegedIntentsRequired(None)

    monkeypatch.setattr(discord.Client, "connect", refuse)
    h = await start_bot(api, store, ready=False)
    with pytest.raises(MissingIntents, match="MESSAGE CONTENT"):
        await h.bot.start("fake-token")
    await h.bot.close()


async def test_without_a_review_channel_admins_are_told_once_in_the_system_channel(api, store) -> None:
    from tests.discord.conftest import start_bot

    h = await start_bot(api, store)  # nobody ran /config review-channel yet
    await h.send("you are an idiot")
    await h.send("you moron")
    system = [c.body["content"] for c in api.find("POST", rf"/channels/{GENERAL}/messages")]
    assert len([t for t in system if "no review channel is set" in t]) == 1
    assert len(await h.bot.service.review_queue(Platform.DISCORD, GUILD)) == 2  # still queued
    await h.bot.close()


async def test_restores_reuse_one_channel_webhook(h: Harness) -> None:
    from tests.discord.helpers import webhook_posts

    for i in range(3):
        h.dispatch("MESSAGE_CREATE", h.message(f"you idiot {i}"))
    await h.settle()
    mod = Member(Platform.DISCORD, "1200000000000000002", "Mo", roles=frozenset({Role.MODERATOR}))
    await asyncio.gather(*(h.bot.service.apply_override(i, mod, Verdict.RESTORE) for i in (1, 2, 3)))
    assert len(h.api.find("POST", rf"/channels/{GENERAL}/webhooks")) == 1
    assert len(webhook_posts(h)) == 3


async def test_a_failed_bulk_delete_fails_every_waiting_deletion(h: Harness) -> None:
    await auto_on(h)
    h.api.fail("POST", r"/channels/\d+/messages/bulk-delete", 403, times=1, code=50013)
    for i in range(3):
        h.dispatch("MESSAGE_CREATE", h.message(f"fuck off {i}"))
    await h.settle()
    failed = [e for e in h.store.audit if e.action == "action.failed"]
    assert sorted(e.subject for e in failed) == ["1", "2", "3"]
    assert all(e.detail["status"] == 403 for e in failed)


async def test_missing_commands_scope_does_not_stop_moderation(api, store, caplog) -> None:
    from tests.discord.conftest import set_review_channel, start_bot

    api.fail("PUT", r"/applications/\d+/guilds/\d+/commands", 403, code=50001, message="Missing Access")
    h = await start_bot(api, store)
    assert "applications.commands" in caplog.text
    await set_review_channel(h)
    await h.send("you are an idiot")
    assert (await store.get_case(1)).decision.action is Action.HOLD
    await h.bot.close()
