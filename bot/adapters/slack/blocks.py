"""Block Kit payloads: the review card, member notices, the appeal modal, reposts. Pure builders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.adapters.slack.convert import escape
from moderation.domain import Action, Appeal, AppealOutcome, Case, Verdict
from moderation.labels import LABEL_DESCRIPTIONS
from moderation.ports import Notice

Block = dict[str, Any]

#: action_ids of the interactive elements (the listeners match on these).
RESTORE, DELETE, DISMISS, APPEAL = "chatmod_restore", "chatmod_delete", "chatmod_dismiss", "chatmod_appeal"
REVIEW_BUTTONS: Mapping[str, Verdict] = {
    RESTORE: Verdict.RESTORE,
    DELETE: Verdict.DELETE,
    DISMISS: Verdict.DISMISS,
}
APPEAL_MODAL = "chatmod_appeal_modal"
APPEAL_INPUT_BLOCK, APPEAL_INPUT_ACTION = "appeal_text", "text"

#: Slack rejects section text over 3,000 characters.
_MAX_QUOTE = 2_800

_ACTION_WORDS = {
    Action.ALLOW: "allowed",
    Action.HOLD: "held for review",
    Action.DELETE: "removed",
    Action.TIMEOUT: "removed",
    Action.ESCALATE: "flagged for moderators",
}


def clip(text: str, limit: int) -> str:
    """Cut mrkdwn to ``limit`` characters without splitting an &-entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def quote(text: str | None, limit: int = _MAX_QUOTE) -> str:
    """A member's text as a mrkdwn block quote (escaped, so it cannot ping anyone), within ``limit``."""
    if text is None:
        return "_(text erased after the retention window)_"
    quoted = "\n".join("> " + line for line in (escape(text).splitlines() or [""]))
    return clip(quoted, limit)


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def score_lines(case: Case) -> str:
    """One line per label: score, the thresholds that applied, and which tier it crossed."""
    hits = {h.label: h.tier for h in case.decision.hits}
    lines = []
    for label, score in sorted(case.scores.items(), key=lambda kv: -kv[1]):
        review_at, act_at = case.decision.thresholds.get(label, (None, None))
        limits = f"review ≥{review_at:.2f} act ≥{act_at:.2f}" if review_at is not None else ""
        mark = f"  ◀ {hits[label]}" if label in hits else ""
        lines.append(f"{label:<14} {score:.2f}  {limits}{mark}")
    return "```" + "\n".join(lines) + "```" if lines else "_no scores (scoring unavailable)_"


def evidence_text(evidence: Mapping[str, Sequence[str]]) -> str:
    words: dict[str, list[str]] = {}
    for label, ws in evidence.items():
        for w in ws:
            words.setdefault(w, []).append(label)
    text = ", ".join(
        f"`{escape(w)}` ({', '.join(sorted(set(labels)))})" for w, labels in sorted(words.items())
    )
    return clip(text, 2_000)


def review_card(
    case: Case,
    *,
    evidence: Mapping[str, Sequence[str]] | None = None,
    can_remove: bool = True,
    resolved: tuple[Verdict, str] | None = None,
    note: str = "",
) -> tuple[str, list[Block]]:
    """The review-channel message for a case: (fallback text, blocks)."""
    d = case.decision
    action = f"`{d.action.value}`" + (f" (wanted `{d.degraded_from.value}`)" if d.degraded_from else "")
    top = f"{d.category} {case.scores.get(d.category, 0.0):.2f}" if d.category else "-"
    header = f"Case #{case.id} · {_ACTION_WORDS[d.action]}"
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}},
        _section(f"<@{case.author.user_id}> in <#{case.key.channel_id}>:\n{quote(case.text)}"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Decision*\n{action}"},
                {"type": "mrkdwn", "text": f"*Reason*\n`{d.reason}`"},
                {"type": "mrkdwn", "text": f"*Top label*\n{top}"},
                {"type": "mrkdwn", "text": f"*Model*\n`{d.model_version or 'none'}`"},
            ],
        },
        _section(f"*Scores* (thresholds that applied)\n{score_lines(case)}"),
    ]
    if evidence:
        blocks.append(_section(f"*Words that drove it*: {evidence_text(evidence)}"))
    if not can_remove:
        blocks.append(
            _context(
                "chatmod has no admin user token in this workspace, so it cannot remove members' "
                "messages: *Delete* records the verdict and a strike; remove the message by hand."
            )
        )
    if note:
        blocks.append(_context(escape(note)))
    if resolved is None:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"chatmod_review_{case.id}",
                "elements": [
                    _button("Restore", RESTORE, case.id, style="primary"),
                    _button(
                        "Delete",
                        DELETE,
                        case.id,
                        style="danger",
                        confirm=("Delete this message?", "The member gets a strike."),
                    ),
                    _button("Dismiss", DISMISS, case.id),
                ],
            }
        )
    else:
        verdict, moderator_id = resolved
        blocks.append(_section(f":white_check_mark: *{verdict.value.capitalize()}* by <@{moderator_id}>"))
    return f"{header}: {d.reason}", blocks


def _button(
    text: str,
    action_id: str,
    case_id: int,
    *,
    style: str | None = None,
    confirm: tuple[str, str] | None = None,
) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": str(case_id),
    }
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = {
            "title": {"type": "plain_text", "text": confirm[0]},
            "text": {"type": "plain_text", "text": confirm[1]},
            "confirm": {"type": "plain_text", "text": "Yes"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return button


def notice(case: Case, n: Notice, *, degraded: bool) -> tuple[str, list[Block]]:
    """The private notice a member gets: what happened, the rule, their own text, and an Appeal button."""
    what = _ACTION_WORDS[n.action]
    head = f"Your message in <#{case.key.channel_id}> was *{what}*"
    if n.category:
        head += f" ({LABEL_DESCRIPTIONS.get(n.category, n.category)})"
    if degraded:
        head += ". Moderators will review it"
    lines = [head + ".", f"Rule: {escape(n.rule)}" if n.rule else "", quote(n.text, 2_400)]
    blocks: list[Block] = [_section("\n".join(line for line in lines if line))]
    if n.appealable:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"chatmod_notice_{n.case_id}",
                "elements": [_button("Appeal", APPEAL, n.case_id)],
            }
        )
    blocks.append(_context(f"Case #{n.case_id} · you can also type `/chatmod appeal {n.case_id} <why>`"))
    return f"Your message was {what} (case #{n.case_id}).", blocks


def appeal_modal(case_id: int) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": APPEAL_MODAL,
        "private_metadata": str(case_id),
        "title": {"type": "plain_text", "text": f"Appeal case #{case_id}"[:24]},
        "submit": {"type": "plain_text", "text": "Send appeal"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": APPEAL_INPUT_BLOCK,
                "label": {"type": "plain_text", "text": "Why should this decision be reversed?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": APPEAL_INPUT_ACTION,
                    "multiline": True,
                    "max_length": 2000,
                },
            }
        ],
    }


def repost(case: Case) -> tuple[str, list[Block]]:
    """A restored message, posted by the bot and attributed to its author."""
    text = escape(case.text or "")
    return (
        f"Restored message from <@{case.author.user_id}>: {text}"[:3000],
        [
            _section(clip(text, _MAX_QUOTE) or " "),
            _context(f"Originally posted by <@{case.author.user_id}> · restored by a moderator after review"),
        ],
    )


def appeal_outcome(case: Case, appeal: Appeal) -> str:
    granted = appeal.outcome is AppealOutcome.GRANTED
    text = f"Your appeal #{appeal.id} on case #{case.id} was *{'granted' if granted else 'denied'}*." + (
        " Your message has been restored and the strike removed." if granted else ""
    )
    if appeal.message:
        text += f"\nModerator's note: {escape(appeal.message)}"
    return text
