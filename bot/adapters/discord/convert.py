"""The one place where discord.py objects become moderation domain objects.

Nothing past this module sees a ``discord.Message`` or ``discord.Member``: the bot hands the service
``MessageVersion``/``Member`` values and the action runner works from ``Case`` values.
"""

from __future__ import annotations

from datetime import UTC

import discord

from moderation.domain import Member, MessageVersion, Platform, Role

PLATFORM = Platform.DISCORD

#: Message types that carry a member's own text (others are joins, pins, boosts…).
_TEXT_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def roles_from_permissions(perms: discord.Permissions) -> frozenset[Role]:
    """Map Discord permissions onto platform-neutral roles.

    manage_messages / moderate_members → moderator; administrator / manage_guild → admin.
    """
    roles = {Role.MEMBER}
    if perms.manage_messages or perms.moderate_members:
        roles.add(Role.MODERATOR)
    if perms.administrator or perms.manage_guild:
        roles.add(Role.ADMIN)
        roles.add(Role.MODERATOR)
    return frozenset(roles)


def _avatar(user: discord.abc.User) -> str | None:
    try:
        return user.display_avatar.url
    except AttributeError:  # pragma: no cover - partial users without avatar data
        return None


def member_from_user(user: discord.abc.User, permissions: discord.Permissions | None = None) -> Member:
    """A domain member from a guild member (roles from guild permissions) or a bare user.

    ``permissions`` overrides the guild-level computation: interactions carry the member's resolved
    permissions in the channel, which is what Discord itself enforces.
    """
    role_ids: frozenset[str] = frozenset()
    if isinstance(user, discord.Member):
        role_ids = frozenset(str(r.id) for r in user.roles if not r.is_default())
        if permissions is None:
            permissions = user.guild_permissions
    roles = roles_from_permissions(permissions) if permissions is not None else frozenset({Role.MEMBER})
    return Member(
        platform=PLATFORM,
        user_id=str(user.id),
        display_name=getattr(user, "display_name", None) or user.name,
        roles=roles,
        role_ids=role_ids,
        is_bot=user.bot,
        avatar_url=_avatar(user),
    )


def member_from_interaction(interaction: discord.Interaction) -> Member:
    """The member who clicked or typed, with roles from the permissions Discord resolved for them."""
    perms = interaction.permissions if interaction.guild_id is not None else discord.Permissions.none()
    return member_from_user(interaction.user, perms)


def content_withheld(message: discord.Message) -> bool:
    """True when Discord sent a text message without its content.

    Without the message-content intent a guild message arrives with empty content, no embeds, no
    attachments and no components (unless it mentions the bot). Such a message must not score clean.
    """
    if message.content or message.type not in _TEXT_TYPES:
        return False
    return not (
        message.attachments
        or message.embeds
        or message.stickers
        or message.components
        or message.poll
        or message.message_snapshots
    )


def message_text(message: discord.Message) -> str:
    """The member's text: the content, plus the text of forwarded messages (which arrive as snapshots)."""
    parts = [message.content] if message.content else []
    parts.extend(s.content for s in message.message_snapshots if s.content)
    return "\n".join(parts)


def message_version(
    message: discord.Message, *, delivery_id: str | None = None, content_missing: bool | None = None
) -> MessageVersion | None:
    """A ``MessageVersion`` for a guild message, or None for DMs and system messages."""
    if message.guild is None or message.type not in _TEXT_TYPES:
        return None
    sent_at = message.created_at
    if sent_at.tzinfo is None:  # pragma: no cover - discord.py always returns aware datetimes
        sent_at = sent_at.replace(tzinfo=UTC)
    return MessageVersion(
        platform=PLATFORM,
        server_id=str(message.guild.id),
        channel_id=str(message.channel.id),
        message_id=str(message.id),
        author=member_from_user(message.author),
        text=message_text(message),
        sent_at=sent_at,
        edited=message.edited_at is not None,
        content_missing=content_withheld(message) if content_missing is None else content_missing,
        attachments=len(message.attachments),
        channel_name=getattr(message.channel, "name", "") or "",
        delivery_id=delivery_id,
    )
