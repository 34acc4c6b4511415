"""Web tests on the fakes: MemoryStore, FakeScorer behind the real LocalScoreClient batcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from bot.web.app import create_app
from bot.web.context import ApiMetrics, Limits, WebContext
from bot.web.demo import build_demo_router, setup_demo_policy
from bot.web.demo_actions import DemoActions
from bot.web.hub import ChatHub
from bot.web.scoring import InstrumentedScoreClient, MemoryPredictionSink, PredictionLog, ScoreCache
from moderation.domain import Platform
from moderation.fakes import FakeScorer, FixedClock, MemoryStore
from moderation.scoring.batcher import BatchPolicy
from moderation.scoring.local import LocalScoreClient
from moderation.scoring.metrics import ScoringMetrics
from moderation.service import ModerationService

ADMIN_TOKEN = "test-admin-token"


@dataclass
class Harness:
    app: FastAPI
    ctx: WebContext
    store: MemoryStore
    scorer: FakeScorer
    sink: MemoryPredictionSink
    hub: ChatHub
    clock: FixedClock


async def build_harness(
    *, api_key: str = "", limits: Limits | None = None
) -> tuple[Harness, LocalScoreClient]:
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    clock = FixedClock()
    store = MemoryStore()
    fake = FakeScorer()
    local = LocalScoreClient(fake, BatchPolicy(max_wait=0.001), metrics=ScoringMetrics(registry))
    await local.start()
    sink = MemoryPredictionSink()
    scorer = InstrumentedScoreClient(
        local,
        version=lambda: local.runner.version,
        cache=ScoreCache(100),
        log=PredictionLog(sink),
        clock=clock,
        on_score=metrics.observe_score,
    )
    service = ModerationService(scorer=scorer, store=store, actions={}, clock=clock)
    hub = ChatHub()
    service.register_actions(Platform.DEMO, DemoActions(hub))
    ctx = WebContext(
        service=service,
        scorer=scorer,
        clock=clock,
        registry=registry,
        metrics=metrics,
        limits=limits or Limits(max_text_chars=4000, max_batch_items=8, max_body_bytes=200_000),
        api_key=api_key,
        admin_token=ADMIN_TOKEN,
        explainer=lambda text, labels: {
            k: [(w, 0.0) for w in v] for k, v in fake.evidence(text).items() if k in labels
        },
        default_server=(Platform.DEMO, "demo"),
        not_used={"redis": "embedded mode"},
    )
    await setup_demo_policy(service)
    app = create_app(ctx, extra_routers=[build_demo_router(ctx, hub)])
    return Harness(app, ctx, store, fake, sink, hub, clock), local


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h, local = await build_harness()
    await h.ctx.start()
    yield h
    await h.ctx.close()
    await local.close()


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=harness.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def login(client: httpx.AsyncClient, token: str = ADMIN_TOKEN) -> str:
    """Log in to the dashboard; returns the CSRF token of the session."""
    r = await client.post("/dashboard/login", data={"token": token, "name": "alice", "next": "/dashboard"})
    assert r.status_code == 303, r.text
    page = await client.get("/dashboard/policy?platform=demo&server=demo")
    assert page.status_code == 200
    marker = 'name="csrf" value="'
    i = page.text.index(marker) + len(marker)
    return page.text[i : page.text.index('"', i)]
