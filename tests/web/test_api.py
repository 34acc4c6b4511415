"""The HTTP API through httpx (ASGI): schema, bad input, auth, cache, metrics, health, prediction log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.web.context import Limits
from moderation.labels import LABELS
from moderation.policy import DEFAULT_TIERS
from tests.web.conftest import Harness, build_harness


async def test_predict_returns_every_label_as_a_probability(client: httpx.AsyncClient) -> None:
    r = await client.post("/predict", json={"text": "you are an idiot"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == set(LABELS)
    assert all(0.0 <= v <= 1.0 for v in body.values())
    assert body["insult"] > 0.5 > body["threat"]
    assert r.headers["x-model-version"] == "fake-1"


async def test_predict_batch_keeps_order(client: httpx.AsyncClient) -> None:
    texts = ["hello there", "I will kill you", "nice picture"]
    r = await client.post("/predict/batch", json={"texts": texts})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert len(preds) == 3
    assert preds[1]["threat"] > 0.5 and preds[0]["threat"] < 0.5 and preds[2]["threat"] < 0.5


async def test_repeated_and_equivalent_texts_hit_the_cache(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    first = await client.post("/predict", json={"text": "you idiot"})
    again = await client.post("/predict", json={"text": "you idiot"})
    disguised = await client.post("/predict", json={"text": "YOU  id\u200bi0t"})  # same normalised text
    assert [first.headers["x-cache"], again.headers["x-cache"], disguised.headers["x-cache"]] == [
        "miss",
        "hit",
        "hit",
    ]
    assert first.json() == again.json() == disguised.json()
    assert sum(len(c) for c in harness.scorer.calls) == 1  # the model saw the text once
    r = await client.post("/v1/moderate", json={"text": "you idiot"})
    assert r.json()["cached"] is True


async def test_moderate_uses_channel_policy_and_server_defaults_for_unknown_channels(
    client: httpx.AsyncClient,
) -> None:
    kids = await client.post(
        "/v1/moderate",
        json={"text": "you idiot", "platform": "demo", "server_id": "demo", "channel_id": "kids"},
    )
    assert kids.status_code == 200
    d = kids.json()["decision"]
    assert d["action"] == "delete" and d["reason"] == "over_act_threshold"
    assert d["thresholds"]["toxic"] == [0.3, 0.5]
    unknown = await client.post(
        "/v1/moderate",
        json={"text": "you idiot", "platform": "demo", "server_id": "demo", "channel_id": "no-such-channel"},
    )
    body = unknown.json()
    assert body["decision"]["action"] == "hold"  # review-first server default
    assert body["decision"]["thresholds"]["toxic"] == [
        DEFAULT_TIERS["toxic"].review_at,
        DEFAULT_TIERS["toxic"].act_at,
    ]
    assert body["model_version"] == "fake-1" and set(body["scores"]) == set(LABELS)
    clean = await client.post("/v1/moderate", json={"text": "what a lovely day"})
    assert clean.json()["decision"]["action"] == "allow" and clean.json()["server_id"] == "default"


async def test_moderate_batch(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/moderate/batch", json={"items": [{"text": "hi"}, {"text": "you moron"}]})
    assert r.status_code == 200
    assert [x["decision"]["action"] for x in r.json()["results"]] == ["allow", "hold"]


async def test_over_long_text_is_413_with_the_limit(client: httpx.AsyncClient) -> None:
    r = await client.post("/predict", json={"text": "a" * 4001})
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert detail["limit"] == 4000 and detail["length"] == 4001 and detail["field"] == "text"
    r = await client.post("/v1/moderate/batch", json={"items": [{"text": "ok"}, {"text": "b" * 5000}]})
    assert r.status_code == 413 and r.json()["detail"]["field"] == "items.1.text"
    r = await client.post("/predict/batch", json={"texts": ["x"] * 9})
    assert r.status_code == 413 and r.json()["detail"]["limit"] == 8


async def test_oversized_body_is_refused_before_parsing(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/predict", content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["detail"]["limit"] == 200_000


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"text": ', "body"),  # malformed JSON
        (b'{"txt": "hello"}', "text"),  # missing field
        (b'{"text": 42}', "text"),  # wrong type
        (b"[1, 2]", "body"),
    ],
)
async def test_malformed_requests_are_422_naming_the_field(
    client: httpx.AsyncClient, payload: bytes, field: str
) -> None:
    r = await client.post("/predict", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 422
    fields = [f["field"] for f in r.json()["detail"]["fields"]]
    assert field in fields


async def test_moderate_rejects_unknown_fields_and_bad_ids(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/moderate", json={"text": "hi", "chanel_id": "x"})
    assert r.status_code == 422 and r.json()["detail"]["fields"][0]["field"] == "chanel_id"
    r = await client.post("/v1/moderate", json={"text": "hi", "channel_id": "<script>"})
    assert r.status_code == 422 and r.json()["detail"]["fields"][0]["field"] == "channel_id"
    r = await client.post("/v1/moderate", json={"text": "hi", "platform": "irc"})
    assert r.status_code == 422 and r.json()["detail"]["fields"][0]["field"] == "platform"


async def test_empty_text_scores_zero(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/moderate", json={"text": "   "})
    assert r.status_code == 200
    assert r.json()["empty"] is True and r.json()["decision"]["action"] == "allow"


@pytest.fixture
async def keyed() -> AsyncIterator[httpx.AsyncClient]:
    h, local = await build_harness(api_key="s3cret", limits=Limits())
    await h.ctx.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://test") as c:
        yield c
    await h.ctx.close()
    await local.close()


async def test_api_key_is_required_when_configured(keyed: httpx.AsyncClient) -> None:
    assert (await keyed.post("/predict", json={"text": "hi"})).status_code == 401
    assert (
        await keyed.post("/predict", json={"text": "hi"}, headers={"authorization": "Bearer nope"})
    ).status_code == 401
    assert (await keyed.post("/v1/moderate", json={"text": "hi"})).status_code == 401
    ok = await keyed.post("/predict", json={"text": "hi"}, headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    ok = await keyed.post("/predict", json={"text": "hi"}, headers={"x-api-key": "s3cret"})
    assert ok.status_code == 200
    assert (await keyed.get("/health")).status_code == 200  # probes need no key


async def test_metrics_expose_requests_cache_and_scoring(client: httpx.AsyncClient) -> None:
    for _ in range(2):
        await client.post("/predict", json={"text": "metrics please"})
    await client.post("/predict", json={"text": "x" * 5000})
    text = (await client.get("/metrics")).text
    assert 'chatmod_api_requests_total{route="/predict",status="200"} 2.0' in text
    assert 'chatmod_api_requests_total{route="/predict",status="413"} 1.0' in text
    assert 'chatmod_api_cache_total{result="hit"} 1.0' in text
    assert "chatmod_api_request_seconds_bucket" in text
    assert "chatmod_score_batch_size_bucket" in text  # the batcher's own series, same registry


async def test_every_prediction_is_logged_with_latency(client: httpx.AsyncClient, harness: Harness) -> None:
    await client.post("/predict", json={"text": "log me"})
    await client.post("/predict", json={"text": "log me"})
    await client.post("/v1/moderate", json={"text": "and me"})
    await harness.ctx.scorer.log.flush()
    recs = [r for r in harness.sink.records if r.source in ("predict", "moderate")]
    assert [(r.source, r.cached) for r in recs] == [
        ("predict", False),
        ("predict", True),
        ("moderate", False),
    ]
    assert all(
        r.latency_ms >= 0 and r.model_version == "fake-1" and set(r.scores) == set(LABELS) for r in recs
    )
    assert recs[0].text_hash == recs[1].text_hash and len(recs[0].text_hash) == 64


async def test_health_reports_model_db_and_redis(harness: Harness, client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["checks"]["model"]["loaded"] is True
    assert body["checks"]["redis"]["used"] is False

    async def down() -> bool:
        raise ConnectionRefusedError("db down")

    harness.ctx.health_checks = {"database": down}
    r = await client.get("/health")
    assert r.status_code == 503
    assert r.json()["checks"]["database"]["ok"] is False
    assert "db down" in r.json()["checks"]["database"]["error"]


async def test_openapi_documents_the_endpoints(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ("/v1/moderate", "/v1/moderate/batch", "/predict", "/predict/batch", "/health", "/metrics"):
        assert path in spec["paths"], path
    assert "text" in json.dumps(spec["components"]["schemas"]["ModerateRequest"])
    assert (await client.get("/docs")).status_code == 200
    assert not any(p.startswith("/dashboard") for p in spec["paths"])


async def test_cache_works_when_the_version_is_only_known_from_results() -> None:
    """Redis workers: the API process learns the model version from the scores it gets back."""
    from bot.web.scoring import InstrumentedScoreClient, MemoryPredictionSink, PredictionLog, ScoreCache
    from moderation.fakes import FakeScoreClient, FixedClock

    inner = FakeScoreClient()
    client = InstrumentedScoreClient(
        inner,
        version=lambda: "remote",
        cache=ScoreCache(10),
        log=PredictionLog(MemoryPredictionSink()),
        clock=FixedClock(),
    )
    first = await client.score_detailed("you idiot")
    second = await client.score_detailed("you idiot")
    assert (first.cached, second.cached) == (False, True)
    assert len(inner.requests) == 1
