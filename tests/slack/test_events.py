"""Message events through the real AsyncApp: the right Web API calls for each capability set,
redeliveries, edits, bots, and the ack-before-work contract."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from moderation.domain import Action, Platform
from moderation.policy import LadderStep, ServerPolicy, StrikeLadder
from tests.slack.conftest import ADMIN_TOKEN, BOT_TOKEN, MEMBER, REVIEW, load, make_harness
from tests.slack.fake_slack import TEAM


def _case(h):
    assert len(h.store.cases) == 1, h.store.cases
    return next(iter(h.store.cases.values()))


@pytest.mark.parametrize(
    ("admin", "auto", "text", "action", "degraded_from", "removed"),
    [
        # bot token only: Slack cannot remove a member's message → escalate + notice, recorded
        (False, False, None, Action.ESCALATE, Action.HOLD, False),
        (False, True, "fuck you idiot", Action.ESCALATE, Action.DELETE, False),
        # with a workspace admin's user token: hold/delete remove the message (kept for review)
        (True, False, None, Action.HOLD, None, True),
        (True, True, "fuck you idiot", Action.DELETE, None, True),
    ],
    ids=["bot-only-review-first", "bot-only-auto", "admin-review-first", "admin-auto"],
)
async def test_toxic_message_calls_per_capability_set(
    fake_api, admin, auto, text, action, degraded_from, removed
):
    policy = ServerPolicy(TEAM, review_channel_id=REVIEW, auto_action=auto)
    h = await make_harness(fake_api, admin=admin, policy=policy)
    try:
        resp = await h.message(text)
        assert resp.status == 200
        case = _case(h)
        assert case.decision.action is action
        assert case.decision.degraded_from is degraded_from
        assert case.text and "idiot" in case.text  # kept for review either way

        deletes = fake_api.to("chat.delete")
        if removed:
            assert [(c["channel"], c["ts"], c.token) for c in deletes] == [
                ("C0GENERAL", "1763778000.000100", ADMIN_TOKEN)
            ]
        else:
            assert deletes == []

        # the review card in the review channel, then updated with the words that drove the score
        cards = [c for c in fake_api.to("chat.postMessage") if c["channel"] == REVIEW]
        assert len(cards) == 1 and cards[0].token == BOT_TOKEN
        buttons = [
            e["action_id"] for b in cards[0]["blocks"] if b["type"] == "actions" for e in b["elements"]
        ]
        assert buttons == ["chatmod_restore", "chatmod_delete", "chatmod_dismiss"]
        card_text = str(cards[0]["blocks"])
        assert "fake-1" in card_text and "review ≥0.80 act ≥0.95" in card_text
        assert ("cannot remove members' messages" in card_text) is (not admin)
        updates = fake_api.to("chat.update")
        assert len(updates) == 1 and "`idiot`" in str(updates[0]["blocks"])

        # the member is told privately (ephemeral + DM); the appeal button only when something was done
        ephemeral = fake_api.to("chat.postEphemeral")
        assert [(c["channel"], c["user"]) for c in ephemeral] == [("C0GENERAL", MEMBER)]
        dms = [c for c in fake_api.to("chat.postMessage") if c["channel"] == MEMBER]
        assert len(dms) == 1
        has_appeal = "chatmod_appeal" in str(ephemeral[0]["blocks"])
        assert has_appeal is removed
        assert "you are an idiot" in str(ephemeral[0]["blocks"]) or "fuck you idiot" in str(
            ephemeral[0]["blocks"]
        )
        # Slack has no timeout API at all: nothing like it is ever called
        assert not any("timeout" in m or "admin." in m for m in fake_api.methods())
    finally:
        await h.close()


async def test_clean_message_is_allowed_with_no_calls(harness, fake_api):
    await harness.message("see you all at the standup tomorrow")
    assert _case(harness).decision.action is Action.ALLOW
    assert fake_api.methods() == []


async def test_strike_ladder_timeout_degrades_on_slack(fake_api):
    """3 strikes → timeout elsewhere; Slack has no timeout: remove + escalate (admin token) and record it."""
    policy = ServerPolicy(
        TEAM,
        review_channel_id=REVIEW,
        auto_action=True,
        ladder=StrikeLadder(steps=(LadderStep(2, Action.TIMEOUT, 600),)),
    )
    for admin, expected in ((True, Action.DELETE), (False, Action.ESCALATE)):
        fake_api.calls.clear()
        h = await make_harness(fake_api, admin=admin, policy=policy)
        try:
            await h.message("fuck off", event_id="Ev1", ts="1763778000.000001")
            await h.message("fuck off again", event_id="Ev2", ts="1763778000.000002")
            second = h.store.cases[2]
            assert second.decision.reason == "strike_ladder"
            assert second.decision.action is expected
            assert second.decision.degraded_from is Action.TIMEOUT
            assert second.decision.timeout_seconds == 0
            assert len(fake_api.to("chat.delete")) == (2 if admin else 0)
        finally:
            await h.close()


async def test_retried_delivery_produces_one_action(admin_harness, fake_api):
    first = await admin_harness.message()
    again = await admin_harness.message(retry=1)
    third = await admin_harness.message(retry=2)
    assert first.status == again.status == third.status == 200
    assert len(admin_harness.store.cases) == 1
    assert len(fake_api.to("chat.delete")) == 1
    assert len(fake_api.to("chat.postEphemeral")) == 1
    assert admin_harness.scorer.requests == ["you are an idiot @U0OTHER"]


async def test_redelivery_after_restart_is_still_one_action(fake_api):
    """The event-id memory is per process; the service's per-version idempotency covers a restart."""
    first = await make_harness(fake_api, admin=True)
    await first.message()
    await first.close()
    second = await make_harness(fake_api, admin=True, store=first.store)
    try:
        await second.message(retry=1)  # a fresh RecentIds: the event id is new to this process
        assert len(second.store.cases) == 1
        assert len(fake_api.to("chat.delete")) == 1
        assert len(fake_api.to("chat.postEphemeral")) == 1
    finally:
        await second.close()


async def test_duplicate_event_id_without_retry_header_is_dropped(harness, fake_api):
    await harness.message(drain=False)
    await harness.message(drain=False)
    await harness.adapter.tasks.drain()
    assert len(harness.store.cases) == 1
    assert harness.scorer.requests == ["you are an idiot @U0OTHER"]


async def test_message_changed_is_rescored(admin_harness, fake_api):
    payload = load("event_message_changed")
    original = replace_event(payload)
    await admin_harness.event(original)  # "see you all tomorrow": clean
    assert [c.decision.action for c in admin_harness.store.cases.values()] == [Action.ALLOW]

    await admin_harness.event(payload)  # edited to "see you all tomorrow, you moron"
    cases = list(admin_harness.store.cases.values())
    assert [c.decision.action for c in cases] == [Action.ALLOW, Action.HOLD]
    assert cases[1].key.message_id == cases[0].key.message_id == "1763778030.000200"
    assert cases[1].text == "see you all tomorrow, you moron"
    assert admin_harness.scorer.requests == ["see you all tomorrow", "see you all tomorrow, you moron"]
    assert [c["ts"] for c in fake_api.to("chat.delete")] == ["1763778030.000200"]


async def test_edit_of_punished_message_is_not_punished_twice(fake_api):
    policy = ServerPolicy(TEAM, review_channel_id=REVIEW, auto_action=True)
    h = await make_harness(fake_api, admin=True, policy=policy)
    try:
        await h.message("fuck you", ts="1763778030.000200", event_id="Ev0")
        edit = load("event_message_changed")
        edit["event"]["message"]["text"] = "fuck you, idiot"
        await h.event(edit)
        first, second = h.store.cases.values()
        assert first.decision.strike and not second.decision.strike
        assert second.decision.reason.endswith("+edit")
        assert len([s for s in h.store.strikes if not s.reversed]) == 1
    finally:
        await h.close()


def replace_event(payload):
    """The original (pre-edit) message of a message_changed fixture as its own message event."""
    prev = payload["event"]["previous_message"]
    return {
        **payload,
        "event_id": "Ev0ORIG0001",
        "event": {**prev, "channel": "C0GENERAL", "event_ts": prev["ts"], "channel_type": "channel"},
    }


async def test_bot_and_own_messages_are_not_scored(harness, fake_api):
    await harness.event(load("event_bot_message"))
    await harness.event(load("event_own_message"))
    assert harness.scorer.requests == []
    assert harness.store.cases == {}
    assert fake_api.methods() == []


async def test_housekeeping_subtypes_are_ignored(harness):
    payload = load("event_message")
    payload["event"] |= {"subtype": "channel_join", "text": "<@U0MEMBER> has joined the channel, idiot"}
    await harness.event(payload)
    assert harness.scorer.requests == []


async def test_ack_is_sent_before_the_work(harness, fake_api):
    gate = asyncio.Event()
    real_score = harness.scorer.score

    async def slow_score(text, *, timeout=None):
        await gate.wait()
        return await real_score(text, timeout=timeout)

    harness.scorer.score = slow_score  # type: ignore[method-assign]
    resp = await asyncio.wait_for(harness.message(drain=False), timeout=2)
    assert resp.status == 200
    assert harness.store.cases == {} and fake_api.methods() == []  # acknowledged, nothing done yet
    gate.set()
    await harness.adapter.tasks.drain()
    assert _case(harness).decision.action is Action.ESCALATE
    assert fake_api.to("chat.postMessage")


async def test_overload_refuses_with_503_and_the_retry_is_handled(fake_api):
    h = await make_harness(fake_api, max_pending=1)
    gate = asyncio.Event()
    real_score = h.scorer.score

    async def slow_score(text, *, timeout=None):
        await gate.wait()
        return await real_score(text, timeout=timeout)

    h.scorer.score = slow_score  # type: ignore[method-assign]
    try:
        assert (await h.message(event_id="EvA", ts="1.1", drain=False)).status == 200
        refused = await h.message(event_id="EvB", ts="1.2", drain=False)
        assert refused.status == 503
        gate.set()
        await h.adapter.tasks.drain()
        retried = await h.message(event_id="EvB", ts="1.2", retry=1)
        assert retried.status == 200
        assert sorted(c.key.message_id for c in h.store.cases.values()) == ["1.1", "1.2"]
    finally:
        await h.close()


async def test_exempt_usergroup_is_not_scored(harness):
    """Slack user groups are the exemptable "roles" (U0MEMBER is in S0DESIGN in the fake)."""
    policy = await harness.store.get_policy(Platform.SLACK, TEAM)
    await harness.store.save_policy(Platform.SLACK, replace(policy, exempt_role_ids=frozenset({"S0DESIGN"})))
    await harness.message()
    assert harness.scorer.requests == []
