"""Buttons, forms and slash commands: INTERACTION_CREATE payloads through the real CommandTree and view
store, replies and side effects observed at the fake Discord API."""

from __future__ import annotations

from moderation.domain import Action, AppealStatus, Platform, Verdict
from tests.discord.conftest import (
    ADMIN_ID,
    BOT_ID,
    GENERAL,
    GUILD,
    MEMBER_ID,
    MEMBER_PERMS,
    MEMES,
    REVIEW,
    Harness,
    set_review_channel,
    start_bot,
)
from tests.discord.fake_api import per_message_counts
from tests.discord.helpers import click, webhook_posts

ADMIN_PERMS = "2251799813685247"


async def test_restore_button_reposts_through_a_webhook_as_the_author(h: Harness) -> None:
    msg = await h.send("you are an idiot")
    await h.run(click(h, "chatmod:review:restore:1"))

    assert h.api.find("POST", rf"/channels/{GENERAL}/webhooks")  # created once for the channel
    [repost] = webhook_posts(h)
    assert repost["content"] == "you are an idiot\n-# ↩ restored by moderators"
    assert repost["username"] == "Tom"  # their server nickname
    assert repost["avatar_url"].startswith(f"https://cdn.discordapp.com/avatars/{MEMBER_ID}/")
    assert repost["allowed_mentions"]["parse"] == []
    # the review post now says who decided what, and its buttons are gone
    edits = [c.body for c in h.api.find("PATCH", rf"/channels/{REVIEW}/messages/\d+")]
    decided = edits[-1]
    assert decided["components"] == []
    assert any(
        f["name"] == "Decision" and "restored by <@1200000000000000002>" in f["value"]
        for f in decided["embeds"][0]["fields"]
    )
    assert h.last_reply() == "Case 1: restore recorded."
    case = await h.store.get_case(1)
    assert case.status == "resolved" and case.verdict is Verdict.RESTORE
    assert [o.verdict for o in h.store.overrides] == [Verdict.RESTORE]  # the labelled example
    assert per_message_counts(h.api.calls) == {msg["id"]: 1}


async def test_non_moderator_pressing_a_review_button_is_refused_and_audited(h: Harness) -> None:
    await h.send("you are an idiot")
    # a member who can see the review channel (an admin widened it by mistake) but has no mod permissions
    await h.run(click(h, "chatmod:review:restore:1", user_id=MEMBER_ID, permissions=MEMBER_PERMS, roles=[]))

    assert "need the moderator role" in h.last_reply()
    assert webhook_posts(h) == []
    denied = [e for e in h.store.audit if e.action == "permission.denied"]
    assert denied and denied[0].actor == f"discord:{MEMBER_ID}" and denied[0].subject == "override:1"
    assert (await h.store.get_case(1)).status == "open"


async def test_timeout_button_deletes_and_times_the_member_out(h: Harness) -> None:
    await h.send("you are an idiot")
    await h.run(click(h, "chatmod:review:timeout:1"))
    [patch] = h.api.find("PATCH", rf"/guilds/{GUILD}/members/{MEMBER_ID}")
    assert patch.body["communication_disabled_until"]
    assert (await h.store.get_case(1)).verdict is Verdict.TIMEOUT


async def test_second_click_after_a_decision_changes_nothing(h: Harness) -> None:
    await h.send("you are an idiot")
    await h.run(click(h, "chatmod:review:restore:1"))
    await h.run(click(h, "chatmod:review:delete:1"))
    assert "already decided (restore)" in h.last_reply()
    assert len(h.store.overrides) == 1


async def test_review_buttons_survive_a_restart(api, store) -> None:
    first = await start_bot(api, store)
    await set_review_channel(first)
    await first.send("you are an idiot")
    await first.bot.close()

    second = await start_bot(api, store)  # a new process: nothing in memory but the registered templates
    await second.run(click(second, "chatmod:review:dismiss:1"))
    assert second.last_reply() == "Case 1: dismiss recorded."
    assert (await store.get_case(1)).verdict is Verdict.DISMISS
    await second.bot.close()


async def test_restore_is_applied_at_most_once_across_restarts(api, store) -> None:
    first = await start_bot(api, store)
    await set_review_channel(first)
    await first.send("you are an idiot")
    await first.bot.service.apply_override(1, _mod(), Verdict.RESTORE)
    await first.bot.close()

    second = await start_bot(api, store)
    await second.bot.service.apply_override(1, _mod(), Verdict.RESTORE)  # replayed after a crash
    await second.settle()
    assert len(webhook_posts(second)) == 1
    await second.bot.close()


def _mod():
    from moderation.domain import Member, Role

    return Member(Platform.DISCORD, "1200000000000000002", "Mo", roles=frozenset({Role.MODERATOR}))


# ---------------------------------------------------------------------------------------------- /mod


async def test_mod_queue_lists_open_cases_ephemerally(h: Harness) -> None:
    await h.send("you are an idiot")
    await h.send("hello")
    await h.run(h.slash("mod", "queue"))
    [callback] = h.api.find("POST", r"/interactions/\d+/itok-\d+/callback")
    assert callback.body["type"] == 5 and callback.body["data"]["flags"] == 64  # deferred, ephemeral
    reply = h.last_reply()
    assert reply.startswith("**1 open case(s)**") and "`#1` hold" in reply and "idiot" in reply


async def test_mod_commands_refuse_members_even_if_discord_lets_them_through(h: Harness) -> None:
    await h.run(h.slash("mod", "queue", user_id=MEMBER_ID, permissions=MEMBER_PERMS, roles=[]))
    assert "need the moderator role" in h.last_reply()
    assert [e.subject for e in h.store.audit if e.action == "permission.denied"] == ["queue"]


async def test_mod_case_and_history(h: Harness) -> None:
    await h.send("you are an idiot")
    await h.run(h.slash("mod", "case", [{"type": 4, "name": "case", "value": 1}]))
    assert "Case 1: toxic" in h.last_reply()
    resolved = {
        "users": {
            MEMBER_ID: {
                "id": MEMBER_ID,
                "username": "tom_member",
                "global_name": "Tom M",
                "discriminator": "0",
                "avatar": None,
                "public_flags": 0,
            }
        }
    }
    payload = h.slash("mod", "history", [{"type": 6, "name": "member", "value": MEMBER_ID}])
    payload["data"]["resolved"] = resolved
    await h.run(payload)
    assert h.last_reply().startswith("**Tom M**: 1 case(s), 0 live strike(s)")


async def test_mod_override_uphold_deletes_and_strikes(h: Harness) -> None:
    await h.send("you are an idiot")
    await h.run(
        h.slash(
            "mod",
            "override",
            [{"type": 4, "name": "case", "value": 1}, {"type": 3, "name": "verdict", "value": "uphold"}],
        )
    )
    assert h.last_reply() == "Case 1: uphold recorded."
    assert await h.bot.service.live_strikes(Platform.DISCORD, GUILD, MEMBER_ID) == 1


# ---------------------------------------------------------------------------------------------- appeals


async def test_member_appeals_from_the_dm_button_and_a_moderator_grants_it(h: Harness) -> None:
    await h.send("you are an idiot")
    # the Appeal button in the DM opens a form…
    await h.run(click(h, "chatmod:appeal:1", user_id=MEMBER_ID, in_dm=True))
    [opened] = [
        c.body for c in h.api.find("POST", r"/interactions/\d+/itok-\d+/callback") if c.body["type"] == 9
    ]
    assert opened["data"]["custom_id"] == "chatmod:appeal-form:1"
    # …whose submission (from the DM, no guild) files the appeal
    form = h.interaction("interaction_modal_submit", user_id=MEMBER_ID)
    form["user"]["id"] = MEMBER_ID
    await h.run(form)
    assert h.last_reply().startswith("Appeal 1 on case 1 submitted")
    appeal_posts = [
        c.body
        for c in h.api.find("POST", rf"/channels/{REVIEW}/messages")
        if c.body.get("embeds") and c.body["embeds"][0]["title"].startswith("Appeal 1")
    ]
    assert len(appeal_posts) == 1

    await h.run(click(h, "chatmod:appeal-decide:grant:1"))
    assert h.last_reply() == "Appeal 1 granted."
    appeal = await h.store.get_appeal(1)
    assert appeal.status is AppealStatus.DECIDED
    assert len(webhook_posts(h)) == 1  # granting restores the message
    dms = [
        c.body.get("content") or ""
        for c in h.api.calls
        if c.method == "POST" and c.path == f"/channels/{h.api.dm_channels[MEMBER_ID]}/messages"
    ]
    assert any("was **granted**" in d for d in dms)


async def test_slash_appeal_by_someone_else_is_refused(h: Harness) -> None:
    await h.send("you are an idiot")
    payload = h.slash(
        None,
        "appeal",
        [{"type": 4, "name": "case", "value": 1}, {"type": 3, "name": "reason", "value": "not me"}],
        user_id=ADMIN_ID,
        permissions=MEMBER_PERMS,
    )
    await h.run(payload)
    assert h.last_reply() == "Only the author of that message can appeal it."
    ok = h.slash(
        None,
        "appeal",
        [{"type": 4, "name": "case", "value": 1}, {"type": 3, "name": "reason", "value": "it was a joke"}],
        user_id=MEMBER_ID,
        permissions=MEMBER_PERMS,
        roles=[],
    )
    await h.run(ok)
    assert h.last_reply().startswith("Appeal 1 on case 1 submitted")
    await h.run(h.slash("mod", "appeals"))
    assert "`appeal 1` on case 1" in h.last_reply() and "it was a joke" in h.last_reply()
    await h.run(
        h.slash(
            "mod",
            "decide-appeal",
            [{"type": 4, "name": "appeal", "value": 1}, {"type": 3, "name": "outcome", "value": "deny"}],
        )
    )
    assert h.last_reply() == "Appeal 1: denied."


# ---------------------------------------------------------------------------------------------- /config


def admin(h: Harness, name: str, options: list[dict]) -> dict:
    return h.slash(
        "config", name, options, user_id=ADMIN_ID, permissions=ADMIN_PERMS, roles=["1400000000000000001"]
    )


async def test_config_threshold_changes_the_channel_policy(h: Harness) -> None:
    await h.run(
        admin(
            h,
            "threshold",
            [
                {"type": 7, "name": "channel", "value": MEMES},
                {"type": 3, "name": "label", "value": "insult"},
                {"type": 3, "name": "tier", "value": "review_at"},
                {"type": 10, "name": "value", "value": 0.95},
            ],
        )
    )
    assert h.last_reply() == f"<#{MEMES}> insult: review_at 0.95, act_at 0.95."
    # "idiot" is insult 0.88 / toxic 0.91: still held in #general, but #memes' insult bar is higher
    policy = await h.store.get_policy(Platform.DISCORD, GUILD)
    assert policy.for_channel(MEMES).thresholds["insult"].review_at == 0.95
    assert [e.action for e in h.store.audit][-1] == "policy.threshold"


async def test_config_threshold_autocomplete_shows_current_values(h: Harness) -> None:
    await h.run(h.interaction("interaction_autocomplete", user_id=ADMIN_ID, permissions=ADMIN_PERMS))
    [callback] = h.api.find("POST", r"/interactions/\d+/itok-\d+/callback")
    assert callback.body["type"] == 8
    assert callback.body["data"]["choices"] == [
        {"name": "insult (review 0.80 / act 0.95)", "value": "insult"}
    ]


async def test_config_by_a_moderator_is_refused_and_audited(h: Harness) -> None:
    await h.run(h.slash("config", "auto", [{"type": 3, "name": "enabled", "value": "on"}]))
    assert "need the admin role" in h.last_reply()
    assert (await h.store.get_policy(Platform.DISCORD, GUILD)).auto_action is False
    assert [e.subject for e in h.store.audit if e.action == "permission.denied"] == ["policy.auto"]


async def test_config_commands_round_trip(h: Harness) -> None:
    await h.run(admin(h, "auto", [{"type": 3, "name": "enabled", "value": "on"}]))
    await h.run(
        admin(
            h,
            "action",
            [
                {"type": 7, "name": "channel", "value": GENERAL},
                {"type": 3, "name": "action", "value": "escalate"},
            ],
        )
    )
    await h.run(admin(h, "allow-term", [{"type": 3, "name": "term", "value": "noob"}]))
    await h.run(
        admin(
            h,
            "ladder",
            [
                {"type": 4, "name": "strikes", "value": 2},
                {"type": 10, "name": "window_days", "value": 7},
                {"type": 10, "name": "timeout_minutes", "value": 60},
            ],
        )
    )
    resolved = {
        "roles": {
            "1400000000000000004": {
                "id": "1400000000000000004",
                "name": "Trusted",
                "permissions": "0",
                "position": 1,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "icon": None,
                "unicode_emoji": None,
                "flags": 0,
            }
        }
    }
    exempt = admin(h, "exempt", [{"type": 8, "name": "role", "value": "1400000000000000004"}])
    exempt["data"]["options"][0]["options"][0]["value"] = "1400000000000000004"
    exempt["data"]["resolved"] = resolved
    await h.run(exempt)
    assert h.last_reply() == "<@&1400000000000000004> is now exempt."
    policy = await h.store.get_policy(Platform.DISCORD, GUILD)
    assert policy.auto_action and policy.channels[GENERAL].action is Action.ESCALATE
    assert policy.allow_terms == ("noob",) and policy.ladder.steps[0].timeout_seconds == 3600
    assert policy.exempt_role_ids == {"1400000000000000004"}
    await h.run(admin(h, "show", []))
    shown = h.last_reply()
    assert "automatic action: **on**" in shown and "`noob`" in shown and f"<#{REVIEW}>" in shown

    # an exempt member's toxic message is not touched
    await h.send("you idiot", roles=["1400000000000000004"])
    assert h.store.cases == {}
    assert BOT_ID  # (the bot never moderates itself either: see test_message_flow)


async def test_a_failing_command_still_answers_the_moderator(h: Harness, monkeypatch, caplog) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(h.bot.service, "review_queue", broken)
    await h.run(h.slash("mod", "queue"))
    assert h.last_reply() == "Something went wrong; it was logged for the bot's operator."
    assert "database on fire" in caplog.text
