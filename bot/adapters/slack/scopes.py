"""The Slack OAuth scopes each capability level needs (mirrored in docker/slack-app-manifest.yaml;
a test keeps the two in step)."""

from __future__ import annotations

from typing import Final

#: Level 1 — bot token (xoxb-): read messages, post review cards/notices/reposts, /chatmod, user groups.
BOT_SCOPES: Final[frozenset[str]] = frozenset(
    {"channels:history", "groups:history", "chat:write", "commands", "usergroups:read"}
)
#: Level 2 — admin user token (xoxp-) of a Workspace Admin/Owner: delete members' messages.
ADMIN_USER_SCOPES: Final[frozenset[str]] = frozenset({"chat:write"})
#: Socket Mode — app-level token (xapp-).
APP_TOKEN_SCOPES: Final[frozenset[str]] = frozenset({"connections:write"})
#: Events API subscriptions (bot events).
BOT_EVENTS: Final[frozenset[str]] = frozenset({"message.channels", "message.groups"})
