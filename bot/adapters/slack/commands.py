"""``/chatmod`` subcommands (mirroring Discord's): a pure parser and executors over the service.

Replies are ephemeral text. Roles are enforced by the service (audited); the read-only queries, which
the service does not guard, are checked here with the same ``require`` and audited the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from moderation.domain import Action, AuditEntry, Case, Member, Platform, Role, Verdict
from moderation.errors import (
    InvalidTransition,
    ModerationError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from moderation.labels import LABELS
from moderation.policy import CHANNEL_ACTIONS
from moderation.service import ModerationService, actor_id, require

USAGE = """*chatmod* commands:
• `/chatmod queue` — open cases (moderators)
• `/chatmod case <id>` — one case (moderators)
• `/chatmod override <id> restore|uphold|delete|dismiss [note]` (moderators)
• `/chatmod history @member` (moderators)
• `/chatmod appeal <case id> <why>` — appeal a decision on your message
• `/chatmod appeal list` · `/chatmod appeal grant|deny <appeal id> [message]` (moderators)
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
    if what == "threshold":
        if len(args) not in (3, 4) or args[0] not in LABELS:
            raise UsageError(
                "usage: `/chatmod config threshold <label> <review_at> <act_at> [#channel]`; "
                f"labels: {', '.join(LABELS)}"
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


# ---------------------------------------------------------------------------------------- execution


def case_line(case: Case) -> str:
    d = case.decision
    top = f"{d.category} {case.scores.get(d.category, 0.0):.2f}" if d.category else d.reason
    text = (case.text or "")[:80].replace("\n", " ")
    status = case.verdict.value if case.verdict else case.status
    where = f"<@{case.author.user_id}> in <#{case.key.channel_id}>"
    return f"#{case.id} · `{d.action.value}` · {top} · {where} · {status} · “{text}”"


class Executor:
    """Runs parsed commands for one acting member in one workspace."""

    def __init__(self, service: ModerationService, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._service = service
        self._now = now

    async def run(self, command: Command, actor: Member, team_id: str) -> str:
        handler: Callable[[Command, Member, str], Awaitable[str]] = getattr(
            self, "_" + command.name.replace(".", "_")
        )
        try:
            return await handler(command, actor, team_id)
        except PermissionDenied as exc:
            if exc.required == "author":
                return ":no_entry: Only the author of the message can appeal it."
            return f":no_entry: You need the *{exc.required}* role for this."
        except NotFound as exc:
            return f"{exc.kind.capitalize()} {exc.key} not found."
        except ValidationError as exc:
            return f":x: {exc.field}: {exc.message}"
        except InvalidTransition as exc:
            return f":x: {exc}"
        except ModerationError as exc:
            return f":x: {exc}"

    async def _guard(self, actor: Member, role: Role, team_id: str, subject: str) -> None:
        try:
            require(actor, role)
        except PermissionDenied:
            entry = AuditEntry(
                self._now(), actor_id(actor), "permission.denied", team_id, subject, {"required": role.value}
            )
            await self._service.store.append(entry)
            raise

    async def _help(self, c: Command, actor: Member, team: str) -> str:
        return USAGE

    async def _queue(self, c: Command, actor: Member, team: str) -> str:
        await self._guard(actor, Role.MODERATOR, team, "queue")
        cases = await self._service.review_queue(Platform.SLACK, team)
        if not cases:
            return "The review queue is empty."
        return "*Open cases*\n" + "\n".join(case_line(case) for case in cases)

    async def _case(self, c: Command, actor: Member, team: str) -> str:
        await self._guard(actor, Role.MODERATOR, team, f"case:{c.args['case_id']}")
        case = await self._case_in_team(int(c.args["case_id"]), team)  # type: ignore[call-overload]
        d = case.decision
        scores = ", ".join(f"{k} {v:.2f}" for k, v in sorted(case.scores.items(), key=lambda kv: -kv[1]))
        degraded = f" (wanted {d.degraded_from.value})" if d.degraded_from else ""
        return (
            f"{case_line(case)}\nDecision: `{d.action.value}`{degraded}, reason `{d.reason}`, "
            f"model `{d.model_version}`\nScores: {scores or 'none'}"
        )

    async def _override(self, c: Command, actor: Member, team: str) -> str:
        case = await self._case_in_team(int(c.args["case_id"]), team)  # type: ignore[call-overload]
        verdict = c.args["verdict"]
        assert isinstance(verdict, Verdict)
        await self._service.apply_override(case.id, actor, verdict, note=str(c.args["note"]))
        return f"Case #{case.id}: *{verdict.value}* recorded."

    async def _history(self, c: Command, actor: Member, team: str) -> str:
        user_id = str(c.args["user_id"])
        await self._guard(actor, Role.MODERATOR, team, f"history:{user_id}")
        cases = await self._service.history(Platform.SLACK, team, user_id)
        strikes = await self._service.live_strikes(Platform.SLACK, team, user_id)
        lines = [f"<@{user_id}>: {strikes} live strike(s), {len(cases)} case(s)"]
        lines += [case_line(case) for case in cases]
        return "\n".join(lines)

    async def _appeal_submit(self, c: Command, actor: Member, team: str) -> str:
        case = await self._case_in_team(int(c.args["case_id"]), team)  # type: ignore[call-overload]
        appeal = await self._service.submit_appeal(case.id, actor, str(c.args["text"]))
        return f"Appeal #{appeal.id} on case #{case.id} submitted. Moderators will decide it."

    async def _appeal_list(self, c: Command, actor: Member, team: str) -> str:
        await self._guard(actor, Role.MODERATOR, team, "appeals")
        appeals = await self._service.open_appeals(Platform.SLACK, team)
        if not appeals:
            return "No open appeals."
        return "*Open appeals*\n" + "\n".join(
            f"#{a.id} · case #{a.case_id} · <@{a.member.user_id}>: “{a.text[:120]}”" for a in appeals
        )

    async def _appeal_decide(self, c: Command, actor: Member, team: str) -> str:
        appeal = await self._service.store.get_appeal(int(c.args["appeal_id"]))  # type: ignore[call-overload]
        await self._case_in_team(appeal.case_id, team)
        decided = await self._service.decide_appeal(
            appeal.id, actor, bool(c.args["granted"]), str(c.args["message"])
        )
        return f"Appeal #{decided.id}: *{decided.outcome.value if decided.outcome else '?'}*."

    async def _config_threshold(self, c: Command, actor: Member, team: str) -> str:
        await self._service.set_threshold(
            Platform.SLACK,
            team,
            actor,
            label=str(c.args["label"]),
            channel_id=c.args["channel_id"],  # type: ignore[arg-type]
            review_at=c.args["review_at"],  # type: ignore[arg-type]
            act_at=c.args["act_at"],  # type: ignore[arg-type]
        )
        where = f"<#{c.args['channel_id']}>" if c.args["channel_id"] else "server default"
        tiers = f"review at {c.args['review_at']}, act at {c.args['act_at']}"
        return f"Threshold {c.args['label']} ({where}): {tiers}."

    async def _config_action(self, c: Command, actor: Member, team: str) -> str:
        action = c.args["action"]
        assert isinstance(action, Action)
        await self._service.set_channel_action(Platform.SLACK, team, actor, c.args["channel_id"], action)  # type: ignore[arg-type]
        extra = (
            " (Slack has no timeout: this removes the message and escalates)"
            if action is Action.TIMEOUT
            else ""
        )
        return f"Action set to *{action.value}*{extra}."

    async def _config_auto(self, c: Command, actor: Member, team: str) -> str:
        await self._service.set_auto_action(
            Platform.SLACK,
            team,
            actor,
            bool(c.args["enabled"]),
            c.args["channel_id"],  # type: ignore[arg-type]
        )
        return f"Automatic action {'on' if c.args['enabled'] else 'off (review first)'}."

    async def _config_exempt(self, c: Command, actor: Member, team: str) -> str:
        await self._service.set_exempt(
            Platform.SLACK,
            team,
            actor,
            kind=str(c.args["kind"]),
            target_id=str(c.args["target_id"]),
            exempt=bool(c.args["exempt"]),
        )
        return f"Exemption for {c.args['kind']} {c.args['target_id']}: {'on' if c.args['exempt'] else 'off'}."

    async def _config_allow_term(self, c: Command, actor: Member, team: str) -> str:
        await self._service.set_allow_term(
            Platform.SLACK, team, actor, str(c.args["term"]), bool(c.args["allowed"])
        )
        return f"Allow-listed term “{c.args['term']}”: {'added' if c.args['allowed'] else 'removed'}."

    async def _config_ladder(self, c: Command, actor: Member, team: str) -> str:
        await self._service.set_ladder(
            Platform.SLACK,
            team,
            actor,
            strikes=int(c.args["strikes"]),  # type: ignore[call-overload]
            window_days=float(c.args["window_days"]),  # type: ignore[arg-type]
            timeout_minutes=float(c.args["timeout_minutes"]),  # type: ignore[arg-type]
        )
        return (
            f"Strike ladder: {c.args['strikes']} strikes in {c.args['window_days']} days. "
            "Slack has no timeout, so on Slack that step removes the message (with an admin token) "
            "and escalates to moderators."
        )

    async def _config_review_channel(self, c: Command, actor: Member, team: str) -> str:
        channel = c.args["channel_id"]
        await self._service.set_review_channel(Platform.SLACK, team, actor, channel)  # type: ignore[arg-type]
        return f"Review channel: <#{channel}> (invite me there)." if channel else "Review channel cleared."

    async def _case_in_team(self, case_id: int, team: str) -> Case:
        """A case from this workspace; another workspace's case is reported as not found."""
        case = await self._service.store.get_case(case_id)
        if case.key.platform is not Platform.SLACK or case.server_id != team:
            raise NotFound("case", case_id)
        return case
