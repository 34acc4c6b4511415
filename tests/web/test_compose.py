"""`chatmod api` composition: the Slack events route is mounted when Slack is configured (HTTP mode)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import httpx

from bot.commands.web import compose_web
from bot.settings import Settings


def signed(body: bytes, secret: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": f"v0={sig}",
        "content-type": "application/json",
    }


async def test_api_mounts_slack_events_with_signature_checks(tmp_path: Path) -> None:
    settings = Settings(
        model={"backend": "fake"},  # type: ignore[arg-type]
        slack={"enabled": True, "bot_token": "xoxb-test", "signing_secret": "sekrit"},  # type: ignore[arg-type]
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    async with compose_web(
        settings, demo=False, database_url=url, admin_token="", mount_slack=True
    ) as composed:
        await composed.ctx.start()
        await composed.extra["deferred"].wait()
        body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"}).encode()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=composed.app), base_url="http://x"
        ) as c:
            unsigned = await c.post(
                "/slack/events", content=body, headers={"content-type": "application/json"}
            )
            assert unsigned.status_code == 401
            ok = await c.post("/slack/events", content=body, headers=signed(body, "sekrit"))
            assert ok.status_code == 200 and "c-123" in ok.text
            assert (await c.get("/health")).status_code == 200
        await composed.ctx.close()


async def test_api_runs_the_retention_purge(tmp_path: Path) -> None:
    """`chatmod api`/`demo` store message texts too, so they erase them after the retention window."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from bot.compose import open_database
    from tests.store.helpers import hold, msg, scores

    url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    settings = Settings(model={"backend": "fake"}, database={"url": url, "retention_days": 30})  # type: ignore[arg-type]
    long_ago = datetime.now(UTC) - timedelta(days=40)
    async with open_database(settings.database) as store:
        old, _ = await store.record_decision(msg("old", "words from long ago"), scores(), hold(), long_ago)
        recent, _ = await store.record_decision(
            msg("new", "recent words"), scores(), hold(), datetime.now(UTC)
        )
    async with compose_web(settings, demo=False, database_url=url, admin_token="") as composed:
        store = composed.ctx.service.store
        for _ in range(100):
            if (await store.get_case(old.id)).text is None:
                break
            await asyncio.sleep(0.05)
        assert (await store.get_case(old.id)).text is None
        assert (await store.get_case(recent.id)).text == "recent words"
        purger = composed.extra["purger"]
        assert not purger.done()  # keeps running every purge_interval_s
    assert purger.cancelled()  # stopped with the app
