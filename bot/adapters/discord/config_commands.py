"""/config: an admin's view and edit of the server's moderation policy (re-checked by the service)."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands

from bot.adapters.discord import render
from bot.adapters.discord.commands import ADMIN_PERMISSIONS, bot_of, deferred, guild_id_of, require_role
from bot.adapters.discord.convert import PLATFORM
from moderation.domain import Action, Member, Role
from moderation.labels import LABELS

config = app_commands.Group(
    name="config",
    description="Server moderation settings (admins)",
    default_permissions=ADMIN_PERMISSIONS,
    guild_only=True,
)


@config.command(name="show", description="Show this server's moderation policy")
async def config_show(interaction: discord.Interaction) -> None:
    async def work(member: Member) -> str:
        await require_role(interaction, member, Role.ADMIN, "config.show")
        policy = await bot_of(interaction).service.store.get_policy(PLATFORM, guild_id_of(interaction))
        return render.policy_text(policy)

    await deferred(interaction, work)


async def label_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Labels, each with the thresholds that apply in the chosen channel now."""
    thresholds = {}
    if interaction.guild_id is not None:
        policy = await bot_of(interaction).service.store.get_policy(PLATFORM, str(interaction.guild_id))
        channel = getattr(interaction.namespace, "channel", None)
        eff = policy.for_channel(str(channel.id)) if channel is not None else None
        thresholds = dict(eff.thresholds if eff is not None else policy.thresholds)
    out = []
    for label in LABELS:
        if current.lower() in label:
            t = thresholds.get(label)
            name = f"{label} (review {t.review_at:.2f} / act {t.act_at:.2f})" if t else label
            out.append(app_commands.Choice(name=name, value=label))
    return out[:25]


@config.command(name="threshold", description="Set a channel's review_at or act_at threshold for a label")
@app_commands.describe(
    channel="Channel", label="Label", tier="review_at holds for review; act_at acts", value="0..1"
)
@app_commands.autocomplete(label=label_autocomplete)
async def config_threshold(
    interaction: discord.Interaction,
    channel: discord.TextChannel,
    label: str,
    tier: Literal["review_at", "act_at"],
    value: app_commands.Range[float, 0.0, 1.0],
) -> None:
    async def work(member: Member) -> str:
        kwargs = {"review_at": value} if tier == "review_at" else {"act_at": value}
        policy = await bot_of(interaction).service.set_threshold(
            PLATFORM, guild_id_of(interaction), member, label=label, channel_id=str(channel.id), **kwargs
        )
        t = policy.for_channel(str(channel.id)).thresholds[label]
        return f"{channel.mention} {label}: review_at {t.review_at:.2f}, act_at {t.act_at:.2f}."

    await deferred(interaction, work)


@config.command(name="action", description="What happens when a label crosses act_at in a channel")
async def config_action(
    interaction: discord.Interaction,
    channel: discord.TextChannel,
    action: Literal["delete", "timeout", "escalate"],
) -> None:
    async def work(member: Member) -> str:
        await bot_of(interaction).service.set_channel_action(
            PLATFORM, guild_id_of(interaction), member, str(channel.id), Action(action)
        )
        return f"{channel.mention}: action over act_at is now {action}."

    await deferred(interaction, work)


@config.command(
    name="auto", description="Automatic action on/off (off = review-first: hold everything flagged)"
)
async def config_auto(
    interaction: discord.Interaction,
    enabled: Literal["on", "off"],
    channel: discord.TextChannel | None = None,
) -> None:
    async def work(member: Member) -> str:
        await bot_of(interaction).service.set_auto_action(
            PLATFORM, guild_id_of(interaction), member, enabled == "on", str(channel.id) if channel else None
        )
        return f"Automatic action {enabled} for {channel.mention if channel else 'the server'}."

    await deferred(interaction, work)


@config.command(name="exempt", description="Exempt (or un-exempt) a role or a channel from moderation")
async def config_exempt(
    interaction: discord.Interaction,
    role: discord.Role | None = None,
    channel: discord.TextChannel | None = None,
    exempt: bool = True,
) -> None:
    async def work(member: Member) -> str:
        if (role is None) == (channel is None):
            return "Give exactly one of role or channel."
        kind, target = ("role", role) if role is not None else ("channel", channel)
        assert target is not None
        await bot_of(interaction).service.set_exempt(
            PLATFORM, guild_id_of(interaction), member, kind=kind, target_id=str(target.id), exempt=exempt
        )
        return f"{target.mention} is {'now' if exempt else 'no longer'} exempt."

    await deferred(interaction, work)


@config.command(name="allow-term", description="Allow-list a term the model over-flags here (or remove it)")
async def config_allow_term(interaction: discord.Interaction, term: str, allowed: bool = True) -> None:
    async def work(member: Member) -> str:
        await bot_of(interaction).service.set_allow_term(
            PLATFORM, guild_id_of(interaction), member, term, allowed
        )
        return f"`{term}` {'allowed' if allowed else 'removed from the allow-list'}."

    await deferred(interaction, work)


@config.command(name="ladder", description="Strike ladder: N strikes within D days → timeout for M minutes")
async def config_ladder(
    interaction: discord.Interaction,
    strikes: app_commands.Range[int, 1, 100],
    window_days: app_commands.Range[float, 0.1, 365.0],
    timeout_minutes: app_commands.Range[float, 0.0, 40320.0],
) -> None:
    async def work(member: Member) -> str:
        await bot_of(interaction).service.set_ladder(
            PLATFORM,
            guild_id_of(interaction),
            member,
            strikes=strikes,
            window_days=window_days,
            timeout_minutes=timeout_minutes,
        )
        return f"{strikes} strikes within {window_days:g} days → {timeout_minutes:g} min timeout."

    await deferred(interaction, work)


@config.command(name="review-channel", description="Where held and escalated messages are posted for review")
async def config_review_channel(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
    async def work(member: Member) -> str:
        await bot_of(interaction).service.set_review_channel(
            PLATFORM, guild_id_of(interaction), member, str(channel.id)
        )
        return f"Review channel is now {channel.mention}."

    await deferred(interaction, work)


@config.command(name="sync", description="Re-register chatmod's slash commands in this server")
async def config_sync(interaction: discord.Interaction) -> None:
    async def work(member: Member) -> str:
        await require_role(interaction, member, Role.ADMIN, "config.sync")
        synced = await bot_of(interaction).sync_commands([int(guild_id_of(interaction))])
        return f"Synced {synced} command(s) to this server."

    await deferred(interaction, work)
