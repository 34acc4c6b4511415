"""Helpers shared by the Discord tests: button clicks built from what the bot really posted."""

from __future__ import annotations

import copy

from tests.discord.conftest import GUILD, MEMBER_ID, Harness


def posted_with(h: Harness, custom_id: str) -> dict | None:
    """The message the fake API holds that carries a button with ``custom_id`` (what Discord would send)."""
    for msg in reversed(list(h.api.messages.values())):
        for row in msg.get("components") or []:
            if any(b.get("custom_id") == custom_id for b in row.get("components", [])):
                return copy.deepcopy(msg)
    return None


def click(h: Harness, custom_id: str, *, in_dm: bool = False, **kw) -> dict:
    if in_dm:  # a button on a DM: no guild, ``user`` instead of ``member``
        data = h.interaction("interaction_modal_submit", **kw)
        data["type"] = 3
        data["user"]["id"] = kw.get("user_id", MEMBER_ID)
    else:
        data = h.interaction("interaction_button", **kw)
    data["data"] = {"id": 2, "custom_id": custom_id, "component_type": 2}
    message = posted_with(h, custom_id)
    if message is not None:
        if in_dm:
            message.pop("guild_id", None)
        else:
            message["guild_id"] = GUILD
        data["message"] = message
    return data


def webhook_posts(h: Harness) -> list[dict]:
    return [
        c.body
        for c in h.api.calls
        if c.method == "POST"
        and c.path.startswith("/webhooks/")
        and c.path.split("/")[2] in h.api.webhooks
        and 200 <= c.status < 300
    ]
