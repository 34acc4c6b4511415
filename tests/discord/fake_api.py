"""A local fake of the Discord REST API (aiohttp, port 0) that records every call.

It answers the routes chatmod uses with payloads shaped like Discord API v10's, keeps enough state to
be consistent (messages, webhooks, DM channels), sends real rate-limit headers per bucket, and can be
told to fail: 429 storms (with ``Retry-After``/``X-RateLimit-*`` and ``Via``, as Discord's edge sends),
403 with Discord's error codes, 500s. ``violations`` counts requests that ignored a 429's retry-after.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import discord
from aiohttp import web

BOT_USER = {
    "id": "1300000000000000001",
    "username": "chatmod",
    "global_name": None,
    "discriminator": "4242",
    "avatar": "5d2f6c1b6e4ad8d1f6c0b8a3c9e0d7f1",
    "bot": True,
    "public_flags": 0,
    "flags": 0,
    "verified": True,
    "mfa_enabled": False,
    "email": None,
    "banner": None,
    "accent_color": None,
}
APPLICATION_ID = BOT_USER["id"]


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    at: float = 0.0


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    body: dict[str, Any] = field(default_factory=dict)
    retry_after: float = 0.0
    is_global: bool = False


@dataclass
class Bucket:
    limit: int
    window: float
    started: float = 0.0
    used: int = 0
    locked_until: float = 0.0


def _json_response(data: Any, status: int, headers: dict[str, str]) -> web.Response:
    # discord.py only decodes a body whose Content-Type is exactly "application/json" (as Discord sends).
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={**headers, "Content-Type": "application/json"}
    )


def _snowflake() -> int:
    return discord.utils.time_snowflake(discord.utils.utcnow())


class FakeDiscordAPI:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.dm_closed: set[str] = set()
        self.dm_channels: dict[str, str] = {}
        self.bucket_limits: dict[str, tuple[int, float]] = {}
        self._buckets: dict[str, Bucket] = {}
        self.rate_limited = 0
        self.violations = 0
        self._ids = itertools.count(_snowflake() + 10**7)  # clear of the ids tests mint
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ control

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        times: int = 1,
        *,
        code: int = 0,
        message: str = "",
        retry_after: float = 0.0,
        is_global: bool = False,
    ) -> None:
        body = {
            "message": message
            or {403: "Missing Permissions", 500: "Internal Server Error"}.get(status, "error"),
            "code": code or {403: 50013}.get(status, 0),
        }
        if status == 429:
            body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        self.faults.append(Fault(method, re.compile(path), status, times, body, retry_after, is_global))

    def limit(self, bucket_route: str, limit: int, window: float) -> None:
        """Give a route (e.g. ``DELETE /channels/{id}/messages/{id}``) a real per-channel bucket."""
        self.bucket_limits[bucket_route] = (limit, window)

    def seed_message(self, payload: dict[str, Any]) -> None:
        self.messages[(payload["channel_id"], payload["id"])] = payload

    def next_id(self) -> str:
        return str(next(self._ids))

    def find(self, method: str, pattern: str) -> list[Call]:
        rx = re.compile(pattern)
        return [
            c for c in self.calls if c.method == method and rx.fullmatch(c.path) and 200 <= c.status < 300
        ]

    def routes(self) -> list[str]:
        return [f"{c.method} {c.path} {c.status}" for c in self.calls]

    # ------------------------------------------------------------------ server

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/api/v10"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, method: str, pattern: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(method, pattern)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(
            f"expected {count}x {method} {pattern}; calls were:\n" + "\n".join(self.routes())
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        raw = await request.read()
        body: Any = None
        if raw and request.content_type == "application/json":
            body = json.loads(raw)
        elif raw and request.content_type.startswith("multipart/"):
            body = {"multipart": True}
        call = Call(request.method, path, dict(request.query), body, at=time.monotonic())
        self.calls.append(call)
        self._pending_headers: dict[str, str] = {}
        response = self._limited(request.method, path) or self._faulted(request.method, path)
        if response is None:
            response = self._route(request.method, path, body, dict(request.query))
        call.status = response.status
        return response

    def _bucket_key(self, method: str, path: str) -> str | None:
        generic = re.sub(r"\d{15,}", "{id}", path)
        if f"{method} {generic}" not in self.bucket_limits:
            return None
        major = re.match(r"/(channels|guilds|webhooks)/(\d+)", path)
        return f"{method} {generic}:{major.group(2) if major else ''}"

    def _limited(self, method: str, path: str) -> web.Response | None:
        key = self._bucket_key(method, path)
        if key is None:
            return None
        limit, window = self.bucket_limits[f"{method} {re.sub(r'[0-9]{15,}', '{id}', path)}"]
        now = time.monotonic()
        bucket = self._buckets.setdefault(key, Bucket(limit, window, now))
        if now < bucket.locked_until:
            self.violations += 1  # retried before the retry-after it was given
        if now - bucket.started >= window:
            bucket.started, bucket.used = now, 0
        reset_after = max(0.0, window - (now - bucket.started))
        if bucket.used >= limit:
            bucket.locked_until = now + reset_after
            self.rate_limited += 1
            return self._too_many(reset_after, False, bucket_hash=key, limit=limit)
        bucket.used += 1
        self._pending_headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - bucket.used),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"{abs(hash(key.split(':')[0])):x}",
        }
        return None

    def _too_many(
        self, retry_after: float, is_global: bool, *, bucket_hash: str = "", limit: int = 1
    ) -> web.Response:
        headers = {
            "Retry-After": f"{retry_after:.3f}",
            "Via": "1.1 google",
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": f"{abs(hash(bucket_hash.split(':')[0])):x}",
                }
            )
        payload = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        return _json_response(payload, 429, headers)

    def _faulted(self, method: str, path: str) -> web.Response | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.pattern.fullmatch(path):
                fault.times -= 1
                if fault.status == 429:
                    self.rate_limited += 1
                    return self._too_many(fault.retry_after, fault.is_global)
                return _json_response(fault.body, fault.status, {})
        return None

    # ------------------------------------------------------------------ routes

    def _json(self, data: Any, status: int = 200) -> web.Response:
        headers, self._pending_headers = self._pending_headers, {}
        if status == 204:
            return web.Response(status=204, headers=headers)
        return _json_response(data, status, headers)

    def _message(
        self, channel_id: str, body: dict[str, Any], author: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        msg = {
            "type": 0,
            "tts": False,
            "timestamp": discord.utils.utcnow().isoformat(),
            "pinned": False,
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "id": self.next_id(),
            "flags": body.get("flags", 0),
            "edited_timestamp": None,
            "content": body.get("content") or "",
            "channel_id": channel_id,
            "author": author or BOT_USER,
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "nonce": body.get("nonce"),
        }
        msg.update(extra)
        self.messages[(channel_id, msg["id"])] = msg
        return msg

    def _route(self, method: str, path: str, body: Any, query: dict[str, str]) -> web.Response:
        body = body or {}
        if method == "GET" and path == "/users/@me":
            return self._json(BOT_USER)
        if method == "GET" and path == "/oauth2/applications/@me":
            return self._json(
                {
                    "id": APPLICATION_ID,
                    "name": "chatmod",
                    "icon": None,
                    "description": "moderation bot",
                    "summary": "",
                    "type": None,
                    "bot_public": False,
                    "bot_require_code_grant": False,
                    "verify_key": "1e0a356058d627ca38a5c8c9648818061d49e49bd9da9e3ab17d98ad4d6bg2u8",
                    "flags": 8953856,
                    "owner": {
                        **BOT_USER,
                        "id": "1200000000000000001",
                        "username": "alice_admin",
                        "bot": False,
                    },
                    "team": None,
                    "rpc_origins": [],
                    "redirect_uris": [],
                    "interactions_endpoint_url": None,
                    "role_connections_verification_url": None,
                    "tags": [],
                    "install_params": None,
                    "integration_types_config": {},
                    "approximate_guild_count": 1,
                    "bot": BOT_USER,
                }
            )
        if method == "PUT" and (m := re.fullmatch(r"/applications/(\d+)/guilds/(\d+)/commands", path)):
            return self._json(
                [
                    {
                        **c,
                        "id": self.next_id(),
                        "application_id": m.group(1),
                        "guild_id": m.group(2),
                        "version": self.next_id(),
                    }
                    for c in body
                ]
            )
        if m := re.fullmatch(r"/applications/(\d+)/commands", path):
            return self._json(
                [
                    {**c, "id": self.next_id(), "application_id": m.group(1), "version": "1"}
                    for c in body or []
                ]
            )
        if method == "POST" and (m := re.fullmatch(r"/channels/(\d+)/messages", path)):
            return self._json(self._message(m.group(1), body))
        if m := re.fullmatch(r"/channels/(\d+)/messages/(\d+)", path):
            key = (m.group(1), m.group(2))
            if method == "DELETE":
                self.messages.pop(key, None)
                return self._json(None, 204)
            if method == "PATCH":
                msg = self.messages.setdefault(key, self._message(key[0], {}, id=key[1]))
                msg.update(
                    {k: v for k, v in body.items() if k in ("content", "embeds", "components", "flags")}
                )
                msg["edited_timestamp"] = discord.utils.utcnow().isoformat()
                return self._json(msg)
            if method == "GET":
                if key not in self.messages:
                    return self._json({"message": "Unknown Message", "code": 10008}, 404)
                return self._json(self.messages[key])
        if method == "POST" and (m := re.fullmatch(r"/channels/(\d+)/messages/bulk-delete", path)):
            for mid in body.get("messages", []):
                self.messages.pop((m.group(1), mid), None)
            return self._json(None, 204)
        if method == "GET" and (m := re.fullmatch(r"/channels/(\d+)/messages", path)):
            channel = m.group(1)
            after = int(query.get("after", 0))
            before = int(query.get("before", 0)) or None
            limit = int(query.get("limit", 50))
            found = [
                msg
                for (ch, _), msg in self.messages.items()
                if ch == channel and int(msg["id"]) > after and (before is None or int(msg["id"]) < before)
            ]
            found.sort(key=lambda x: int(x["id"]))
            found = found[:limit] if after else found[-limit:]
            return self._json(list(reversed(found)))  # Discord returns newest first
        if m := re.fullmatch(r"/channels/(\d+)/webhooks", path):
            channel = m.group(1)
            if method == "GET":
                return self._json([w for w in self.webhooks.values() if w["channel_id"] == channel])
            hook = {
                "type": 1,
                "id": self.next_id(),
                "name": body.get("name", "chatmod"),
                "avatar": None,
                "channel_id": channel,
                "guild_id": "1100000000000000001",
                "application_id": APPLICATION_ID,
                "token": "wh-" + self.next_id(),
                "user": BOT_USER,
            }
            self.webhooks[hook["id"]] = hook
            return self._json(hook)
        if method == "POST" and (m := re.fullmatch(r"/webhooks/(\d+)/([^/]+)", path)):
            hook = self.webhooks.get(m.group(1))
            if hook is None:  # an interaction follow-up (application id + interaction token)
                flags = body.get("flags", 0)
                return self._json(
                    self._message(
                        "0", body, flags=flags, webhook_id=m.group(1), application_id=APPLICATION_ID
                    )
                )
            author = {
                "id": hook["id"],
                "username": body.get("username") or hook["name"],
                "avatar": None,
                "discriminator": "0000",
                "bot": True,
                "public_flags": 0,
            }
            return self._json(self._message(hook["channel_id"], body, author=author, webhook_id=hook["id"]))
        if re.fullmatch(r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", path):
            return self._json(self._message("0", body))
        if method == "POST" and re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", path):
            iid = path.split("/")[2]
            data = body.get("data") or {}
            loading = body.get("type") == 5
            payload: dict[str, Any] = {
                "interaction": {
                    "id": iid,
                    "type": 2,
                    "activity_instance_id": None,
                    "response_message_id": None,
                    "response_message_loading": loading,
                    "response_message_ephemeral": bool(data.get("flags", 0) & 64),
                },
                "resource": {"type": body.get("type")},
            }
            return self._json(payload)
        if method == "POST" and path == "/users/@me/channels":
            user_id = body["recipient_id"]
            dm_id = self.dm_channels.setdefault(str(user_id), self.next_id())
            return self._json(
                {
                    "type": 1,
                    "id": dm_id,
                    "last_message_id": None,
                    "flags": 0,
                    "recipients": [
                        {
                            "id": str(user_id),
                            "username": "member",
                            "global_name": None,
                            "discriminator": "0",
                            "avatar": None,
                            "public_flags": 0,
                        }
                    ],
                }
            )
        if method == "PATCH" and (m := re.fullmatch(r"/guilds/(\d+)/members/(\d+)", path)):
            return self._json(
                {
                    "user": {
                        "id": m.group(2),
                        "username": "member",
                        "global_name": None,
                        "discriminator": "0",
                        "avatar": None,
                        "public_flags": 0,
                    },
                    "roles": [],
                    "nick": None,
                    "avatar": None,
                    "banner": None,
                    "premium_since": None,
                    "joined_at": "2026-02-14T18:22:04.000000+00:00",
                    "deaf": False,
                    "mute": False,
                    "pending": False,
                    "flags": 0,
                    "communication_disabled_until": body.get("communication_disabled_until"),
                }
            )
        return self._json({"message": f"fake: no route for {method} {path}", "code": 0}, 404)

    # DM channels that refuse messages (the member closed DMs): Discord answers 403 code 50007.
    def close_dms(self, user_id: str) -> None:
        self.dm_closed.add(user_id)
        dm_id = self.dm_channels.setdefault(user_id, self.next_id())
        self.fail(
            "POST",
            rf"/channels/{dm_id}/messages",
            403,
            times=1000,
            code=50007,
            message="Cannot send messages to this user",
        )


def per_message_counts(calls: list[Call]) -> dict[str, int]:
    """How many times each message id was deleted (single deletes and bulk deletes)."""
    counts: dict[str, int] = defaultdict(int)
    for c in calls:
        if (
            c.method == "DELETE"
            and (m := re.fullmatch(r"/channels/\d+/messages/(\d+)", c.path))
            and c.status == 204
        ):
            counts[m.group(1)] += 1
        if c.method == "POST" and c.path.endswith("/bulk-delete") and c.status == 204:
            for mid in c.body["messages"]:
                counts[str(mid)] += 1
    return counts
