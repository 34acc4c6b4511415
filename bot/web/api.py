"""The HTTP API: /v1/moderate, /predict (and their batch forms), /health, /metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from bot.web.auth import check_api_key
from bot.web.context import WebContext
from bot.web.scoring import Scored
from moderation.domain import Action, Decision, Platform
from moderation.errors import RetryLater, ScoringError
from moderation.filters import sanitize, strip_allow_terms
from moderation.policy import decide

log = logging.getLogger(__name__)

ID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.:@#-]+$")]


class ModerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The message text (at most the configured limit, 4,000 by default).")
    platform: Platform = Field(Platform.API, description="Whose policy applies: api, discord, slack, demo.")
    server_id: ID = Field("default", description="Server/workspace id; unknown servers get the defaults.")
    channel_id: ID | None = Field(None, description="Channel id; unknown channels get the server defaults.")
    user_id: ID | None = Field(None, description="Author id: their live strikes feed the strike ladder.")


class ModerateBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ModerateRequest]


class PredictRequest(BaseModel):
    text: str


class PredictBatch(BaseModel):
    texts: list[str]


class Hit(BaseModel):
    label: str
    score: float
    tier: str
    threshold: float


class DecisionOut(BaseModel):
    action: Action
    reason: str
    category: str | None
    hits: list[Hit]
    thresholds: dict[str, tuple[float, float]]
    strike: bool
    timeout_seconds: int


class ModerateResponse(BaseModel):
    model_version: str
    scores: dict[str, float]
    decision: DecisionOut
    server_id: str
    channel_id: str | None
    empty: bool
    cached: bool
    latency_ms: float


class PredictBatchResponse(BaseModel):
    model_version: str
    predictions: list[dict[str, float]]


def too_long(field: str, length: int, limit: int) -> HTTPException:
    return HTTPException(
        413,
        detail={
            "error": "text_too_long",
            "field": field,
            "limit": limit,
            "length": length,
            "message": f"{field} is {length} characters; the limit is {limit}",
        },
    )


def build_api_router(ctx: WebContext) -> APIRouter:
    def auth(request: Request) -> None:
        check_api_key(request, ctx.api_key)

    router = APIRouter()
    secured = APIRouter(dependencies=[Depends(auth)])
    limits = ctx.limits

    def check_len(field: str, text: str) -> None:
        if len(text) > limits.max_text_chars:
            raise too_long(field, len(text), limits.max_text_chars)

    def check_items(field: str, n: int) -> None:
        if n > limits.max_batch_items:
            raise HTTPException(
                413,
                detail={
                    "error": "too_many_items",
                    "field": field,
                    "limit": limits.max_batch_items,
                    "length": n,
                    "message": f"{n} items; the limit is {limits.max_batch_items}",
                },
            )
        if n == 0:
            raise HTTPException(
                422,
                detail={
                    "error": "invalid_request",
                    "fields": [{"field": field, "message": "must not be empty"}],
                },
            )

    async def score(text: str, source: str) -> Scored:
        try:
            return await ctx.scorer.score_detailed(sanitize(text), source=source)
        except RetryLater as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail={"error": "scoring_unavailable", "message": str(exc)},
                headers={"Retry-After": str(max(1, round(exc.after or 1)))},
            ) from exc
        except ScoringError as exc:
            log.error("scoring failed: %s", exc)
            raise HTTPException(
                status.HTTP_500_INTERNAL_SERVER_ERROR, detail={"error": "scoring_failed", "message": str(exc)}
            ) from exc

    async def moderate_one(req: ModerateRequest, source: str) -> ModerateResponse:
        store = ctx.service.store
        policy = (await store.get_policy(req.platform, req.server_id)).for_channel(req.channel_id or "")
        scored = await score(strip_allow_terms(req.text, policy.allow_terms), source)
        result = scored.result
        if policy.channel_exempt:
            decision = Decision(Action.ALLOW, "exempt_channel", model_version=result.model_version)
        else:
            strikes = await store.strikes_for(req.platform, req.server_id, req.user_id) if req.user_id else []
            decision = decide(
                result.scores, policy, strikes, ctx.clock.now(), model_version=result.model_version
            )
        return ModerateResponse(
            model_version=result.model_version,
            scores={k: round(float(v), 6) for k, v in result.scores.items()},
            decision=DecisionOut(
                action=decision.action,
                reason=decision.reason,
                category=decision.category,
                hits=[
                    Hit(label=h.label, score=round(h.score, 6), tier=h.tier, threshold=h.threshold)
                    for h in decision.hits
                ],
                thresholds={k: (v[0], v[1]) for k, v in decision.thresholds.items()},
                strike=decision.strike,
                timeout_seconds=decision.timeout_seconds,
            ),
            server_id=req.server_id,
            channel_id=req.channel_id,
            empty=result.empty,
            cached=scored.cached,
            latency_ms=round(scored.latency_ms, 3),
        )

    @secured.post("/v1/moderate", response_model=ModerateResponse, tags=["moderation"])
    async def moderate(req: ModerateRequest) -> ModerateResponse:
        """Score a text and decide what the policy of its server/channel would do with it.

        Nothing is acted on or stored as a case; the prediction is logged with its latency.
        """
        check_len("text", req.text)
        return await moderate_one(req, "moderate")

    @secured.post("/v1/moderate/batch", tags=["moderation"])
    async def moderate_batch(req: ModerateBatch) -> dict[str, list[ModerateResponse]]:
        check_items("items", len(req.items))
        for i, item in enumerate(req.items):
            check_len(f"items.{i}.text", item.text)
        results = await asyncio.gather(*(moderate_one(item, "moderate") for item in req.items))
        return {"results": list(results)}

    @secured.post(
        "/predict",
        tags=["prediction"],
        response_model=dict[str, float],
        responses={200: {"content": {"application/json": {"example": {"toxic": 0.97, "insult": 0.91}}}}},
    )
    async def predict(req: PredictRequest, response: Response) -> dict[str, float]:
        """``{"text": ...}`` → per-label probabilities (model version in ``X-Model-Version``)."""
        check_len("text", req.text)
        scored = await score(req.text, "predict")
        response.headers["X-Model-Version"] = scored.result.model_version
        response.headers["X-Cache"] = "hit" if scored.cached else "miss"
        return {k: round(float(v), 6) for k, v in scored.result.scores.items()}

    @secured.post("/predict/batch", response_model=PredictBatchResponse, tags=["prediction"])
    async def predict_batch(req: PredictBatch) -> PredictBatchResponse:
        check_items("texts", len(req.texts))
        for i, t in enumerate(req.texts):
            check_len(f"texts.{i}", t)
        scored = await asyncio.gather(*(score(t, "predict") for t in req.texts))
        return PredictBatchResponse(
            model_version=scored[0].result.model_version,
            predictions=[{k: round(float(v), 6) for k, v in s.result.scores.items()} for s in scored],
        )

    @router.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """Model loaded and answering, database reachable, Redis reachable (when used)."""
        report: dict[str, Any] = {}
        ok = True
        inner = ctx.scorer.inner
        try:
            if getattr(inner, "ready", True) is False:
                raise RuntimeError("the model is still loading")
            result = await inner.score("health check", timeout=5.0)
            device = getattr(getattr(inner, "scorer", None), "device", None)
            report["model"] = {"ok": True, "loaded": True, "version": result.model_version, **ctx.model_info}
            if device is not None:
                report["model"]["device"] = str(device)
        except Exception as exc:
            ok = False
            report["model"] = {"ok": False, "loaded": False, "error": str(exc)}
        for name, check in ctx.health_checks.items():
            try:
                good = await asyncio.wait_for(check(), 5.0)
                report[name] = {"ok": bool(good)}
            except Exception as exc:
                good = False
                report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            ok = ok and bool(good)
        for name, note in ctx.not_used.items():
            report[name] = {"ok": True, "used": False, "note": note}
        body = {"status": "ok" if ok else "degraded", "checks": report}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus exposition: API requests/latency, cache, predictions, scoring pipeline."""
        return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)

    router.include_router(secured)
    return router
