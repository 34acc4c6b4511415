"""``/chatmod`` through the real AsyncApp (signed form bodies), and appeals via button + modal."""

from __future__ import annotations

import asyncio
import copy
import json

from moderation.domain import AppealStatus, Platform, Verdict
from moderation.policy import Tiers
from tests.slack.conftest import ADMIN, MEMBER, MOD, REVIEW, interaction_request, load, make_harness
from tests.slack.fake_slack import GROUP_MOD, TEAM


def reply(resp) -> str:
    assert resp.status == 200
    body = json.loads(resp.body)
    assert body["response_type"] == "ephemeral"
    return body["text"]


async def test_queue_for_moderators_only(harness):
    await harness.message()
    text = reply(await harness.command("queue", user=MOD))
    assert "#1" in text and "escalate" in text and "<@U0MEMBER>" in text
    assert "#1" in reply(await harness.command("queue", user=GROUP_MOD))

    refused = reply(await harness.command("queue", user=MEMBER))
    assert "moderator" in refused and "#1" not in refused
    denied = [e for e in harness.store.audit if e.action == "permission.denied"]
    assert [(e.actor, e.subject) for e in denied] == [("slack:U0MEMBER", "queue")]


async def test_case_and_history(harness):
    await harness.message()
    text = reply(await harness.command("case 1"))
    assert "wanted hold" in text and "fake-1" in text and "toxic 0.91" in text
    history = reply(await harness.command("history <@U0MEMBER|sam>"))
    assert "0 live strike(s), 1 case(s)" in history


async def test_config_by_admin_changes_policy_and_is_audited(harness):
    text = reply(await harness.command("config threshold toxic 0.5 0.9 <#C0GENERAL|general>", user=ADMIN))
    assert "review at 0.5" in text
    policy = await harness.store.get_policy(Platform.SLACK, TEAM)
    assert policy.channels["C0GENERAL"].thresholds["toxic"] == Tiers(0.5, 0.9)
    reply(await harness.command("config review-channel <#C0NEWREV|mod-new>", user=ADMIN))
    reply(await harness.command("config auto on", user=ADMIN))
    reply(await harness.command("config exempt role <!subteam^S0DESIGN|@design> on", user=ADMIN))
    reply(await harness.command("config allow-term git gud", user=ADMIN))
    reply(await harness.command("config ladder 3 30 10", user=ADMIN))
    one_tier = reply(
        await harness.command("config threshold toxic act_at 0.97 <#C0GENERAL|general>", user=ADMIN)
    )
    assert "review at 0.50, act at 0.97" in one_tier  # the other tier kept
    shown = reply(await harness.command("config show", user=ADMIN))
    assert "<#C0NEWREV>" in shown and "git gud" in shown and "<!subteam^S0DESIGN>" in shown
    assert "You need the *admin* role" in reply(await harness.command("config show", user=MOD))
    policy = await harness.store.get_policy(Platform.SLACK, TEAM)
    assert policy.review_channel_id == "C0NEWREV" and policy.auto_action
    assert policy.exempt_role_ids == {"S0DESIGN"} and policy.allow_terms == ("git gud",)
    assert policy.ladder.steps[0].strikes == 3
    assert [e.action for e in harness.store.audit] == [
        "policy.threshold",
        "policy.review_channel",
        "policy.auto",
        "policy.exempt",
        "policy.allow_term",
        "policy.ladder",
        "policy.threshold",
        "permission.denied",
    ]


async def test_config_by_moderator_is_refused_and_audited(harness):
    text = reply(await harness.command("config auto on", user=MOD))
    assert "admin" in text
    assert not (await harness.store.get_policy(Platform.SLACK, TEAM)).auto_action
    assert [(e.action, e.actor) for e in harness.store.audit] == [("permission.denied", "slack:U0MOD")]


async def test_bad_input_gets_usage(harness):
    assert "unknown subcommand" in reply(await harness.command("frobnicate"))
    assert "no member timeout" in reply(await harness.command("override 1 timeout"))
    assert "must be a number" in reply(await harness.command("case one"))
    assert "act_at" in reply(await harness.command("config threshold toxic 0.9 0.5", user=ADMIN))
    assert "not found" in reply(await harness.command("case 42"))


async def test_override_and_appeal_cycle(fake_api):
    h = await make_harness(fake_api, admin=True)
    try:
        await h.message()
        assert "Case #1: *dismiss*" in reply(await h.command("override 1 dismiss false positive"))
        assert h.store.overrides[-1].note == "false positive"

        await h.message("you moron", event_id="Ev2", ts="1763778000.000200")
        assert "Appeal #1 on case #2" in reply(await h.command("appeal 2 it was a quote", user=MEMBER))
        assert "Only the author" in reply(await h.command("appeal 2 me too", user=MOD))
        assert "already has appeal" in reply(await h.command("appeal 2 again", user=MEMBER))
        assert "it was a quote" in reply(await h.command("appeal list"))
        fake_api.calls.clear()
        assert "granted" in reply(await h.command("decide-appeal 1 grant sorry about that"))
        appeal = h.store.appeals[1]
        assert appeal.status is AppealStatus.DECIDED and h.store.cases[2].verdict is Verdict.RESTORE
        assert [c["channel"] for c in fake_api.to("chat.postMessage")] == ["C0GENERAL", MEMBER]
        assert "granted" in fake_api.to("chat.postMessage")[-1]["text"]
    finally:
        await h.close()


async def test_slow_command_acks_then_replies_through_response_url(fake_api):
    h = await make_harness(fake_api, inline_reply_s=0.05)
    real = h.service.review_queue

    async def slow_queue(*args, **kwargs):
        await asyncio.sleep(0.3)
        return await real(*args, **kwargs)

    h.service.review_queue = slow_queue  # type: ignore[method-assign]
    try:
        resp = await h.command("queue")
        assert reply(resp) == "Working on it…"
        assert fake_api.responses == [{"response_type": "ephemeral", "text": "The review queue is empty."}]
    finally:
        await h.close()


async def test_appeal_button_opens_modal_and_submission_creates_appeal(admin_harness, fake_api):
    h = admin_harness
    await h.message()
    await h.click("chatmod_appeal", 1, user=MEMBER, fixture="block_actions_appeal")
    opened = fake_api.to("views.open")
    assert len(opened) == 1
    assert opened[0]["trigger_id"] == load("block_actions_appeal")["trigger_id"]
    assert opened[0]["view"]["private_metadata"] == "1"

    resp = await h.dispatch(*interaction_request(load("view_submission_appeal")))
    await h.adapter.tasks.drain()
    assert resp.status == 200 and not resp.body  # empty ack closes the modal
    appeal = h.store.appeals[1]
    assert appeal.member.user_id == MEMBER and "quote from a film" in appeal.text
    assert "Appeal #1 on case #1 submitted" in fake_api.to("chat.postMessage")[-1]["text"]


async def test_appeal_by_someone_else_is_refused_in_the_modal(admin_harness):
    h = admin_harness
    await h.message()
    payload = copy.deepcopy(load("view_submission_appeal"))
    payload["user"]["id"] = "U0STRANGER"
    resp = await h.dispatch(*interaction_request(payload))
    body = json.loads(resp.body)
    assert body["response_action"] == "errors" and "author" in body["errors"]["appeal_text"]
    assert h.store.appeals == {}
    assert [e.action for e in h.store.audit if e.actor == "slack:U0STRANGER"] == ["appeal.denied"]


async def test_review_channel_unset_falls_back_to_admin_dms(fake_api):
    from moderation.policy import ServerPolicy

    h = await make_harness(fake_api, policy=ServerPolicy(TEAM))
    try:
        await h.message()
        cards = [c for c in fake_api.to("chat.postMessage") if "chatmod_restore" in str(c.get("blocks"))]
        assert [c["channel"] for c in cards] == [ADMIN]
        assert REVIEW not in [c["channel"] for c in fake_api.to("chat.postMessage")]
    finally:
        await h.close()


async def test_slow_appeal_submission_closes_modal_and_confirms_by_dm(fake_api):
    h = await make_harness(fake_api, admin=True, inline_reply_s=0.05)
    real = h.service.submit_appeal

    async def slow_submit(*args, **kwargs):
        await asyncio.sleep(0.3)
        return await real(*args, **kwargs)

    h.service.submit_appeal = slow_submit  # type: ignore[method-assign]
    try:
        await h.message()
        resp = await h.dispatch(*interaction_request(load("view_submission_appeal")))
        assert resp.status == 200 and not resp.body  # modal closed within the budget
        await h.adapter.tasks.drain()
        assert h.store.appeals[1].case_id == 1
        assert "Appeal #1 on case #1 submitted" in fake_api.to("chat.postMessage")[-1]["text"]
    finally:
        await h.close()
