"""Slash commands: /mod (moderators) and /appeal (members); /config (admins) is in config_commands.py.

``default_permissions`` only hides commands from members by default (server admins can widen it in
Server Settings → Integrations), so every command re-checks the role itself: writes through the
service (which audits a refusal), reads through ``require_role`` below (audited the same way). Replies are
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
from moderation.domain import AuditEntry, Member, Role, Verdict
from moderation.errors import ModerationError, NotFound, PermissionDenied
from moderation.service import actor_id, require

if TYPE_CHECKING:
    from bot.adapters.discord.bot import ChatmodDiscordBot

log = logging.getLogger(__name__)

MOD_PERMISSIONS = discord.Permissions(manage_messages=True)
ADMIN_PERMISSIONS = discord.Permissions(manage_guild=True)


def bot_of(interaction: discord.Interaction) -> ChatmodDiscordBot:
    return interaction.client  # type: ignore[return-value]


def guild_id_of(interaction: discord.Interaction) -> str:
    if interaction.guild_id is None:  # guild_only commands: Discord never sends these from DMs
        raise PermissionDenied("guild", "dm")
    return str(interaction.guild_id)


async def require_role(interaction: discord.Interaction, member: Member, role: Role, subject: str) -> None:
    try:
        require(member, role)
    except PermissionDenied:
        bot = bot_of(interaction)
        await bot.service.store.append(
            AuditEntry(
                bot.clock_now(),
                actor_id(member),
                "permission.denied",
                guild_id_of(interaction),
                subject,
                {"required": role.value, "via": "discord"},
            )
        )
        raise


async def deferred(
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
        await require_role(interaction, member, Role.MODERATOR, "queue")
        cases = await bot_of(interaction).service.review_queue(PLATFORM, guild_id_of(interaction))
        if not cases:
            return "The review queue is empty."
        return f"**{len(cases)} open case(s)**\n" + "\n".join(render.case_line(c) for c in cases)

    await deferred(interaction, work)


@mod.command(name="case", description="Show one case: text, scores, thresholds, decision")
@app_commands.describe(case="Case number")
async def mod_case(interaction: discord.Interaction, case: int) -> None:
    async def work(member: Member) -> discord.Embed:
        await require_role(interaction, member, Role.MODERATOR, f"case:{case}")
        found = await bot_of(interaction).service.store.get_case(case)
        if found.server_id != guild_id_of(interaction):  # another server's case: do not reveal it exists
            raise NotFound("case", case)
        return render.case_embed(found)

    await deferred(interaction, work)


@mod.command(name="override", description="Record your verdict on a case (stored as a labelled example)")
@app_commands.describe(case="Case number", verdict="Your verdict", note="Optional note for the audit log")
async def mod_override(
    interaction: discord.Interaction,
    case: int,
    verdict: Literal["restore", "uphold", "delete", "timeout", "dismiss"],
    note: str = "",
) -> None:
    async def work(member: Member) -> str:
        resolved = await bot_of(interaction).service.apply_override(case, member, Verdict(verdict), note=note)
        return f"Case {resolved.id}: {verdict} recorded."

    await deferred(interaction, work)


@mod.command(name="history", description="A member's cases and live strikes")
@app_commands.describe(member="The member to look up")
async def mod_history(interaction: discord.Interaction, member: discord.User) -> None:
    async def work(moderator: Member) -> str:
        await require_role(interaction, moderator, Role.MODERATOR, f"history:{member.id}")
        service = bot_of(interaction).service
        guild = guild_id_of(interaction)
        cases = await service.history(PLATFORM, guild, str(member.id))
        strikes = await service.live_strikes(PLATFORM, guild, str(member.id))
        head = f"**{member.display_name}**: {len(cases)} case(s), {strikes} live strike(s)"
        return "\n".join([head, *(render.case_line(c) for c in cases)])

    await deferred(interaction, work)


@mod.command(name="appeals", description="Appeals waiting for a decision")
async def mod_appeals(interaction: discord.Interaction) -> None:
    async def work(member: Member) -> str:
        await require_role(interaction, member, Role.MODERATOR, "appeals")
        appeals = await bot_of(interaction).service.open_appeals(PLATFORM, guild_id_of(interaction))
        if not appeals:
            return "No open appeals."
        return "\n".join(
            f"`appeal {a.id}` on case {a.case_id} by <@{a.member.user_id}>: {render.quote(a.text, 150)}"
            for a in appeals
        )

    await deferred(interaction, work)


@mod.command(name="decide-appeal", description="Grant or deny an appeal (granting restores the message)")
@app_commands.describe(appeal="Appeal number", outcome="grant or deny", message="Told to the member")
async def mod_decide_appeal(
    interaction: discord.Interaction, appeal: int, outcome: Literal["grant", "deny"], message: str = ""
) -> None:
    async def work(member: Member) -> str:
        decided = await bot_of(interaction).service.decide_appeal(appeal, member, outcome == "grant", message)
        return f"Appeal {decided.id}: {decided.outcome.value if decided.outcome else outcome}."

    await deferred(interaction, work)


# ---------------------------------------------------------------------------------------------- /appeal


@app_commands.command(name="appeal", description="Appeal a moderation decision on one of your messages")
@app_commands.describe(case="Case number from your notice", reason="Why it should be reversed")
@app_commands.guild_only()
async def appeal(interaction: discord.Interaction, case: int, reason: str) -> None:
    await submit_appeal(interaction, case, reason)
