"""convert.py: discord.py objects (parsed from recorded payloads) → domain objects."""

from __future__ import annotations

import discord
import pytest

from bot.adapters.discord import convert
from moderation.domain import Platform, Role
from tests.discord.conftest import GENERAL, GUILD, MEMBER_ID, Harness, load

M, MOD, ADM = Role.MEMBER, Role.MODERATOR, Role.ADMIN


@pytest.mark.parametrize(
    ("perms", "roles"),
    [
        (discord.Permissions.none(), {M}),
        (discord.Permissions(send_messages=True, read_message_history=True), {M}),
        (discord.Permissions(manage_messages=True), {M, MOD}),
        (discord.Permissions(moderate_members=True), {M, MOD}),
        (discord.Permissions(manage_guild=True), {M, MOD, ADM}),
        (discord.Permissions(administrator=True), {M, MOD, ADM}),
        (discord.Permissions(kick_members=True, ban_members=True), {M}),  # not a chatmod role by itself
    ],
)
def test_roles_from_permissions(perms: discord.Permissions, roles: set[Role]) -> None:
    assert convert.roles_from_permissions(perms) == roles


def _message(h: Harness, **fields) -> discord.Message:
    data = load("message_create")
    data.update(fields)
    channel = h.bot.get_channel(int(GENERAL))
    return discord.Message(state=h.bot._connection, channel=channel, data=data)


async def test_message_version_from_a_gateway_message(h: Harness) -> None:
    version = convert.message_version(_message(h, content="hello  there"), delivery_id="42")
    assert version is not None
    assert (version.platform, version.server_id, version.channel_id) == (Platform.DISCORD, GUILD, GENERAL)
    assert version.author.user_id == MEMBER_ID and version.author.display_name == "Tom"
    assert version.author.roles == {Role.MEMBER} and not version.author.is_bot
    assert version.text == "hello  there" and version.channel_name == "general"
    assert not version.edited and not version.content_missing and version.delivery_id == "42"


async def test_moderator_role_comes_from_guild_roles(h: Harness) -> None:
    msg = _message(h, member={**load("message_create")["member"], "roles": ["1400000000000000002"]})
    version = convert.message_version(msg)
    assert version is not None and version.author.roles == {M, MOD}
    assert version.author.role_ids == {"1400000000000000002"}


@pytest.mark.parametrize(
    ("fields", "withheld"),
    [
        ({"content": ""}, True),  # what Discord sends without the message-content intent
        ({"content": "hi"}, False),
        (
            {
                "content": "",
                "sticker_items": [{"id": "749054660769218631", "name": "Wave", "format_type": 1}],
            },
            False,
        ),
        ({"content": "", "type": 7}, False),  # a join message is not a member's text
        ({"content": "", "embeds": [{"type": "rich", "title": "t"}]}, False),
    ],
)
async def test_content_withheld(h: Harness, fields: dict, withheld: bool) -> None:
    assert convert.content_withheld(_message(h, **fields)) is withheld


async def test_forwarded_message_text_comes_from_its_snapshot(h: Harness) -> None:
    snapshot = {
        "message": {
            "type": 0,
            "content": "forwarded idiot",
            "embeds": [],
            "attachments": [],
            "timestamp": "2026-11-22T02:00:00+00:00",
            "edited_timestamp": None,
            "flags": 0,
            "mentions": [],
            "mention_roles": [],
            "components": [],
        }
    }
    msg = _message(
        h,
        content="",
        message_snapshots=[snapshot],
        message_reference={"type": 1, "channel_id": GENERAL, "message_id": "1441550381234500000"},
    )
    version = convert.message_version(msg)
    assert version is not None and version.text == "forwarded idiot" and not version.content_missing


async def test_system_messages_are_not_moderated(h: Harness) -> None:
    assert convert.message_version(_message(h, type=7, content="")) is None
