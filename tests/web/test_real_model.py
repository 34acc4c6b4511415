"""The API as `chatmod api` composes it: the shipped model, the in-process batcher, the SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.commands.web import compose_web
from bot.settings import Settings
from moderation.labels import LABELS

pytestmark = pytest.mark.slow


async def test_real_model_api_scores_logs_and_reports_health(tmp_path: Path) -> None:
    settings = Settings(api={"admin_token": "t", "cache_size": 100})  # type: ignore[arg-type]
    url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    async with compose_web(settings, demo=False, database_url=url, admin_token="t") as composed:
        await composed.ctx.start()
        await composed.extra["deferred"].wait()
        transport = httpx.ASGITransport(app=composed.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            health = await client.get("/health")
            assert health.status_code == 200, health.text
            checks = health.json()["checks"]
            assert checks["model"]["loaded"] and checks["database"]["ok"] and checks["redis"]["used"] is False
            version = checks["model"]["version"]

            toxic = await client.post("/predict", json={"text": "you are a worthless idiot, shut up"})
            clean = await client.post(
                "/predict", json={"text": "thanks, the meeting notes were really helpful"}
            )
            assert toxic.status_code == clean.status_code == 200
            assert set(toxic.json()) == set(LABELS)
            assert toxic.headers["x-model-version"] == version != "loading"
            assert toxic.json()["toxic"] > 0.5 > clean.json()["toxic"]
            assert toxic.json()["insult"] > clean.json()["insult"]

            mod = await client.post("/v1/moderate", json={"text": "you are a worthless idiot, shut up"})
            assert mod.json()["cached"] is True and mod.json()["decision"]["action"] == "hold"

        await composed.ctx.scorer.log.flush()
        store = composed.ctx.service.store
        now = datetime.now(UTC)
        buckets = await store.prediction_stats(
            now - timedelta(minutes=5), now + timedelta(seconds=1), timedelta(minutes=1)
        )  # type: ignore[attr-defined]
        assert sum(b.count for b in buckets) >= 3  # every prediction (health check excluded) is in the DB
        assert all(b.latency_p50_ms is None or b.latency_p50_ms > 0 for b in buckets)
        await composed.ctx.close()
