"""Signed requests: bolt's verification answers 401 to forged or stale requests before anything runs,
both through the AsyncApp and over HTTP through the mounted FastAPI route."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi import FastAPI

from bot.adapters.slack import EVENTS_PATH, SlackConfigError, build_slack_app, slack_router
from bot.adapters.slack.app import adapter_for
from bot.adapters.slack.webapi import Pacer, web_client
from moderation.domain import Action
from moderation.fakes import FakeScoreClient, FixedClock, MemoryStore
from moderation.service import ModerationService
from tests.slack.conftest import BOT_TOKEN, json_request, load, sign, slack_settings

FORGED = [
    ("wrong-secret", lambda body: sign(body, secret="not-the-signing-secret")),
    ("stale-6min", lambda body: sign(body, timestamp=int(time.time()) - 6 * 60)),
    ("future-6min", lambda body: sign(body, timestamp=int(time.time()) + 6 * 60)),
    ("missing", lambda body: {}),
    ("garbage", lambda body: {"x-slack-request-timestamp": "abc", "x-slack-signature": "v0=zz"}),
    (
        "v1-scheme",
        lambda body: {
            **sign(body),
            "x-slack-signature": sign(body)["x-slack-signature"].replace("v0=", "v1="),
        },
    ),
]


@pytest.mark.parametrize("forge", [f for _, f in FORGED], ids=[n for n, _ in FORGED])
async def test_forged_or_stale_signature_is_401_and_nothing_stored(harness, fake_api, forge):
    body = json.dumps(load("event_message"))
    resp = await harness.dispatch(body, {"content-type": "application/json", **forge(body)})
    await harness.adapter.tasks.drain()
    assert resp.status == 401
    assert harness.store.cases == {} and harness.store.audit == []
    assert harness.scorer.requests == []
    assert fake_api.calls == []  # not even auth.test: verification runs first


async def test_body_tampered_after_signing_is_401(harness):
    body = json.dumps(load("event_message"))
    headers = {"content-type": "application/json", **sign(body)}
    resp = await harness.dispatch(body.replace("idiot", "angel"), headers)
    assert resp.status == 401 and harness.store.cases == {}


async def test_signature_within_window_is_accepted(harness):
    body = json.dumps(load("event_message"))
    resp = await harness.dispatch(
        body, {"content-type": "application/json", **sign(body, timestamp=int(time.time()) - 240)}
    )
    await harness.adapter.tasks.drain()
    assert resp.status == 200 and len(harness.store.cases) == 1


async def test_url_verification_challenge(harness):
    resp = await harness.dispatch(*json_request(load("url_verification")))
    assert resp.status == 200
    assert json.loads(resp.body) == {"challenge": load("url_verification")["challenge"]}


def test_refuses_to_run_without_a_signing_secret():
    service = ModerationService(scorer=FakeScoreClient(), store=MemoryStore(), actions={}, clock=FixedClock())
    with pytest.raises(SlackConfigError, match="signing_secret"):
        build_slack_app(service, slack_settings(signing_secret=""))
    with pytest.raises(SlackConfigError, match="bot_token"):
        build_slack_app(service, slack_settings(bot_token=""))
    with pytest.raises(SlackConfigError, match="app-level token"):
        build_slack_app(service, slack_settings(socket_mode=True))


async def test_over_http_through_the_mounted_route(fake_api):
    store = MemoryStore()
    service = ModerationService(scorer=FakeScoreClient(), store=store, actions={}, clock=FixedClock())
    client = web_client(BOT_TOKEN, base_url=f"{fake_api.url}/api/")
    bolt_app = build_slack_app(service, slack_settings(), client, pacer=Pacer({}))
    api = FastAPI()
    api.include_router(slack_router(bolt_app))
    transport = httpx.ASGITransport(app=api)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://chatmod.test") as http:
            body = json.dumps(load("event_message"))
            forged = await http.post(
                EVENTS_PATH,
                content=body,
                headers={"content-type": "application/json", **sign(body, secret="x")},
            )
            assert forged.status_code == 401
            await adapter_for(bolt_app).tasks.drain()
            assert store.cases == {}

            ok = await http.post(
                EVENTS_PATH, content=body, headers={"content-type": "application/json", **sign(body)}
            )
            assert ok.status_code == 200
            retried = await http.post(
                EVENTS_PATH,
                content=body,
                headers={"content-type": "application/json", "x-slack-retry-num": "1", **sign(body)},
            )
            assert retried.status_code == 200
            await adapter_for(bolt_app).tasks.drain()
            assert [c.decision.action for c in store.cases.values()] == [Action.ESCALATE]
            assert len(fake_api.to("chat.postEphemeral")) == 1

            form = load("command_chatmod") | {"text": "help"}
            from urllib.parse import urlencode

            raw = urlencode(form)
            cmd = await http.post(
                EVENTS_PATH,
                content=raw,
                headers={"content-type": "application/x-www-form-urlencoded", **sign(raw)},
            )
            assert cmd.status_code == 200
            assert cmd.json()["response_type"] == "ephemeral" and "/chatmod queue" in cmd.json()["text"]
    finally:
        await adapter_for(bolt_app).close()
