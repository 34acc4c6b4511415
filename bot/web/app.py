"""FastAPI application factory: API + dashboard (+ the demo chat when a hub is given)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.web.api import build_api_router
from bot.web.context import WebContext

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATE_DIR = Path(__file__).parent / "templates"

#: Paths reported to Prometheus by name; anything else is "other" (bounded label cardinality).
_KNOWN_ROUTES = (
    "/v1/moderate/batch",
    "/v1/moderate",
    "/predict/batch",
    "/predict",
    "/health",
    "/metrics",
    "/dashboard",
    "/ws",
    "/static",
    "/docs",
    "/openapi.json",
)


def route_label(path: str) -> str:
    for known in _KNOWN_ROUTES:
        if path == known or path.startswith(known + "/"):
            return known
    return "/" if path == "/" else "other"


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Pure ASGI: refuses bodies over the limit (413, before parsing) and records request metrics."""

    def __init__(self, app: ASGIApp, ctx: WebContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.ctx.limits.max_body_bytes
        route = route_label(scope["path"])
        started = time.perf_counter()
        status_code = 500
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._too_large(send, limit)
                self._observe(route, 413, started)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            await self._too_large(send, limit)
            status_code = 413
        self._observe(route, status_code, started)

    def _observe(self, route: str, status_code: int, started: float) -> None:
        m = self.ctx.metrics
        m.requests.labels(route=route, status=str(status_code)).inc()
        m.latency.labels(route=route).observe(time.perf_counter() - started)

    @staticmethod
    async def _too_large(send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "detail": {
                    "error": "body_too_large",
                    "limit": limit,
                    "message": f"request body over {limit} bytes",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        name = field_name(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            name = "body"
        fields.append({"field": name, "message": err.get("msg", "invalid"), "type": err.get("type")})
    return JSONResponse(
        {"detail": {"error": "invalid_request", "fields": fields}, "errors": jsonable_encoder(exc.errors())},
        status_code=422,
    )


def create_app(
    ctx: WebContext,
    *,
    extra_routers: list[APIRouter] | None = None,
    dashboard: bool = True,
    title: str = "chatmod API",
) -> FastAPI:
    """The app over ``ctx``; its lifespan starts the context's background tasks and closes it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ctx.start()
        try:
            yield
        finally:
            await ctx.close()

    app = FastAPI(
        title=title,
        version="1",
        description=(
            "Moderation API of chatmod: score texts with the toxicity model (`/predict`), ask what a "
            "server/channel policy would do with a message (`/v1/moderate`), health and metrics. "
            "Send the API key (when configured) as `Authorization: Bearer <key>` or `X-API-Key`."
        ),
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.add_middleware(EdgeMiddleware, ctx=ctx)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(build_api_router(ctx))
    if dashboard:
        from bot.web.dashboard import build_dashboard_router

        app.include_router(build_dashboard_router(ctx))
    for router in extra_routers or []:
        app.include_router(router)
    return app
