"""The demo chat's visibility rules and its PlatformActions, with recording sockets."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bot.web.demo_actions import DemoActions
from bot.web.hub import OUTBOX, ChatHub, user_id_for
from moderation.domain import Action, Capabilities, Case, Decision, LabelHit, Member, MessageKey, Platform
from moderation.ports import Notice

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Socket:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_json(self, data: dict[str, Any]) -> None:
        self.sent.append(data)


def case_for(hub: ChatHub, msg_id: str, action: Action = Action.HOLD) -> Case:
    msg = hub.by_id[msg_id]
    decision = Decision(action, "over_review_threshold", hits=(LabelHit("insult", 0.9, "review", 0.8),))
    author = Member(Platform.DEMO, msg.author_id, msg.author_name)
    return Case(
        7, MessageKey(Platform.DEMO, msg.channel, msg.id, "h"), "demo", author, msg.text, decision, {}, NOW
    )


def setup() -> tuple[ChatHub, DemoActions, dict[str, Socket]]:
    hub = ChatHub()
    sockets = {name: Socket() for name in ("alice", "bob", "mod")}
    for name, ws in sockets.items():
        hub.join(name, ws)  # type: ignore[arg-type]
    hub.members["mod"].moderator = True
    return hub, DemoActions(hub), sockets


def test_names_become_safe_ids() -> None:
    assert user_id_for("Alice Smith") == "alice-smith"
    assert user_id_for("<script>") == "script"
    assert user_id_for("  ") == "guest"


async def test_held_message_is_hidden_from_others_and_shown_to_author_and_mods() -> None:
    hub, actions, ws = setup()
    msg = hub.new_message("general", hub.members["alice"], "you idiot", NOW)
    msg.state = "visible"
    await hub.publish(msg)
    await actions.hold(case_for(hub, msg.id))
    await hub.drain()
    alice, bob, mod = (ws[n].sent[-1]["message"] for n in ("alice", "bob", "mod"))
    assert alice["text"] == "you idiot" and alice["own"] and alice["appealable"] and "0.90" in alice["reason"]
    assert bob["state"] == "held" and bob["text"] is None and "reason" not in bob
    assert mod["text"] == "you idiot" and mod["case_id"] == 7
    await actions.restore(case_for(hub, msg.id))
    await hub.drain()
    assert ws["bob"].sent[-1]["message"]["text"] == "you idiot"


async def test_delete_removes_for_everyone_and_notice_goes_to_author_only() -> None:
    hub, actions, ws = setup()
    msg = hub.new_message("kids", hub.members["alice"], "bad words", NOW)
    msg.state = "visible"
    await hub.publish(msg)
    case = case_for(hub, msg.id, Action.DELETE)
    await actions.delete(case)
    await hub.drain()
    assert all(ws[n].sent[-1] == {"type": "remove", "id": msg.id} for n in ws)
    await actions.notify_member(case, Notice(7, Action.DELETE, "insult", "insults: over", "bad words"))
    await hub.drain()
    assert ws["alice"].sent[-1]["type"] == "notice" and ws["alice"].sent[-1]["text"] == "bad words"
    assert ws["bob"].sent[-1]["type"] == "remove"
    assert hub.history_for(hub.members["alice"])["kids"] == []


async def test_pending_message_is_published_once_with_its_final_state() -> None:
    hub, actions, ws = setup()
    msg = hub.new_message("general", hub.members["alice"], "held before anyone saw it", NOW)
    await actions.hold(case_for(hub, msg.id))
    await hub.drain()
    assert ws["bob"].sent == []  # nothing leaked while the decision was being made
    await hub.publish(msg)
    await hub.drain()
    assert ws["bob"].sent[-1]["message"]["text"] is None


async def test_timeout_mutes_the_member() -> None:
    hub, actions, ws = setup()
    msg = hub.new_message("general", hub.members["alice"], "x", NOW)
    await actions.timeout(case_for(hub, msg.id, Action.TIMEOUT), 60)
    await hub.drain()
    assert 55 < hub.members["alice"].muted_for(time.monotonic()) <= 60
    assert ws["alice"].sent[0]["kind"] == "timeout"
    assert actions.capabilities == Capabilities()


class StuckSocket(Socket):
    async def send_json(self, data: dict[str, Any]) -> None:
        await asyncio.Event().wait()  # never returns: a tab that stopped reading

    async def close(self, code: int = 1000) -> None:
        self.closed = code


async def test_a_stuck_tab_is_disconnected_and_does_not_stall_the_room() -> None:
    hub, _, ws = setup()
    stuck = StuckSocket()
    hub.join("dave", stuck)  # type: ignore[arg-type]
    for i in range(OUTBOX + 5):
        await hub.broadcast({"type": "tick", "i": i})
    await hub.drain()
    assert len(ws["bob"].sent) == OUTBOX + 5  # everyone else got every message
    assert stuck not in hub.members["dave"].sockets
    await asyncio.sleep(0)
    assert stuck.closed == 1013
