"""The demo chat's state: members (one per browser tab), channels, messages, and who sees what.

Visibility rules (the demo's "platform"): a held message is hidden from others (they see a greyed
placeholder) while its author sees their text with the reason and an Appeal button; a deleted message
vanishes for everyone and its author gets a notice; a timed-out member cannot post until the timeout
ends. Moderators see held texts greyed, and get the review and appeal queues pushed to them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import WebSocket

from moderation.domain import Member, Platform, Role

log = logging.getLogger(__name__)

DEMO_SERVER = "demo"
HISTORY = 200
#: Payloads queued per browser tab before it counts as stuck.
OUTBOX = 256


async def _close(ws: WebSocket) -> None:
    try:
        await ws.close(code=1013)  # try again later
    except Exception:
        log.debug("closing a stuck demo socket failed", exc_info=True)


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    topic: str


DEFAULT_CHANNELS = (
    Channel("general", "review-first: anything over a threshold is held for a moderator"),
    Channel("kids", "strict: low thresholds, automatic delete"),
    Channel("random", "unconfigured: uses the server defaults"),
)


def user_id_for(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.strip().lower()).strip("-")
    return slug[:32] or "guest"


@dataclass
class ChatMessage:
    id: str
    channel: str
    author_id: str
    author_name: str
    text: str
    at: datetime
    state: str = "pending"  # pending | visible | held | deleted
    case_id: int | None = None
    reason: str = ""
    appealed: bool = False
    announced: bool = False


@dataclass
class DemoMember:
    user_id: str
    name: str
    moderator: bool = False
    sockets: set[WebSocket] = field(default_factory=set)
    muted_until: float = 0.0

    def member(self) -> Member:
        roles = {Role.MEMBER}
        if self.moderator:
            roles |= {Role.MODERATOR, Role.ADMIN}
        return Member(Platform.DEMO, self.user_id, display_name=self.name, roles=frozenset(roles))

    def muted_for(self, now: float | None = None) -> float:
        return max(0.0, self.muted_until - (now if now is not None else time.monotonic()))


class ChatHub:
    """In-memory chat room. Not persisted: the moderation record (cases, audit) is, in the store."""

    def __init__(self, channels: tuple[Channel, ...] = DEFAULT_CHANNELS) -> None:
        self.channels = {c.id: c for c in channels}
        self.members: dict[str, DemoMember] = {}
        self.messages: dict[str, deque[ChatMessage]] = {c.id: deque(maxlen=HISTORY) for c in channels}
        self.by_id: dict[str, ChatMessage] = {}
        self._ids = itertools.count(1)
        self._outboxes: dict[WebSocket, asyncio.Queue[dict[str, Any]]] = {}
        self._writers: dict[WebSocket, asyncio.Task[None]] = {}
        #: Called (no arguments) when the review/appeal queues may have changed; set by the demo router.
        self.on_queue_change: Callable[[], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ members

    def join(self, name: str, ws: WebSocket) -> DemoMember:
        uid = user_id_for(name)
        m = self.members.get(uid)
        if m is None:
            m = self.members[uid] = DemoMember(uid, name.strip()[:32] or uid)
        m.sockets.add(ws)
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX)
        self._outboxes[ws] = outbox
        self._writers[ws] = asyncio.get_running_loop().create_task(self._write(m, ws, outbox))
        return m

    def leave(self, member: DemoMember, ws: WebSocket) -> None:
        member.sockets.discard(ws)
        self._outboxes.pop(ws, None)
        writer = self._writers.pop(ws, None)
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()

    async def _write(self, member: DemoMember, ws: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> None:
        """One writer per socket: a slow or stuck tab delays only itself, never the room."""
        while True:
            payload = await outbox.get()
            try:
                await ws.send_json(payload)
            except Exception:  # a closed tab: drop the socket, keep the member
                self.leave(member, ws)
                return
            finally:
                outbox.task_done()

    async def drain(self) -> None:
        """Wait until every queued payload has been written (tests, shutdown)."""
        await asyncio.gather(*(q.join() for q in list(self._outboxes.values())))

    def online(self) -> list[dict[str, Any]]:
        return [
            {"id": m.user_id, "name": m.name, "moderator": m.moderator, "muted": m.muted_for() > 0}
            for m in self.members.values()
            if m.sockets
        ]

    # ------------------------------------------------------------------ messages

    def new_message(self, channel: str, author: DemoMember, text: str, at: datetime) -> ChatMessage:
        msg = ChatMessage(f"m{next(self._ids)}", channel, author.user_id, author.name, text, at)
        self.messages[channel].append(msg)
        self.by_id[msg.id] = msg
        if len(self.by_id) > HISTORY * len(self.channels) * 2:
            live = {m.id for q in self.messages.values() for m in q}
            self.by_id = {k: v for k, v in self.by_id.items() if k in live}
        return msg

    def view(self, msg: ChatMessage, viewer: DemoMember) -> dict[str, Any] | None:
        """What ``viewer`` sees of ``msg`` (None: nothing). Text goes out as data, rendered as text."""
        if msg.state in ("deleted", "pending"):
            return None
        base: dict[str, Any] = {
            "id": msg.id,
            "channel": msg.channel,
            "author": msg.author_name,
            "author_id": msg.author_id,
            "at": msg.at.isoformat(),
            "state": msg.state,
        }
        if msg.state == "visible":
            return {**base, "text": msg.text}
        own = msg.author_id == viewer.user_id
        if own:
            return {
                **base,
                "text": msg.text,
                "reason": msg.reason,
                "case_id": msg.case_id,
                "appealable": not msg.appealed,
                "appealed": msg.appealed,
                "own": True,
            }
        if viewer.moderator:
            return {**base, "text": msg.text, "case_id": msg.case_id, "reason": msg.reason}
        return {**base, "text": None}

    def history_for(self, viewer: DemoMember) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for cid, q in self.messages.items():
            out[cid] = [v for m in q if (v := self.view(m, viewer)) is not None]
        return out

    # ------------------------------------------------------------------ delivery

    async def send_to(self, member: DemoMember, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for each of the member's tabs; a tab that fell ``OUTBOX`` messages
        behind is disconnected (it reloads and gets the current state) rather than stalling others."""
        for ws in list(member.sockets):
            outbox = self._outboxes.get(ws)
            if outbox is None:
                continue
            try:
                outbox.put_nowait(payload)
            except asyncio.QueueFull:
                log.warning("demo tab of %s is %d messages behind: disconnecting it", member.user_id, OUTBOX)
                self.leave(member, ws)
                asyncio.get_running_loop().create_task(_close(ws))

    def send_socket(self, ws: WebSocket, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for one tab only (e.g. its hello), in order with everything else."""
        outbox = self._outboxes.get(ws)
        if outbox is not None:
            outbox.put_nowait(payload)

    async def publish(self, msg: ChatMessage) -> None:
        """Push ``msg``'s current state to everyone, each seeing their own view."""
        if msg.state == "pending":
            return
        msg.announced = True
        sends = []
        for m in self.members.values():
            if not m.sockets:
                continue
            view = self.view(msg, m)
            payload = {"type": "message", "message": view} if view else {"type": "remove", "id": msg.id}
            sends.append(self.send_to(m, payload))
        await asyncio.gather(*sends)

    async def broadcast(self, payload: dict[str, Any]) -> None:
        await asyncio.gather(*(self.send_to(m, payload) for m in self.members.values() if m.sockets))

    async def to_moderators(self, payload: dict[str, Any]) -> None:
        await asyncio.gather(
            *(self.send_to(m, payload) for m in self.members.values() if m.moderator and m.sockets)
        )

    async def queue_changed(self) -> None:
        if self.on_queue_change is not None:
            await self.on_queue_change()

    def find(self, channel: str, message_id: str) -> ChatMessage | None:
        msg = self.by_id.get(message_id)
        return msg if msg is not None and msg.channel == channel else None
