"""API-key auth for the API, and the dashboard's admin login (token → signed session cookie + CSRF)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

SESSION_COOKIE = "chatmod_session"
SESSION_SECONDS = 12 * 3600


def check_api_key(request: Request, expected: str) -> None:
    """Accept ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` when a key is configured."""
    if not expected:
        return
    given = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail={"error": "unauthorized", "message": "a valid API key is required"},
            headers={"WWW-Authenticate": "Bearer"},
        )


@dataclass(frozen=True, slots=True)
class AdminSession:
    name: str
    expires: int
    csrf: str


class AdminAuth:
    """Signs session cookies with a per-process secret: a restart logs everyone out, by design."""

    def __init__(self, token: str, secret: bytes | None = None) -> None:
        self.token = token
        self._secret = secret or secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    def check_token(self, given: str) -> bool:
        return self.enabled and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, name: str = "admin", now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        safe = "".join(c for c in name if c.isalnum() or c in "-_.")[:32] or "admin"
        payload = f"{safe}|{expires}"
        return f"{payload}|{self._sign(payload)}"

    def session(self, cookie: str | None, now: float | None = None) -> AdminSession | None:
        if not cookie or not self.enabled:
            return None
        parts = cookie.split("|")
        if len(parts) != 3:
            return None
        name, expires_s, sig = parts
        payload = f"{name}|{expires_s}"
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            expires = int(expires_s)
        except ValueError:
            return None
        if expires < (now or time.time()):
            return None
        return AdminSession(name, expires, self._sign("csrf|" + cookie)[:32])
