"""Web API limits and errors: Retry-After honoured by slack_sdk's retry handler, pacing per method and
channel, failures mapped to typed PlatformActionFailed (and audited by the service)."""

from __future__ import annotations

import pytest

from bot.adapters.slack.webapi import Bucket, Limit, Pacer, SlackApi, take, web_client
from moderation.errors import PlatformActionFailed
from tests.slack.conftest import BOT_TOKEN, MEMBER, REVIEW, make_harness


async def test_rate_limited_call_is_retried_after_retry_after(fake_api):
    fake_api.rate_limit("chat.postMessage", retry_after=0, times=1)
    api = SlackApi(web_client(BOT_TOKEN, base_url=f"{fake_api.url}/api/"), pacer=Pacer({}))
    resp = await api.call("escalate", "chat.postMessage", channel=REVIEW, text="hi")
    assert resp["ok"]
    assert len(fake_api.to("chat.postMessage")) == 2  # 429, then the retry


async def test_persistent_rate_limit_becomes_retryable_action_failure(fake_api):
    fake_api.rate_limit("chat.postMessage", retry_after=0, times=5)
    api = SlackApi(
        web_client(BOT_TOKEN, base_url=f"{fake_api.url}/api/", rate_limit_retries=1), pacer=Pacer({})
    )
    with pytest.raises(PlatformActionFailed) as info:
        await api.call("escalate", "chat.postMessage", channel=REVIEW, text="hi")
    assert info.value.status == 429 and info.value.retryable and info.value.action == "escalate"
    assert len(fake_api.to("chat.postMessage")) == 2


@pytest.mark.parametrize(
    ("error", "status", "retryable"),
    [
        ("cant_delete_message", 403, False),
        ("missing_scope", 403, False),
        ("not_in_channel", 403, False),
        ("message_not_found", 404, False),
        ("internal_error", 200, True),
        ("invalid_blocks", 200, False),
    ],
)
async def test_slack_errors_map_to_typed_failures(fake_api, error, status, retryable):
    fake_api.fail("chat.update", error)
    api = SlackApi(web_client(BOT_TOKEN, base_url=f"{fake_api.url}/api/"), pacer=Pacer({}))
    with pytest.raises(PlatformActionFailed) as info:
        await api.call("review", "chat.update", channel=REVIEW, ts="1.2", text="x")
    assert (info.value.status, info.value.retryable) == (status, retryable)
    assert error in str(info.value) and info.value.__cause__ is not None


async def test_unreachable_api_is_a_retryable_failure():
    api = SlackApi(web_client(BOT_TOKEN, base_url="http://127.0.0.1:9/api/", timeout=2), pacer=Pacer({}))
    with pytest.raises(PlatformActionFailed) as info:
        await api.call("escalate", "chat.postMessage", channel=REVIEW, text="hi")
    assert info.value.retryable


async def test_admin_token_without_permission_is_audited_and_alerted(fake_api):
    fake_api.fail("chat.delete", "cant_delete_message")
    h = await make_harness(fake_api, admin=True)
    try:
        await h.message()
        failed = [e for e in h.store.audit if e.action == "action.failed"]
        assert [(e.detail["action"], e.detail["status"]) for e in failed] == [("hold", 403)]
        alerts = [
            c for c in fake_api.to("chat.postMessage") if c["channel"] == REVIEW and "warning" in c["text"]
        ]
        assert len(alerts) == 1 and "cant_delete_message" in alerts[0]["text"]
        # the member is still told, moderators still get the card
        assert fake_api.to("chat.postEphemeral") and any(
            "blocks" in c.params for c in fake_api.to("chat.postMessage")
        )
    finally:
        await h.close()


async def test_rate_limited_notice_is_still_delivered(fake_api):
    fake_api.rate_limit("chat.postEphemeral", retry_after=0)
    h = await make_harness(fake_api)
    try:
        await h.message()
        assert len(fake_api.to("chat.postEphemeral")) == 2
        assert not [e for e in h.store.audit if e.action == "action.failed"]
        assert [c["user"] for c in fake_api.to("chat.postEphemeral")] == [MEMBER, MEMBER]
    finally:
        await h.close()


# ---------------------------------------------------------------------------------------- pacing


@pytest.mark.parametrize(
    ("bucket", "now", "expected_tokens", "expected_wait"),
    [
        (None, 0.0, 3.0, 0.0),  # fresh bucket: burst of 4, one taken
        (Bucket(0.0, 0.0), 0.0, -1.0, 1.0),  # empty: wait one refill interval (60/min → 1 s)
        (Bucket(0.0, 0.0), 0.5, -0.5, 0.5),  # half refilled
        (Bucket(-1.0, 0.0), 0.0, -2.0, 2.0),  # someone already queued: wait behind them
        (Bucket(2.0, 0.0), 100.0, 3.0, 0.0),  # refills up to the burst, not beyond
    ],
)
def test_token_bucket(bucket, now, expected_tokens, expected_wait):
    new, wait = take(bucket, Limit(60, 4), now)
    assert new.tokens == pytest.approx(expected_tokens)
    assert wait == pytest.approx(expected_wait)


async def test_pacer_spaces_calls_per_method_and_channel():
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    pacer = Pacer(
        {"chat.postMessage": Limit(60, 2, per_channel=True), "chat.update": Limit(30, 1)},
        clock=lambda: now[0],
        sleep=sleep,
    )
    for _ in range(3):
        await pacer.wait("chat.postMessage", "C1")
    await pacer.wait("chat.postMessage", "C2")  # another channel has its own bucket
    assert slept == [pytest.approx(1.0)]
    await pacer.wait("chat.update", "C1")
    await pacer.wait("chat.update", "C2")  # not per channel: shares the method's bucket
    assert slept[-1] == pytest.approx(2.0)
    await pacer.wait("users.list")  # unknown methods are not paced
    assert len(slept) == 2


async def test_bot_not_in_review_channel_reaches_admins_by_dm(fake_api):
    from tests.slack.conftest import ADMIN

    fake_api.fail("chat.postMessage", "not_in_channel", channel=REVIEW, times=2)
    h = await make_harness(fake_api)
    try:
        await h.message()
        to_admin = [c for c in fake_api.to("chat.postMessage") if c["channel"] == ADMIN]
        assert "chatmod_restore" in str(to_admin[0]["blocks"])  # the review card itself
        assert "not_in_channel" in to_admin[1]["text"]  # and why it came by DM
        failed = [e for e in h.store.audit if e.action == "action.failed"]
        assert [(e.detail["action"], e.detail["status"]) for e in failed] == [("escalate", 403)]
    finally:
        await h.close()
