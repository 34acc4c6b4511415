"""``/chatmod`` subcommands (mirroring Discord's): a pure parser from the command text to ``Command``.

Slack sends picked channels, users and groups escaped (``should_escape: true`` in the manifest) as
``<#C…|name>``, ``<@U…|name>`` and ``<!subteam^S…|@handle>``; ``ref_id`` takes the id out of either form.
Execution lives in ``executor.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from moderation.domain import Action, Verdict
from moderation.labels import LABELS
from moderation.policy import CHANNEL_ACTIONS

USAGE = """*chatmod* commands:
• `/chatmod queue` — open cases (moderators)
• `/chatmod case <id>` — one case (moderators)
• `/chatmod override <id> restore|uphold|delete|dismiss [note]` (moderators)
• `/chatmod history @member` (moderators)
• `/chatmod appeal <case id> <why>` — appeal a decision on your message
• `/chatmod appeals` · `/chatmod decide-appeal <appeal id> grant|deny [message]` (moderators)
• `/chatmod config show` (admins)
• `/chatmod config threshold <label> <review_at> <act_at> [#channel]` (admins)
• `/chatmod config action delete|hold|escalate|timeout [#channel]`
• `/chatmod config auto on|off [#channel]`
• `/chatmod config exempt channel #channel|role @group on|off`
• `/chatmod config allow-term <term> [on|off]`
• `/chatmod config ladder <strikes> <window days> <timeout minutes>`
• `/chatmod config review-channel #channel|off`"""


class UsageError(ValueError):
    """The command text does not parse; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # e.g. "queue", "override", "config.threshold", "appeal.decide"
    args: dict[str, object] = field(default_factory=dict)


_REF = re.compile(r"^<([#@!])([^|>]*)(?:\|([^>]*))?>$")


def ref_id(token: str, kind: str) -> str:
    """``<#C123|general>``, ``<@U123|bob>``, ``<!subteam^S123|@mods>`` or a bare id → the id."""
    m = _REF.match(token)
    if m:
        sigil, target = m.group(1), m.group(2)
        if sigil == "!" and target.startswith("subteam^"):
            return target.removeprefix("subteam^")
        if sigil in "#@":
            return target
        raise UsageError(f"`{token}` is not a {kind}")
    token = token.lstrip("#@")
    if re.fullmatch(r"[A-Z0-9]{6,}", token):
        return token
    raise UsageError(f"`{token}` is not a {kind} (pick it from the autocomplete so Slack sends its id)")


def _int(token: str, what: str) -> int:
    token = token.lstrip("#")
    if not token.isdigit():
        raise UsageError(f"{what} must be a number, got `{token}`")
    return int(token)


def _float(token: str, what: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise UsageError(f"{what} must be a number, got `{token}`") from None


def _onoff(token: str) -> bool:
    if token.lower() in ("on", "yes", "true", "enable", "add"):
        return True
    if token.lower() in ("off", "no", "false", "disable", "remove"):
        return False
    raise UsageError(f"expected on|off, got `{token}`")


def parse(text: str) -> Command:
    """Parse the text after ``/chatmod``. Pure; raises UsageError with guidance."""
    words = text.strip().split()
    if not words or words[0].lower() in ("help", "?"):
        return Command("help")
    head, rest = words[0].lower(), words[1:]
    if head == "queue":
        return Command("queue")
    if head == "case":
        if len(rest) != 1:
            raise UsageError("usage: `/chatmod case <id>`")
        return Command("case", {"case_id": _int(rest[0], "case id")})
    if head == "override":
        if len(rest) < 2:
            raise UsageError("usage: `/chatmod override <id> restore|uphold|delete|dismiss [note]`")
        verdict = rest[1].lower()
        if verdict == "timeout":
            raise UsageError("Slack has no member timeout: use `delete` (a strike is recorded)")
        try:
            v = Verdict(verdict)
        except ValueError:
            raise UsageError("verdict must be restore, uphold, delete or dismiss") from None
        note = text.strip().split(maxsplit=3)[3] if len(rest) > 2 else ""
        return Command("override", {"case_id": _int(rest[0], "case id"), "verdict": v, "note": note})
    if head == "history":
        if len(rest) != 1:
            raise UsageError("usage: `/chatmod history @member`")
        return Command("history", {"user_id": ref_id(rest[0], "member")})
    if head == "appeal":
        return _parse_appeal(text, rest)
    if head == "appeals":  # Discord's /mod appeals
        return Command("appeal.list")
    if head == "decide-appeal":  # Discord's /mod decide-appeal <appeal> grant|deny [message]
        if len(rest) < 2 or rest[1].lower() not in ("grant", "deny"):
            raise UsageError("usage: `/chatmod decide-appeal <appeal id> grant|deny [message]`")
        message = text.strip().split(maxsplit=3)[3] if len(rest) > 2 else ""
        return Command(
            "appeal.decide",
            {
                "appeal_id": _int(rest[0], "appeal id"),
                "granted": rest[1].lower() == "grant",
                "message": message,
            },
        )
    if head == "config":
        return _parse_config(rest)
    raise UsageError(f"unknown subcommand `{head}`; try `/chatmod help`")


def _parse_appeal(text: str, rest: list[str]) -> Command:
    if rest and rest[0].lower() == "list":
        return Command("appeal.list")
    if rest and rest[0].lower() in ("grant", "deny"):
        if len(rest) < 2:
            raise UsageError("usage: `/chatmod appeal grant|deny <appeal id> [message]`")
        message = text.strip().split(maxsplit=3)[3] if len(rest) > 2 else ""
        return Command(
            "appeal.decide",
            {
                "appeal_id": _int(rest[1], "appeal id"),
                "granted": rest[0].lower() == "grant",
                "message": message,
            },
        )
    if len(rest) < 2:
        raise UsageError("usage: `/chatmod appeal <case id> <why the decision is wrong>`")
    why = text.strip().split(maxsplit=2)[2]
    return Command("appeal.submit", {"case_id": _int(rest[0], "case id"), "text": why})


def _channel_arg(rest: list[str], index: int) -> str | None:
    return ref_id(rest[index], "channel") if len(rest) > index else None


def _parse_config(rest: list[str]) -> Command:
    if not rest:
        raise UsageError(USAGE)
    what, args = rest[0].lower(), rest[1:]
    if what == "show":
        return Command("config.show")
    if what == "threshold":
        usage = (
            "usage: `/chatmod config threshold <label> <review_at> <act_at> [#channel]` or "
            f"`… <label> review_at|act_at <value> [#channel]`; labels: {', '.join(LABELS)}"
        )
        if len(args) not in (3, 4) or args[0] not in LABELS:
            raise UsageError(usage)
        if args[1].lower() in ("review_at", "act_at"):  # one tier, as Discord's /config threshold
            tier = args[1].lower()
            value = _float(args[2], tier)
            return Command(
                "config.threshold",
                {
                    "label": args[0],
                    "review_at": value if tier == "review_at" else None,
                    "act_at": value if tier == "act_at" else None,
                    "channel_id": _channel_arg(args, 3),
                },
            )
        return Command(
            "config.threshold",
            {
                "label": args[0],
                "review_at": _float(args[1], "review_at"),
                "act_at": _float(args[2], "act_at"),
                "channel_id": _channel_arg(args, 3),
            },
        )
    if what == "action":
        names = [a.value for a in CHANNEL_ACTIONS]
        if not args or args[0].lower() not in names:
            raise UsageError(f"usage: `/chatmod config action {'|'.join(names)} [#channel]`")
        return Command(
            "config.action", {"action": Action(args[0].lower()), "channel_id": _channel_arg(args, 1)}
        )
    if what == "auto":
        if not args:
            raise UsageError("usage: `/chatmod config auto on|off [#channel]`")
        return Command("config.auto", {"enabled": _onoff(args[0]), "channel_id": _channel_arg(args, 1)})
    if what == "exempt":
        if len(args) != 3 or args[0].lower() not in ("channel", "role"):
            raise UsageError("usage: `/chatmod config exempt channel #channel|role @group on|off`")
        kind = args[0].lower()
        return Command(
            "config.exempt",
            {
                "kind": kind,
                "target_id": ref_id(args[1], "channel" if kind == "channel" else "user group"),
                "exempt": _onoff(args[2]),
            },
        )
    if what == "allow-term":
        if not args:
            raise UsageError("usage: `/chatmod config allow-term <term> [on|off]`")
        allowed = True
        if len(args) > 1 and args[-1].lower() in ("on", "off", "add", "remove"):
            allowed = _onoff(args[-1])
            args = args[:-1]
        return Command("config.allow_term", {"term": " ".join(args), "allowed": allowed})
    if what == "ladder":
        if len(args) != 3:
            raise UsageError("usage: `/chatmod config ladder <strikes> <window days> <timeout minutes>`")
        return Command(
            "config.ladder",
            {
                "strikes": _int(args[0], "strikes"),
                "window_days": _float(args[1], "window days"),
                "timeout_minutes": _float(args[2], "timeout minutes"),
            },
        )
    if what == "review-channel":
        if len(args) != 1:
            raise UsageError("usage: `/chatmod config review-channel #channel|off`")
        channel = None if args[0].lower() in ("off", "none") else ref_id(args[0], "channel")
        return Command("config.review_channel", {"channel_id": channel})
    raise UsageError(f"unknown config setting `{what}`; try `/chatmod help`")
