"""A local fake of the Slack Web API (aiohttp on port 0) that records every call.

Shaped after bolt-python's ``tests/mock_web_api_server``: answers the methods chatmod uses with
realistic bodies, and can be scripted to answer an error or HTTP 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TEAM = "T0CHATMOD"
BOT_USER = "U0CHATBOT"
BOT_ID = "B0CHATBOT"
MOD_GROUP = "S0MODS"
GROUP_MOD = "U0GROUPMOD"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


@dataclass
class Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    channel: str | None = None  # only for calls to this channel


class FakeSlackApi:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []  # what was POSTed to response_url
        self._script: dict[str, deque[Scripted]] = defaultdict(deque)
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        # Socket Mode: envelopes to push over the WebSocket, and the acks that came back
        self.socket_outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connected = asyncio.Event()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/response/{rid}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ scripting & queries

    def fail(
        self, method: str, error: str, *, status: int = 200, times: int = 1, channel: str | None = None
    ) -> None:
        for _ in range(times):
            self._script[method].append(Scripted(status, {"ok": False, "error": error}, channel=channel))

    def rate_limit(self, method: str, *, retry_after: int = 0, times: int = 1) -> None:
        for _ in range(times):
            self._script[method].append(
                Scripted(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})
            )

    def to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        """Calls in order, without the bookkeeping ones (auth.test, usergroups.list)."""
        return [c.method for c in self.calls if c.method not in ("auth.test", "usergroups.list")]

    # ------------------------------------------------------------------ handlers

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        for key in ("blocks", "view"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        auth = request.headers.get("Authorization", "")
        self.calls.append(Call(method, params, auth.removeprefix("Bearer ") or None))
        for scripted in self._script[method]:
            if scripted.channel in (None, params.get("channel")):
                self._script[method].remove(scripted)
                return web.json_response(scripted.body, status=scripted.status, headers=scripted.headers)
        return web.json_response(self._default(method, params))

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0CHATMOD"}}
        )
        self.socket_connected.set()

        async def pump() -> None:
            while True:
                await ws.send_json(await self.socket_outbox.get())

        sender = asyncio.ensure_future(pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(msg.data))
        finally:
            sender.cancel()
        return ws

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    def _default(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        ts = f"1763779{next(self._ts):03d}.000100"
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://chatmod-test.slack.com/",
                "team": "Chatmod Test",
                "user": "chatmod",
                "team_id": TEAM,
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method == "usergroups.list":
            return {
                "ok": True,
                "usergroups": [
                    {
                        "id": MOD_GROUP,
                        "team_id": TEAM,
                        "handle": "mods",
                        "name": "Moderators",
                        "users": [GROUP_MOD],
                    },
                    {
                        "id": "S0DESIGN",
                        "team_id": TEAM,
                        "handle": "design",
                        "name": "Design",
                        "users": ["U0MEMBER"],
                    },
                ],
            }
        if method == "chat.postMessage":
            channel = p.get("channel", "")
            if channel.startswith("U"):  # a DM to a user id lands in the app's DM channel
                channel = "D" + channel[1:]
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": p.get("text"), "ts": ts}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method in ("chat.update", "chat.delete"):
            return {"ok": True, "channel": p.get("channel"), "ts": p.get("ts")}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.url.replace("http://", "ws://") + "/socket"}
        if method == "views.open":
            return {
                "ok": True,
                "view": {"id": "V0APPEAL01", "callback_id": p.get("view", {}).get("callback_id")},
            }
        return {"ok": True}
