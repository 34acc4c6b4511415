"""The committed app manifest matches what the adapter serves and needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.adapters.slack import EVENTS_PATH
from bot.adapters.slack.scopes import ADMIN_USER_SCOPES, BOT_EVENTS, BOT_SCOPES

yaml = pytest.importorskip("yaml")
MANIFEST = Path(__file__).resolve().parents[2] / "docker" / "slack-app-manifest.yaml"


def test_manifest_matches_the_adapter():
    m = yaml.safe_load(MANIFEST.read_text())
    assert set(m["oauth_config"]["scopes"]["bot"]) == BOT_SCOPES
    assert set(m["oauth_config"]["scopes"]["user"]) == ADMIN_USER_SCOPES
    assert set(m["settings"]["event_subscriptions"]["bot_events"]) == BOT_EVENTS
    [command] = m["features"]["slash_commands"]
    assert command["command"] == "/chatmod" and command["should_escape"] is True
    urls = [
        command["url"],
        m["settings"]["event_subscriptions"]["request_url"],
        m["settings"]["interactivity"]["request_url"],
    ]
    assert all(url.endswith(EVENTS_PATH) for url in urls)
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["features"]["app_home"]["messages_tab_enabled"] is True  # DM notices land there
