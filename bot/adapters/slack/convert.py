"""Slack payload dicts → moderation domain objects. The only module that reads Slack event shapes.

Everything here is pure: role lookups that need the Web API (user groups) are done by
``directory.SlackDirectory`` and passed in as plain sets.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moderation.domain import Member, MessageVersion, Platform, Role

#: Message subtypes that carry a member's own text. Everything else (joins, deletions, topic changes,
#: bot_message...) is not moderated.
MODERATED_SUBTYPES: frozenset[str | None] = frozenset({None, "thread_broadcast", "file_share", "me_message"})


@dataclass(frozen=True, slots=True)
class RoleConfig:
    """Who is a moderator/admin in Slack: configured user ids, or membership of one user group."""

    moderator_user_ids: frozenset[str] = frozenset()
    admin_user_ids: frozenset[str] = frozenset()
    #: A user group id (S0123…) or handle ("mods"); resolved to an id by the directory.
    moderator_usergroup: str = ""


def roles_for(
    user_id: str, usergroup_ids: Collection[str], config: RoleConfig, mod_group_id: str | None
) -> frozenset[Role]:
    roles = {Role.MEMBER}
    if user_id in config.moderator_user_ids or (mod_group_id is not None and mod_group_id in usergroup_ids):
        roles.add(Role.MODERATOR)
    if user_id in config.admin_user_ids:
        roles.update({Role.ADMIN, Role.MODERATOR})
    return frozenset(roles)


def member(
    user_id: str,
    *,
    config: RoleConfig,
    usergroup_ids: Collection[str] = (),
    mod_group_id: str | None = None,
    is_bot: bool = False,
    display_name: str = "",
    avatar_url: str | None = None,
) -> Member:
    """A Slack user as a platform-neutral member; user groups double as "roles" for exemptions."""
    return Member(
        platform=Platform.SLACK,
        user_id=user_id,
        display_name=display_name,
        roles=roles_for(user_id, usergroup_ids, config, mod_group_id)
        if not is_bot
        else frozenset({Role.MEMBER}),
        role_ids=frozenset(usergroup_ids),
        is_bot=is_bot,
        avatar_url=avatar_url,
    )


# ---------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """The parts of a message event the adapter needs before it can build a ``MessageVersion``
    (the author's user groups are looked up in between)."""

    team_id: str
    channel_id: str
    ts: str
    user_id: str
    text: str
    sent_at: datetime
    edited: bool
    is_bot: bool
    display_name: str
    avatar_url: str | None
    event_id: str | None
    channel_type: str
    files: int


def inbound_message(body: Mapping[str, Any]) -> InboundMessage | None:
    """An ``event_callback`` body with a ``message`` event → what to moderate, or None to ignore it.

    ``message_changed`` yields the *new* version (same ts, edited=True) so the service rescores it;
    deletions, joins and other housekeeping subtypes yield None.
    """
    event = body.get("event") or {}
    if event.get("type") != "message":
        return None
    subtype = event.get("subtype")
    edited = False
    msg: Mapping[str, Any] = event
    if subtype == "message_changed":
        msg = event.get("message") or {}
        edited = True
        # An unfurl or a new thread reply also sends message_changed with identical text: the content
        # hash makes that a duplicate in the service, so nothing is acted on twice.
        if msg.get("subtype") not in MODERATED_SUBTYPES:
            return None
    elif subtype not in MODERATED_SUBTYPES and subtype != "bot_message":
        return None
    channel_id = event.get("channel") or msg.get("channel")
    ts = msg.get("ts")
    is_bot = bool(msg.get("bot_id")) or msg.get("subtype") == "bot_message" or subtype == "bot_message"
    user_id = msg.get("user") or msg.get("bot_id") or ""
    if not channel_id or not ts or not user_id:
        return None
    team_id = body.get("team_id") or event.get("team") or msg.get("team") or ""
    edited_ts = (msg.get("edited") or {}).get("ts") if edited else None
    profile = msg.get("user_profile") or {}
    return InboundMessage(
        team_id=team_id,
        channel_id=channel_id,
        ts=ts,
        user_id=user_id,
        text=plain_text(msg.get("text") or ""),
        sent_at=ts_to_datetime(edited_ts or ts),
        edited=edited,
        is_bot=is_bot,
        display_name=profile.get("display_name") or profile.get("real_name") or "",
        avatar_url=profile.get("image_72"),
        event_id=body.get("event_id"),
        channel_type=event.get("channel_type", ""),
        files=len(msg.get("files") or ()),
    )


def message_version(inbound: InboundMessage, author: Member) -> MessageVersion:
    return MessageVersion(
        platform=Platform.SLACK,
        server_id=inbound.team_id,
        channel_id=inbound.channel_id,
        message_id=inbound.ts,
        author=author,
        text=inbound.text,
        sent_at=inbound.sent_at,
        edited=inbound.edited,
        attachments=inbound.files,
        delivery_id=inbound.event_id,
    )


def ts_to_datetime(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (TypeError, ValueError):
        return datetime.fromtimestamp(0, tz=UTC)


# ---------------------------------------------------------------------------------------- mrkdwn

_ANGLE = re.compile(r"<([^<>]*)>")


def _angle(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):  # <@U123|name> user mention
        return "@" + (label or target[1:])
    if target.startswith("#"):  # <#C123|general> channel
        return "#" + (label or target[1:])
    if target.startswith("!subteam^"):
        return label or "@" + target.removeprefix("!subteam^")
    if target.startswith("!"):  # <!here>, <!channel>, <!date^…|fallback>
        return label or "@" + target[1:]
    return label or target  # a link: the visible label is what people read


def plain_text(mrkdwn: str) -> str:
    """Slack's escaped message text → what members read (mentions, links and entities resolved)."""
    return html.unescape(_ANGLE.sub(_angle, mrkdwn))


def escape(text: str) -> str:
    """Text for posting back to Slack: &, < and > escaped, so a reposted text cannot ping anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------------------- interactivity


@dataclass(frozen=True, slots=True)
class ActorRef:
    """Who clicked or typed, and where."""

    team_id: str
    user_id: str
    channel_id: str | None = None


def actor_from_interaction(body: Mapping[str, Any]) -> ActorRef:
    """block_actions / view_submission / slash command bodies → the acting user."""
    if "user_id" in body:  # slash command form body
        return ActorRef(body.get("team_id", ""), body["user_id"], body.get("channel_id"))
    user = body.get("user") or {}
    team = (body.get("team") or {}).get("id") or user.get("team_id", "")
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    return ActorRef(team, user.get("id", ""), channel)


@dataclass(frozen=True, slots=True)
class ButtonClick:
    action_id: str
    value: str
    channel_id: str | None
    message_ts: str | None
    trigger_id: str | None


def button_click(body: Mapping[str, Any]) -> ButtonClick | None:
    actions = body.get("actions") or []
    if not actions:
        return None
    action = actions[0]
    container = body.get("container") or {}
    return ButtonClick(
        action_id=action.get("action_id", ""),
        value=str(action.get("value", "")),
        channel_id=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        message_ts=container.get("message_ts") or (body.get("message") or {}).get("ts"),
        trigger_id=body.get("trigger_id"),
    )


def parse_case_id(value: str) -> int | None:
    value = value.strip().lstrip("#")
    return int(value) if value.isdigit() else None
