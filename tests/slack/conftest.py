"""Slack test harness: recorded payloads, signed like Slack signs them, through the real AsyncApp,
with the Web API client pointed at a local fake (port 0)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.adapters.slack.app import SlackAdapter
from bot.adapters.slack.webapi import Pacer, web_client
from bot.settings import SlackSettings
from moderation.domain import Platform
from moderation.fakes import FakeScoreClient, FixedClock, MemoryStore
from moderation.policy import ServerPolicy
from moderation.service import ModerationService
from tests.slack.fake_slack import TEAM, FakeSlackApi

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-1111-2222-chatmodtest"
ADMIN_TOKEN = "xoxp-1111-3333-workspaceadmin"
REVIEW = "C0REVIEW"
MOD, ADMIN, MEMBER = "U0MOD", "U0ADMIN", "U0MEMBER"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature, computed independently of slack_sdk: HMAC-SHA256 of ``v0:{ts}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": ts, "x-slack-signature": f"v0={digest}"}


def json_request(payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
    body = json.dumps(payload)
    return body, {"content-type": "application/json", **sign(body)}


def form_request(fields: dict[str, Any]) -> tuple[str, dict[str, str]]:
    body = urlencode(fields)
    return body, {"content-type": "application/x-www-form-urlencoded", **sign(body)}


def interaction_request(payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
    return form_request({"payload": json.dumps(payload)})


@dataclass
class Harness:
    fake: FakeSlackApi
    store: MemoryStore
    scorer: FakeScoreClient
    service: ModerationService
    adapter: SlackAdapter

    @property
    def app(self):
        return self.adapter.app

    async def dispatch(self, body: str, headers: dict[str, str]) -> BoltResponse:
        return await self.app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))

    async def message(
        self,
        text: str | None = None,
        *,
        event_id: str = "Ev0MSG0001",
        ts: str | None = None,
        user: str = MEMBER,
        retry: int | None = None,
        drain: bool = True,
    ) -> BoltResponse:
        payload = load("event_message")
        payload["event_id"] = event_id
        if text is not None:
            payload["event"]["text"] = text
        if ts is not None:
            payload["event"]["ts"] = payload["event"]["event_ts"] = ts
        payload["event"]["user"] = user
        body, headers = json_request(payload)
        if retry is not None:
            headers |= {"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"}
        resp = await self.dispatch(body, headers)
        if drain:
            await self.adapter.tasks.drain()
        return resp

    async def event(self, payload: dict[str, Any]) -> BoltResponse:
        resp = await self.dispatch(*json_request(payload))
        await self.adapter.tasks.drain()
        return resp

    async def command(self, text: str, *, user: str = MOD, channel: str = REVIEW) -> BoltResponse:
        fields = load("command_chatmod")
        fields.update(text=text, user_id=user, channel_id=channel, response_url=f"{self.fake.url}/response/1")
        resp = await self.dispatch(*form_request(fields))
        await self.adapter.tasks.drain()
        return resp

    async def click(
        self,
        action_id: str,
        case_id: int,
        *,
        user: str = MOD,
        fixture: str = "block_actions_review",
        message_ts: str | None = None,
    ) -> BoltResponse:
        payload = copy.deepcopy(load(fixture))
        payload["user"]["id"] = user
        payload["actions"][0]["action_id"] = action_id
        payload["actions"][0]["value"] = str(case_id)
        payload["response_url"] = f"{self.fake.url}/response/2"
        if message_ts is not None:
            payload["container"]["message_ts"] = payload["message"]["ts"] = message_ts
        resp = await self.dispatch(*interaction_request(payload))
        await self.adapter.tasks.drain()
        return resp

    async def close(self) -> None:
        await self.adapter.close()


@pytest.fixture
async def fake_api():
    fake = FakeSlackApi()
    await fake.start()
    yield fake
    await fake.stop()


def slack_settings(*, admin: bool = False, **overrides: Any) -> SlackSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "bot_token": BOT_TOKEN,
        "signing_secret": SECRET,
        "admin_user_token": ADMIN_TOKEN if admin else "",
        "moderator_user_ids": [MOD],
        "moderator_usergroup": "mods",
        "admin_user_ids": [ADMIN],
    }
    values.update(overrides)
    return SlackSettings(**values)


async def make_harness(
    fake: FakeSlackApi,
    *,
    admin: bool = False,
    store: Any = None,
    policy: ServerPolicy | None = None,
    pacer: Pacer | None = None,
    settings: dict[str, Any] | None = None,
    **adapter_options: Any,
) -> Harness:
    store = store if store is not None else MemoryStore()
    await store.save_policy(Platform.SLACK, policy or ServerPolicy(TEAM, review_channel_id=REVIEW))
    scorer = FakeScoreClient()
    service = ModerationService(scorer=scorer, store=store, actions={}, clock=FixedClock())
    base = f"{fake.url}/api/"
    adapter = SlackAdapter(
        service,
        slack_settings(admin=admin, **(settings or {})),
        client=web_client(BOT_TOKEN, base_url=base, rate_limit_retries=2),
        admin_client=web_client(ADMIN_TOKEN, base_url=base) if admin else None,
        pacer=pacer or Pacer({}),
        **adapter_options,
    )
    return Harness(fake, store, scorer, service, adapter)


@pytest.fixture
async def harness(fake_api):
    h = await make_harness(fake_api)
    yield h
    await h.close()


@pytest.fixture
async def admin_harness(fake_api):
    h = await make_harness(fake_api, admin=True)
    yield h
    await h.close()
