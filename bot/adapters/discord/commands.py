"""Slash commands: /mod (moderators), /config (admins), /appeal (members).

``default_permissions`` only hides commands from members by default (server admins can widen it in
Server Settings → Integrations), so every command re-checks the role itself: writes through the
service (which audits a refusal), reads through ``_require`` below (audited the same way). Replies are
ephemeral; anything that reads or writes the store is deferred first, so a slow database never runs
into Discord's 3-second response deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from bot.adapters.discord import render
from bot.adapters.discord.convert import PLATFORM, member_from_interaction
from bot.adapters.discord.views import explain, submit_appeal
from moderation.domain import Action, AuditEntry, Member, Role, Verdict
from moderation.errors import ModerationError, NotFound, PermissionDenied
from moderation.labels import LABELS
from moderation.service import actor_id, require

if TYPE_CHECKING:
    from bot.adapters.discord.bot import ChatmodDiscordBot

log = logging.getLogger(__name__)

MOD_PERMISSIONS = discord.Permissions(manage_messages=True)
ADMIN_PERMISSIONS = discord.Permissions(manage_guild=True)


def _bot(interaction: discord.Interaction) -> ChatmodDiscordBot:
    return interaction.client  # type: ignore[return-value]


def _guild_id(interaction: discord.Interaction) -> str:
    if interaction.guild_id is None:  # guild_only commands: Discord never sends these from DMs
        raise PermissionDenied("guild", "dm")
    return str(interaction.guild_id)


async def _require(interaction: discord.Interaction, member: Member, role: Role, subject: str) -> None:
    try:
        require(member, role)
    except PermissionDenied:
        bot = _bot(interaction)
        await bot.service.store.append(
            AuditEntry(
                bot.clock_now(),
                actor_id(member),
                "permission.denied",
                _guild_id(interaction),
                subject,
                {"required": role.value, "via": "discord"},
            )
        )
        raise


async def _deferred(
    interaction: discord.Interaction, work: Callable[[Member], Awaitable[str | discord.Embed]]
) -> None:
    """Defer (ephemeral), run ``work``, send its result or the reason it was refused."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    member = member_from_interaction(interaction)
    try:
        result = await work(member)
    except ModerationError as exc:
        log.info(
            "/%s by %s refused: %s",
            interaction.command and interaction.command.qualified_name,
            member.user_id,
            exc,
        )
        await interaction.followup.send(explain(exc), ephemeral=True)
        return
    if isinstance(result, discord.Embed):
        await interaction.followup.send(embed=result, ephemeral=True)
    else:
        await interaction.followup.send(
            render.clip(result, 2000), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )


# ---------------------------------------------------------------------------------------------- /mod

mod = app_commands.Group(
    name="mod",
    description="Moderator tools: review queue, cases, overrides, appeals",
    default_permissions=MOD_PERMISSIONS,
    guild_only=True,
)


@mod.command(name="queue", description="Open cases waiting for a moderator")
async def mod_queue(interaction: discord.Interaction) -> None:
    async def work(member: Member) -> str:
        await _require(interaction, member, Role.MODERATOR, "queue")
        cases = await _bot(interaction).service.review_queue(PLATFORM, _guild_id(interaction))
        if not cases:
            return "The review queue is empty."
        return f"**{len(cases)} open case(s)**\n" + "\n".join(render.case_line(c) for c in cases)

    await _deferred(interaction, work)


@mod.command(name="case", description="Show one case: text, scores, thresholds, decision")
@app_commands.describe(case="Case number")
async def mod_case(interaction: discord.Interaction, case: int) -> None:
    async def work(member: Member) -> discord.Embed:
        await _require(interaction, member, Role.MODERATOR, f"case:{case}")
        found = await _bot(interaction).service.store.get_case(case)
        if found.server_id != _guild_id(interaction):  # another server's case: do not reveal it exists
            raise NotFound("case", case)
        return render.case_embed(found)

    await _deferred(interaction, work)


@mod.command(name="override", description="Record your verdict on a case (stored as a labelled example)")
@app_commands.describe(case="Case number", verdict="Your verdict", note="Optional note for the audit log")
async def mod_override(
    interaction: discord.Interaction,
    case: int,
    verdict: Literal["restore", "uphold", "delete", "timeout", "dismiss"],
    note: str = "",
) -> None:
    async def work(member: Member) -> str:
        resolved = await _bot(interaction).service.apply_override(case, member, Verdict(verdict), note=note)
        return f"Case {resolved.id}: {verdict} recorded."

    await _deferred(interaction, work)


@mod.command(name="history", description="A member's cases and live strikes")
@app_commands.describe(member="The member to look up")
async def mod_history(interaction: discord.Interaction, member: discord.User) -> None:
    async def work(moderator: Member) -> str:
        await _require(interaction, moderator, Role.MODERATOR, f"history:{member.id}")
        service = _bot(interaction).service
        guild = _guild_id(interaction)
        cases = await service.history(PLATFORM, guild, str(member.id))
        strikes = await service.live_strikes(PLATFORM, guild, str(member.id))
        head = f"**{member.display_name}**: {len(cases)} case(s), {strikes} live strike(s)"
        return "\n".join([head, *(render.case_line(c) for c in cases)])

    await _deferred(interaction, work)


@mod.command(name="appeals", description="Appeals waiting for a decision")
async def mod_appeals(interaction: discord.Interaction) -> None:
    async def work(member: Member) -> str:
        await _require(interaction, member, Role.MODERATOR, "appeals")
        appeals = await _bot(interaction).service.open_appeals(PLATFORM, _guild_id(interaction))
        if not appeals:
            return "No open appeals."
        return "\n".join(
            f"`appeal {a.id}` on case {a.case_id} by <@{a.member.user_id}>: {render.quote(a.text, 150)}"
            for a in appeals
        )

    await _deferred(interaction, work)


@mod.command(name="decide-appeal", description="Grant or deny an appeal (granting restores the message)")
@app_commands.describe(appeal="Appeal number", outcome="grant or deny", message="Told to the member")
async def mod_decide_appeal(
    interaction: discord.Interaction, appeal: int, outcome: Literal["grant", "deny"], message: str = ""
) -> None:
    async def work(member: Member) -> str:
        decided = await _bot(interaction).service.decide_appeal(appeal, member, outcome == "grant", message)
        return f"Appeal {decided.id}: {decided.outcome.value if decided.outcome else outcome}."

    await _deferred(interaction, work)


# ---------------------------------------------------------------------------------------------- /config

config = app_commands.Group(
    name="config",
    description="Server moderation settings (admins)",
    default_permissions=ADMIN_PERMISSIONS,
    guild_only=True,
)


@config.command(name="show", description="Show this server's moderation policy")
async def config_show(interaction: discord.Interaction) -> None:
    async def work(member: Member) -> str:
        await _require(interaction, member, Role.ADMIN, "config.show")
        policy = await _bot(interaction).service.store.get_policy(PLATFORM, _guild_id(interaction))
        return render.policy_text(policy)

    await _deferred(interaction, work)


async def label_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Labels, each with the thresholds that apply in the chosen channel now."""
    thresholds = {}
    if interaction.guild_id is not None:
        policy = await _bot(interaction).service.store.get_policy(PLATFORM, str(interaction.guild_id))
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
        policy = await _bot(interaction).service.set_threshold(
            PLATFORM, _guild_id(interaction), member, label=label, channel_id=str(channel.id), **kwargs
        )
        t = policy.for_channel(str(channel.id)).thresholds[label]
        return f"{channel.mention} {label}: review_at {t.review_at:.2f}, act_at {t.act_at:.2f}."

    await _deferred(interaction, work)


@config.command(name="action", description="What happens when a label crosses act_at in a channel")
async def config_action(
    interaction: discord.Interaction,
    channel: discord.TextChannel,
    action: Literal["delete", "timeout", "escalate"],
) -> None:
    async def work(member: Member) -> str:
        await _bot(interaction).service.set_channel_action(
            PLATFORM, _guild_id(interaction), member, str(channel.id), Action(action)
        )
        return f"{channel.mention}: action over act_at is now {action}."

    await _deferred(interaction, work)


@config.command(
    name="auto", description="Automatic action on/off (off = review-first: hold everything flagged)"
)
async def config_auto(
    interaction: discord.Interaction,
    enabled: Literal["on", "off"],
    channel: discord.TextChannel | None = None,
) -> None:
    async def work(member: Member) -> str:
        await _bot(interaction).service.set_auto_action(
            PLATFORM, _guild_id(interaction), member, enabled == "on", str(channel.id) if channel else None
        )
        return f"Automatic action {enabled} for {channel.mention if channel else 'the server'}."

    await _deferred(interaction, work)


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
        await _bot(interaction).service.set_exempt(
            PLATFORM, _guild_id(interaction), member, kind=kind, target_id=str(target.id), exempt=exempt
        )
        return f"{target.mention} is {'now' if exempt else 'no longer'} exempt."

    await _deferred(interaction, work)


@config.command(name="allow-term", description="Allow-list a term the model over-flags here (or remove it)")
async def config_allow_term(interaction: discord.Interaction, term: str, allowed: bool = True) -> None:
    async def work(member: Member) -> str:
        await _bot(interaction).service.set_allow_term(
            PLATFORM, _guild_id(interaction), member, term, allowed
        )
        return f"`{term}` {'allowed' if allowed else 'removed from the allow-list'}."

    await _deferred(interaction, work)


@config.command(name="ladder", description="Strike ladder: N strikes within D days → timeout for M minutes")
async def config_ladder(
    interaction: discord.Interaction,
    strikes: app_commands.Range[int, 1, 100],
    window_days: app_commands.Range[float, 0.1, 365.0],
    timeout_minutes: app_commands.Range[float, 0.0, 40320.0],
) -> None:
    async def work(member: Member) -> str:
        await _bot(interaction).service.set_ladder(
            PLATFORM,
            _guild_id(interaction),
            member,
            strikes=strikes,
            window_days=window_days,
            timeout_minutes=timeout_minutes,
        )
        return f"{strikes} strikes within {window_days:g} days → {timeout_minutes:g} min timeout."

    await _deferred(interaction, work)


@config.command(name="review-channel", description="Where held and escalated messages are posted for review")
async def config_review_channel(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
    async def work(member: Member) -> str:
        await _bot(interaction).service.set_review_channel(
            PLATFORM, _guild_id(interaction), member, str(channel.id)
        )
        return f"Review channel is now {channel.mention}."

    await _deferred(interaction, work)


@config.command(name="sync", description="Re-register chatmod's slash commands in this server")
async def config_sync(interaction: discord.Interaction) -> None:
    async def work(member: Member) -> str:
        await _require(interaction, member, Role.ADMIN, "config.sync")
        synced = await _bot(interaction).sync_commands([int(_guild_id(interaction))])
        return f"Synced {synced} command(s) to this server."

    await _deferred(interaction, work)


# ---------------------------------------------------------------------------------------------- /appeal


@app_commands.command(name="appeal", description="Appeal a moderation decision on one of your messages")
@app_commands.describe(case="Case number from your notice", reason="Why it should be reversed")
@app_commands.guild_only()
async def appeal(interaction: discord.Interaction, case: int, reason: str) -> None:
    await submit_appeal(interaction, case, reason)


COMMANDS: tuple[app_commands.Group | app_commands.Command, ...] = (mod, config, appeal)  # type: ignore[type-arg]
