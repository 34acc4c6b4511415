"""Socket Mode: the same app over a WebSocket (slack_sdk's aiohttp client against the local fake).
Envelopes carry no signature; the event is acknowledged by envelope id and moderated once."""

from __future__ import annotations

import asyncio

from moderation.domain import Action
from tests.slack.conftest import load, make_harness


async def test_socket_mode_event_is_acked_and_moderated_once(fake_api):
    h = await make_harness(fake_api, settings={"socket_mode": True, "app_token": "xapp-1-A0CHATMOD-1-secret"})
    serve = asyncio.create_task(h.adapter.start_socket_mode())
    try:
        await asyncio.wait_for(fake_api.socket_connected.wait(), 5)
        assert fake_api.to("apps.connections.open")[0].token == "xapp-1-A0CHATMOD-1-secret"
        envelope = {
            "envelope_id": "0b3f5c1e-5a2b-4c0e-9d7e-2f1a8b6c4d01",
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": load("event_message"),
        }
        await fake_api.socket_outbox.put(envelope)
        # Slack redelivers an unacknowledged envelope with a new envelope id and the same event
        await fake_api.socket_outbox.put(
            envelope | {"envelope_id": "9c1d", "retry_attempt": 1, "retry_reason": "timeout"}
        )
        for _ in range(200):
            if len(fake_api.socket_acks) >= 2 and h.store.cases:
                break
            await asyncio.sleep(0.01)
        await h.adapter.tasks.drain()
        assert [a["envelope_id"] for a in fake_api.socket_acks] == [
            "0b3f5c1e-5a2b-4c0e-9d7e-2f1a8b6c4d01",
            "9c1d",
        ]
        assert [c.decision.action for c in h.store.cases.values()] == [Action.ESCALATE]
        assert len(fake_api.to("chat.postEphemeral")) == 1
        assert not serve.done()  # serves until close()
    finally:
        await h.close()
        await asyncio.wait_for(serve, 5)
