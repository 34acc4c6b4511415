"""Slack adapter (slack-bolt): moderate Slack workspaces with the same service, policy and audit trail.

Entry points for the composition root:
- ``build_slack_app(service, settings, client=None, ...) -> AsyncApp`` and ``adapter_for(app)`` (lifecycle:
  ``await adapter_for(app).close()``; Socket Mode: ``await adapter_for(app).start_socket_mode()``);
- ``slack_router(app) -> fastapi.APIRouter`` serving ``POST /slack/events``.
"""

from __future__ import annotations

from bot.adapters.slack.app import SlackAdapter, SlackConfigError, adapter_for, build_slack_app
from bot.adapters.slack.http import EVENTS_PATH, slack_router

__all__ = [
    "EVENTS_PATH",
    "SlackAdapter",
    "SlackConfigError",
    "adapter_for",
    "build_slack_app",
    "slack_router",
]
