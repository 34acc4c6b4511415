"""Persistent buttons (review verdicts, appeals) and the appeal form.

Buttons are ``DynamicItem``s: their state (verdict, case id) lives in the ``custom_id``, so a review
post made before a restart still works after it — the bot registers the templates in ``setup_hook``.
The clicking member's role is re-checked by the service (``PermissionDenied`` is audited there):
Discord's command permissions are only a default an admin can widen, and buttons have none at all.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from bot.adapters.discord.convert import member_from_interaction
from moderation.domain import Role, Verdict
from moderation.errors import InvalidTransition, ModerationError, NotFound, PermissionDenied, ValidationError

if TYPE_CHECKING:
    from bot.adapters.discord.bot import ChatmodDiscordBot

log = logging.getLogger(__name__)

_REVIEW_BUTTONS = (
    (Verdict.RESTORE, "Restore", discord.ButtonStyle.success),
    (Verdict.DELETE, "Delete", discord.ButtonStyle.danger),
    (Verdict.TIMEOUT, "Timeout", discord.ButtonStyle.danger),
    (Verdict.DISMISS, "Dismiss", discord.ButtonStyle.secondary),
)
_LABELS = {v: (label, style) for v, label, style in _REVIEW_BUTTONS}


def explain(exc: ModerationError) -> str:
    """A short, member-facing sentence for a refused operation."""
    if isinstance(exc, PermissionDenied):
        if exc.required == "author":
            return "Only the author of that message can appeal it."
        return f"You need the {exc.required} role for this (checked by chatmod). This attempt was logged."
    if isinstance(exc, NotFound):
        return f"No {exc.kind} {exc.key}."
    if isinstance(exc, ValidationError):
        return f"Invalid {exc.field}: {exc.message}"
    if isinstance(exc, InvalidTransition):
        return str(exc)
    return f"Could not do that: {exc}"


def _bot(interaction: discord.Interaction) -> ChatmodDiscordBot:
    return interaction.client  # type: ignore[return-value]


class ReviewButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"chatmod:review:(?P<verdict>restore|delete|timeout|dismiss):(?P<case_id>[0-9]+)",
):
    def __init__(self, verdict: Verdict, case_id: int) -> None:
        label, style = _LABELS[verdict]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"chatmod:review:{verdict.value}:{case_id}")
        )
        self.verdict = verdict
        self.case_id = case_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ReviewButton:
        return cls(Verdict(match["verdict"]), int(match["case_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await review_click(interaction, self.case_id, self.verdict)


async def review_click(interaction: discord.Interaction, case_id: int, verdict: Verdict) -> None:
    bot = _bot(interaction)
    moderator = member_from_interaction(interaction)
    await interaction.response.defer(ephemeral=True, thinking=True)
    if interaction.message is not None and interaction.channel_id is not None:
        bot.actions.remember_review_post(case_id, interaction.channel_id, interaction.message.id)
    try:
        case = await bot.service.store.get_case(case_id)
        if case.status == "resolved" and moderator.has(Role.MODERATOR):
            verdict_done = case.verdict.value if case.verdict else "resolved"
            await interaction.followup.send(
                f"Case {case_id} was already decided ({verdict_done}).", ephemeral=True
            )
            return
        await bot.service.apply_override(case_id, moderator, verdict, note="review button")
    except ModerationError as exc:
        log.info("review click %s on case %s by %s refused: %s", verdict, case_id, moderator.user_id, exc)
        await interaction.followup.send(explain(exc), ephemeral=True)
        return
    await interaction.followup.send(f"Case {case_id}: {verdict.value} recorded.", ephemeral=True)


def review_view(case_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for verdict, _, _ in _REVIEW_BUTTONS:
        view.add_item(ReviewButton(verdict, case_id))
    return view


class AppealButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"chatmod:appeal:(?P<case_id>[0-9]+)"
):
    def __init__(self, case_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Appeal", style=discord.ButtonStyle.primary, custom_id=f"chatmod:appeal:{case_id}"
            )
        )
        self.case_id = case_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> AppealButton:
        return cls(int(match["case_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(AppealModal(self.case_id))


class AppealModal(discord.ui.Modal):
    def __init__(self, case_id: int) -> None:
        super().__init__(
            title=f"Appeal case {case_id}", custom_id=f"chatmod:appeal-form:{case_id}", timeout=900
        )
        self.case_id = case_id
        self.reason: discord.ui.TextInput[AppealModal] = discord.ui.TextInput(
            label="Why should this be reversed?",
            style=discord.TextStyle.paragraph,
            max_length=1000,
            custom_id="reason",
        )
        self.add_item(self.reason)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await submit_appeal(interaction, self.case_id, self.reason.value)


async def submit_appeal(interaction: discord.Interaction, case_id: int, text: str) -> None:
    """Shared by the Appeal button's form and ``/appeal``."""
    bot = _bot(interaction)
    member = member_from_interaction(interaction)
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        appeal = await bot.service.submit_appeal(case_id, member, text)
        case = await bot.service.store.get_case(case_id)
    except ModerationError as exc:
        await interaction.followup.send(explain(exc), ephemeral=True)
        return
    await interaction.followup.send(
        f"Appeal {appeal.id} on case {case_id} submitted. Moderators will decide; you will get a DM.",
        ephemeral=True,
    )
    try:
        await bot.actions.post_appeal(case, appeal)
    except ModerationError as exc:
        log.warning("could not post appeal %s to the review channel: %s", appeal.id, exc)


def appeal_view(case_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AppealButton(case_id))
    return view


class AppealDecisionButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"chatmod:appeal-decide:(?P<outcome>grant|deny):(?P<appeal_id>[0-9]+)",
):
    def __init__(self, grant: bool, appeal_id: int) -> None:
        outcome = "grant" if grant else "deny"
        super().__init__(
            discord.ui.Button(
                label="Grant appeal" if grant else "Deny appeal",
                style=discord.ButtonStyle.success if grant else discord.ButtonStyle.danger,
                custom_id=f"chatmod:appeal-decide:{outcome}:{appeal_id}",
            )
        )
        self.grant = grant
        self.appeal_id = appeal_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> AppealDecisionButton:
        return cls(match["outcome"] == "grant", int(match["appeal_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        moderator = member_from_interaction(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            appeal = await bot.service.decide_appeal(self.appeal_id, moderator, self.grant)
        except ModerationError as exc:
            await interaction.followup.send(explain(exc), ephemeral=True)
            return
        outcome = appeal.outcome.value if appeal.outcome else "decided"
        await interaction.followup.send(f"Appeal {self.appeal_id} {outcome}.", ephemeral=True)
        if interaction.message is not None:
            embed = interaction.message.embeds[0] if interaction.message.embeds else discord.Embed()
            embed.add_field(name="Decision", value=f"{outcome} by <@{moderator.user_id}>", inline=False)
            try:
                await interaction.message.edit(embed=embed, view=None)
            except discord.HTTPException as exc:
                log.warning("could not update appeal post %s: %s", self.appeal_id, exc)


def appeal_decision_view(appeal_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AppealDecisionButton(True, appeal_id))
    view.add_item(AppealDecisionButton(False, appeal_id))
    return view


DYNAMIC_ITEMS = (ReviewButton, AppealButton, AppealDecisionButton)
