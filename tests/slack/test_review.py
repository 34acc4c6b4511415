"""Review-card buttons (block_actions) through the real AsyncApp: moderator status re-checked per click,
refusals audited, verdicts applied once and shown on the card."""

from __future__ import annotations

from moderation.domain import Action, Verdict
from tests.slack.conftest import ADMIN_TOKEN, BOT_TOKEN, MEMBER, MOD, REVIEW, make_harness
from tests.slack.fake_slack import GROUP_MOD


def _card_ts(h, case_id: int) -> str:
    post = h.adapter.actions.posts.get(case_id)
    assert post is not None and post.channel == REVIEW
    return post.ts


async def test_non_moderator_clicking_restore_is_refused_and_audited(admin_harness, fake_api):
    h = admin_harness
    await h.message()
    case = h.store.cases[1]
    assert case.decision.action is Action.HOLD
    fake_api.calls.clear()

    resp = await h.click("chatmod_restore", 1, user="U0RANDOM", message_ts=_card_ts(h, 1))
    assert resp.status == 200  # acknowledged; the refusal is told privately
    refusals = fake_api.to("chat.postEphemeral")
    assert [(c["channel"], c["user"]) for c in refusals] == [(REVIEW, "U0RANDOM")]
    assert "moderators" in refusals[0]["text"]
    assert fake_api.to("chat.postMessage") == [] and fake_api.to("chat.update") == []
    assert h.store.cases[1].status == "open" and h.store.overrides == []
    denied = [e for e in h.store.audit if e.action == "permission.denied"]
    assert [(e.actor, e.subject, e.detail["required"]) for e in denied] == [
        ("slack:U0RANDOM", "override:1", "moderator")
    ]


async def test_member_cannot_restore_their_own_message(admin_harness, fake_api):
    await admin_harness.message()
    await admin_harness.click("chatmod_restore", 1, user=MEMBER)
    assert admin_harness.store.cases[1].status == "open"
    assert not [c for c in fake_api.to("chat.postMessage") if c["channel"] == "C0GENERAL"]


async def test_moderator_restore_reposts_attributed_and_updates_card(admin_harness, fake_api):
    h = admin_harness
    await h.message()
    card_ts = _card_ts(h, 1)
    fake_api.calls.clear()

    await h.click("chatmod_restore", 1, user=MOD, message_ts=card_ts)

    reposts = [c for c in fake_api.to("chat.postMessage") if c["channel"] == "C0GENERAL"]
    assert len(reposts) == 1 and reposts[0].token == BOT_TOKEN  # as the bot…
    assert "<@U0MEMBER>" in str(reposts[0]["blocks"])  # …attributed to the member
    assert "you are an idiot @U0OTHER" in str(reposts[0]["blocks"])
    updates = fake_api.to("chat.update")
    assert [(c["channel"], c["ts"]) for c in updates] == [(REVIEW, card_ts)]
    card = str(updates[0]["blocks"])
    assert "Restore* by <@U0MOD>" in card and "chatmod_restore" not in card  # verdict shown, buttons gone
    assert h.store.cases[1].status == "resolved" and h.store.cases[1].verdict is Verdict.RESTORE
    assert [(o.moderator.user_id, o.verdict) for o in h.store.overrides] == [(MOD, Verdict.RESTORE)]


async def test_second_click_on_resolved_case_does_nothing_twice(admin_harness, fake_api):
    h = admin_harness
    await h.message()
    card_ts = _card_ts(h, 1)
    await h.click("chatmod_restore", 1, message_ts=card_ts)
    await h.click("chatmod_restore", 1, message_ts=card_ts)
    assert len([c for c in fake_api.to("chat.postMessage") if c["channel"] == "C0GENERAL"]) == 1
    assert len(h.store.overrides) == 1
    assert "already resolved" in fake_api.to("chat.postEphemeral")[-1]["text"]


async def test_usergroup_moderator_deletes_without_admin_token(harness, fake_api):
    """Moderator via user group; no admin token: the verdict is recorded (and a strike), removal is
    impossible, the failure is audited, admins are alerted, and the card says so."""
    h = harness
    await h.message()
    assert h.store.cases[1].decision.action is Action.ESCALATE
    card_ts = _card_ts(h, 1)
    fake_api.calls.clear()

    await h.click("chatmod_delete", 1, user=GROUP_MOD, message_ts=card_ts)

    assert fake_api.to("chat.delete") == []
    assert h.store.cases[1].verdict is Verdict.DELETE
    assert [s.user_id for s in h.store.strikes if not s.reversed] == [MEMBER]
    failed = [e for e in h.store.audit if e.action == "action.failed"]
    assert [(e.detail["action"], e.detail["status"]) for e in failed] == [("delete", 403)]
    alerts = [c for c in fake_api.to("chat.postMessage") if c["channel"] == REVIEW]
    assert len(alerts) == 1 and "admin user token" in alerts[0]["text"]
    card = str(fake_api.to("chat.update")[-1]["blocks"])
    assert "Delete* by <@U0GROUPMOD>" in card and "Remove the message by hand" in card


async def test_delete_with_admin_token_removes_with_the_admin_token(fake_api):
    h = await make_harness(fake_api, admin=True)
    try:
        await h.message("you absolute moron")
        fake_api.calls.clear()
        # the held message is already gone; the Delete verdict re-issues chat.delete, which Slack
        # answers message_not_found: that is "done", not a failure
        fake_api.fail("chat.delete", "message_not_found")
        await h.click("chatmod_delete", 1, message_ts=_card_ts(h, 1))
        assert h.store.cases[1].verdict is Verdict.DELETE
        deletes = fake_api.to("chat.delete")
        assert [(c["ts"], c.token) for c in deletes] == [("1763778000.000100", ADMIN_TOKEN)]
        assert not [e for e in h.store.audit if e.action == "action.failed"]
    finally:
        await h.close()


async def test_dismiss_escalation_leaves_message_and_reverses_nothing_removed(harness, fake_api):
    await harness.message()
    fake_api.calls.clear()
    await harness.click("chatmod_dismiss", 1, message_ts=_card_ts(harness, 1))
    assert harness.store.cases[1].verdict is Verdict.DISMISS
    assert fake_api.methods() == ["chat.update"]  # nothing was removed, so nothing is reposted


async def test_click_on_unknown_case_is_answered(harness, fake_api):
    await harness.click("chatmod_restore", 99)
    assert "not found" in fake_api.to("chat.postEphemeral")[-1]["text"]
    assert harness.store.overrides == []


async def test_without_usergroups_scope_only_configured_moderators_count(harness, fake_api):
    fake_api.fail("usergroups.list", "missing_scope", times=5)
    await harness.message()
    card_ts = _card_ts(harness, 1)
    await harness.click("chatmod_dismiss", 1, user=GROUP_MOD, message_ts=card_ts)
    assert harness.store.cases[1].status == "open"
    await harness.click("chatmod_dismiss", 1, user=MOD, message_ts=card_ts)
    assert harness.store.cases[1].verdict is Verdict.DISMISS


async def test_moderator_status_is_rechecked_at_click_time(harness, fake_api):
    """Group membership is re-read for privileged actions (max 30 s old), not the 5-minute message cache."""
    now = [0.0]
    harness.adapter.directory._clock = lambda: now[0]
    await harness.message()  # caches the groups (U0GROUPMOD is a moderator)
    original = fake_api._default

    def no_members(method, params):
        body = original(method, params)
        if method == "usergroups.list":
            for group in body["usergroups"]:
                group["users"] = []
        return body

    fake_api._default = no_members  # U0GROUPMOD was removed from @mods
    now[0] = 31.0
    await harness.click("chatmod_restore", 1, user=GROUP_MOD, message_ts=_card_ts(harness, 1))
    assert harness.store.cases[1].status == "open"
    assert [e.actor for e in harness.store.audit if e.action == "permission.denied"] == ["slack:U0GROUPMOD"]
