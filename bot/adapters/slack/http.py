"""Mounting the Slack app in the chatmod API (FastAPI): one route, ``POST /slack/events``, for the
Events API, interactivity (buttons, modals) and the ``/chatmod`` slash command alike."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp

EVENTS_PATH = "/slack/events"


def slack_router(bolt_app: AsyncApp, path: str = EVENTS_PATH) -> APIRouter:
    """A router whose POST ``path`` hands the raw request to bolt (signature checked there: 401)."""
    handler = AsyncSlackRequestHandler(bolt_app)
    router = APIRouter(tags=["slack"])

    @router.post(path, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    return router
