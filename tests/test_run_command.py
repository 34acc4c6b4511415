"""`chatmod run`: configuration checks and a real start → stop cycle of the bot process."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from bot.commands.run import ConfigError, check_config, run_bot
from bot.settings import Settings


def settings(tmp_path: Path, **sections: dict) -> Settings:
    base = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}"},
        "model": {"backend": "fake"},
    }
    base.update(sections)
    return Settings(**base)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({}, "no adapter enabled"),
        ({"discord": {"enabled": True}}, "CHATMOD_DISCORD__TOKEN"),
        ({"slack": {"enabled": True}}, "CHATMOD_SLACK__BOT_TOKEN"),
        ({"slack": {"enabled": True, "bot_token": "xoxb-1"}}, "CHATMOD_SLACK__SIGNING_SECRET"),
        (
            {"slack": {"enabled": True, "bot_token": "xoxb-1", "socket_mode": True}},
            "CHATMOD_SLACK__APP_TOKEN",
        ),
    ],
)
def test_config_errors_name_the_missing_setting(tmp_path: Path, sections: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_config(settings(tmp_path, **sections))


def test_enabled_adapters(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        discord={"enabled": True, "token": "t"},
        slack={"enabled": True, "bot_token": "xoxb-1", "signing_secret": "s"},
    )
    assert check_config(s) == ["discord", "slack-http"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_slack_http_bot_starts_serves_and_stops(tmp_path: Path) -> None:
    port = free_port()
    s = settings(
        tmp_path,
        slack={"enabled": True, "bot_token": "xoxb-1", "signing_secret": "secret"},
        api={"host": "127.0.0.1", "port": port},
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(s, stop))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(100):
            try:
                health = await client.get("/health")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
        assert health.status_code == 200
        # an unsigned Slack request is refused by the real bolt app behind the route
        unsigned = await client.post("/slack/events", json={"type": "url_verification", "challenge": "x"})
        assert unsigned.status_code == 401
    stop.set()
    summary = await asyncio.wait_for(task, 30)
    assert summary["adapters"] == ["slack-http"] and "error" not in summary
    assert (tmp_path / "run.db").exists()
