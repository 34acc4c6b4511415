"""Running parsed ``/chatmod`` commands against the moderation service, for one acting member.

Roles are enforced by the service (audited); the read-only queries, which the service does not guard,
are checked here with the same ``require`` and audited the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bot.adapters.slack.commands import USAGE, Command
from moderation.domain import Action, AuditEntry, Case, Member, Platform, Role, Verdict
from moderation.errors import (
    InvalidTransition,
    ModerationError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from moderation.policy import ServerPolicy
from moderation.service import ModerationService, actor_id, require


def case_line(case: Case) -> str:
    d = case.decision
    top = f"{d.category} {case.scores.get(d.category, 0.0):.2f}" if d.category else d.reason
    text = (case.text or "")[:80].replace("\n", " ")
    status = case.verdict.value if case.verdict else case.status
    where = f"<@{case.author.user_id}> in <#{case.key.channel_id}>"
    return f"#{case.id} · `{d.action.value}` · {top} · {where} · {status} · “{text}”"


def policy_text(p: ServerPolicy) -> str:
    """A workspace's policy as an ephemeral reply."""
    auto = "on" if p.auto_action else "off (review first)"
    review = f"<#{p.review_channel_id}>" if p.review_channel_id else "not set (cards go to admins by DM)"
    lines = [
        f"*Action over act_at*: `{p.action.value}` · automatic action: {auto}",
        f"*Review channel*: {review}",
        "*Thresholds* (review_at / act_at): "
        + ", ".join(f"{label} {t.review_at:.2f}/{t.act_at:.2f}" for label, t in p.thresholds.items()),
    ]
    for ch in p.channels.values():
        parts = [f"{label} {t.review_at:.2f}/{t.act_at:.2f}" for label, t in ch.thresholds.items()]
        if ch.action is not None:
            parts.append(f"action {ch.action.value}")
        if ch.auto_action is not None:
            parts.append(f"auto {'on' if ch.auto_action else 'off'}")
        lines.append(f"• <#{ch.channel_id}>: {', '.join(parts) or 'defaults'}")
    if p.exempt_channel_ids or p.exempt_role_ids:
        exempt = [f"<#{c}>" for c in sorted(p.exempt_channel_ids)]
        exempt += [f"<!subteam^{g}>" for g in sorted(p.exempt_role_ids)]
        lines.append(f"*Exempt*: {', '.join(exempt)}")
    if p.allow_terms:
        lines.append(f"*Allowed terms*: {', '.join(p.allow_terms)}")
    window = p.ladder.window.total_seconds() / 86400
    steps = ", ".join(f"{s.strikes} strikes → {s.action.value}" for s in p.ladder.steps) or "none"
    lines.append(f"*Strike ladder*: {steps} within {window:g} days (Slack has no timeout: it degrades)")
    return "\n".join(lines)


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
        label = str(c.args["label"])
        policy = await self._service.store.get_policy(Platform.SLACK, team)
        channel = c.args["channel_id"]
        tiers = policy.for_channel(str(channel)).thresholds[label] if channel else policy.thresholds[label]
        return f"Threshold {label} ({where}): review at {tiers.review_at:.2f}, act at {tiers.act_at:.2f}."

    async def _config_show(self, c: Command, actor: Member, team: str) -> str:
        await self._guard(actor, Role.ADMIN, team, "config.show")
        return policy_text(await self._service.store.get_policy(Platform.SLACK, team))

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
