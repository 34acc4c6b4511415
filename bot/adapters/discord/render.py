"""What moderators and members see: embeds and short texts built from domain objects."""

from __future__ import annotations

from collections.abc import Mapping

import discord

from moderation.domain import Action, Appeal, Case, Member, Verdict
from moderation.labels import LABEL_DESCRIPTIONS, LABELS
from moderation.policy import ServerPolicy
from moderation.ports import Notice

REVIEW_COLOUR = {
    Action.HOLD: discord.Colour.orange(),
    Action.DELETE: discord.Colour.red(),
    Action.TIMEOUT: discord.Colour.dark_red(),
    Action.ESCALATE: discord.Colour.gold(),
    Action.ALLOW: discord.Colour.green(),
}
_ACTION_WORDS = {
    Action.HOLD: "held for review (removed from the channel)",
    Action.DELETE: "deleted",
    Action.TIMEOUT: "deleted and member timed out",
    Action.ESCALATE: "left in place, moderators alerted",
    Action.ALLOW: "allowed",
}
_VERDICT_WORDS = {
    Verdict.RESTORE: "restored",
    Verdict.UPHOLD: "upheld",
    Verdict.DELETE: "deleted",
    Verdict.TIMEOUT: "deleted and timed out",
    Verdict.DISMISS: "dismissed",
}
RESTORED_MARKER = "-# ↩ restored by moderators"
FOOTER_PREFIX = "chatmod case "


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str | None, limit: int = 1000) -> str:
    if text is None:
        return "*(text erased after the retention window)*"
    if not text.strip():
        return "*(no text)*"
    return clip(discord.utils.escape_mentions(text), limit)


def jump_url(case: Case) -> str:
    return f"https://discord.com/channels/{case.server_id}/{case.key.channel_id}/{case.key.message_id}"


def score_lines(case: Case) -> str:
    thresholds = case.decision.thresholds
    lines = []
    for label in LABELS:
        if label not in case.scores:
            continue
        review, act = thresholds.get(label, (None, None))
        tiers = f" (review {review:.2f} / act {act:.2f})" if review is not None and act is not None else ""
        hit = "**" if any(h.label == label for h in case.decision.hits) else ""
        lines.append(f"{hit}{label}{hit}: {case.scores[label]:.2f}{tiers}")
    return "\n".join(lines) or "*(not scored: " + case.decision.reason + ")*"


def review_embed(case: Case, evidence: Mapping[str, tuple[str, ...]] | None = None) -> discord.Embed:
    """The review-channel post of a held or escalated case."""
    decision = case.decision
    embed = discord.Embed(
        title=f"Case {case.id}: {decision.category or decision.reason}",
        description=quote(case.text, 3500),
        colour=REVIEW_COLOUR.get(decision.action, discord.Colour.greyple()),
        url=jump_url(case),
        timestamp=case.decided_at,
    )
    embed.set_author(
        name=f"{case.author.display_name} ({case.author.user_id})", icon_url=case.author.avatar_url
    )
    embed.add_field(name="Author", value=f"<@{case.author.user_id}>", inline=True)
    embed.add_field(name="Channel", value=f"<#{case.key.channel_id}>", inline=True)
    embed.add_field(name="Action", value=_ACTION_WORDS[decision.action], inline=True)
    embed.add_field(name="Scores (thresholds)", value=clip(score_lines(case), 1024), inline=False)
    if evidence:
        words = "\n".join(f"{label}: {', '.join(dict.fromkeys(ws))}" for label, ws in evidence.items() if ws)
        if words:
            embed.add_field(name="Words that drove it", value=clip(words, 1024), inline=False)
    embed.add_field(name="Model", value=decision.model_version or "—", inline=True)
    embed.add_field(name="Reason", value=decision.reason, inline=True)
    if decision.degraded_from is not None:
        embed.add_field(name="Degraded from", value=decision.degraded_from.value, inline=True)
    embed.set_footer(text=f"{FOOTER_PREFIX}{case.id}")
    return embed


def resolved_embed(
    case: Case, verdict: Verdict, moderator: Member, base: discord.Embed | None = None
) -> discord.Embed:
    embed = base.copy() if base is not None else review_embed(case)
    embed.colour = (
        discord.Colour.green()
        if verdict in (Verdict.RESTORE, Verdict.DISMISS)
        else discord.Colour.dark_grey()
    )
    embed.add_field(
        name="Decision",
        value=f"{_VERDICT_WORDS[verdict]} by <@{moderator.user_id}> ({moderator.display_name})",
        inline=False,
    )
    return embed


def notice_embed(case: Case, notice: Notice, guild_name: str) -> discord.Embed:
    """The private notice a member receives."""
    what = _ACTION_WORDS.get(notice.action, notice.action.value)
    embed = discord.Embed(
        title=f"Your message in {guild_name} was {what.split(' (')[0]}",
        colour=REVIEW_COLOUR.get(notice.action, discord.Colour.orange()),
    )
    category = LABEL_DESCRIPTIONS.get(notice.category or "", notice.category or "—")
    embed.add_field(name="Category", value=category, inline=False)
    embed.add_field(name="Rule", value=notice.rule or "—", inline=False)
    embed.add_field(name="Your message", value=quote(notice.text), inline=False)
    if notice.appealable:
        embed.add_field(
            name="Appeal",
            value=f"Press **Appeal** below, or use `/appeal case:{case.id}` in the server.",
            inline=False,
        )
    embed.set_footer(text=f"{FOOTER_PREFIX}{case.id}")
    return embed


def channel_notice(case: Case, notice: Notice) -> str:
    """Short public notice when DMs are closed: no text, no scores, deletes itself."""
    what = "held for review" if notice.action is Action.HOLD else "removed"
    category = LABEL_DESCRIPTIONS.get(notice.category or "", "a rule")
    return (
        f"<@{case.author.user_id}>, a message of yours was {what} ({category}). "
        f"Your DMs are closed; you can appeal with `/appeal case:{case.id}`."
    )


def appeal_outcome_text(case: Case, appeal: Appeal) -> str:
    outcome = appeal.outcome.value if appeal.outcome else "decided"
    extra = f"\n> {clip(appeal.message, 500)}" if appeal.message else ""
    return f"Your appeal {appeal.id} on case {case.id} was **{outcome}**.{extra}"


def case_line(case: Case) -> str:
    top = case.decision.category or case.decision.reason
    verdict = f" → {case.verdict.value}" if case.verdict else ""
    return (
        f"`#{case.id}` {case.decision.action.value}{verdict} · {top} · <@{case.author.user_id}> in "
        f"<#{case.key.channel_id}> · {clip(quote(case.text, 80), 80)}"
    )


def case_embed(case: Case) -> discord.Embed:
    embed = review_embed(case)
    embed.add_field(name="Status", value=case.status + (f" ({case.verdict.value})" if case.verdict else ""))
    return embed


def policy_text(policy: ServerPolicy) -> str:
    lines = [
        f"automatic action: **{'on' if policy.auto_action else 'off (review-first)'}**, "
        f"default action: **{policy.action.value}**",
        f"review channel: {f'<#{policy.review_channel_id}>' if policy.review_channel_id else '*not set*'}",
        "thresholds (review_at / act_at): "
        + ", ".join(f"{label} {t.review_at:.2f}/{t.act_at:.2f}" for label, t in policy.thresholds.items()),
    ]
    for ch in policy.channels.values():
        parts = [f"{label} {t.review_at:.2f}/{t.act_at:.2f}" for label, t in ch.thresholds.items()]
        if ch.action:
            parts.append(f"action {ch.action.value}")
        if ch.auto_action is not None:
            parts.append(f"auto {'on' if ch.auto_action else 'off'}")
        lines.append(f"<#{ch.channel_id}>: " + (", ".join(parts) or "defaults"))
    exempt = [f"<@&{r}>" for r in sorted(policy.exempt_role_ids)]
    exempt += [f"<#{c}>" for c in sorted(policy.exempt_channel_ids)]
    lines.append("exempt: " + (", ".join(exempt) or "none"))
    lines.append("allowed terms: " + (", ".join(f"`{t}`" for t in policy.allow_terms) or "none"))
    steps = ", ".join(
        f"{s.strikes} strikes → {s.action.value} {s.timeout_seconds // 60} min" for s in policy.ladder.steps
    )
    lines.append(f"strike ladder: {steps or 'none'} within {policy.ladder.window.days} days")
    return "\n".join(lines)
