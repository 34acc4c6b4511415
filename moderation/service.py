"""ModerationService: the moderation loop over ports. Adapters call it; it decides and acts.

The service owns ordering and idempotency: a message version is decided once (the store's unique key),
each platform action is applied at most once per case (``CaseStore.mark_action``), an edit is rescored
but never punished twice, and every decision and moderator action is written to the audit log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from moderation.domain import (
    Action,
    Appeal,
    AppealOutcome,
    AuditEntry,
    Case,
    Decision,
    Member,
    MessageVersion,
    Override,
    Platform,
    Role,
    ScoreResult,
    Strike,
    Verdict,
)
from moderation.errors import (
    InvalidTransition,
    PermissionDenied,
    PlatformActionFailed,
    RetryLater,
    ValidationError,
)
from moderation.filters import MAX_MESSAGE_CHARS, FilterResult, clip_for_scoring, prefilter, sanitize
from moderation.filters import strip_allow_terms as _strip_allow_terms
from moderation.labels import LABEL_DESCRIPTIONS, LABELS
from moderation.policy import (
    ChannelPolicy,
    LadderStep,
    ServerPolicy,
    StrikeLadder,
    Tiers,
    decide,
)
from moderation.ports import Clock, Notice, PlatformActions, ScoreClient, Store

log = logging.getLogger(__name__)

_PUNITIVE = frozenset({Action.DELETE, Action.TIMEOUT, Action.HOLD})
#: Verdicts that say the message was acceptable.
_NEGATIVE = frozenset({Verdict.RESTORE, Verdict.DISMISS})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one inbound message version."""

    message: MessageVersion
    filtered: FilterResult
    decision: Decision | None = None
    case: Case | None = None
    duplicate: bool = False
    score: ScoreResult | None = None

    @property
    def action(self) -> Action | None:
        return self.decision.action if self.decision else None


def actor_id(member: Member) -> str:
    return f"{member.platform}:{member.user_id}"


def require(member: Member, role: Role) -> None:
    """Raise PermissionDenied unless ``member`` holds ``role`` (admins are moderators too)."""
    if not member.has(role):
        raise PermissionDenied(role.value, actor_id(member))


def rule_text(decision: Decision) -> str:
    """Human wording of the rule that fired, for member notices."""
    if not decision.hits:
        return "moderators were alerted" if decision.action is Action.ESCALATE else ""
    hit = max(decision.hits, key=lambda h: h.score)
    # Say what actually happened: review-first channels hold even over the act threshold.
    acted = decision.action in (Action.DELETE, Action.TIMEOUT)
    tier = "removal" if hit.tier == "act" and acted else "review"
    return (
        f"{LABEL_DESCRIPTIONS.get(hit.label, hit.label)}: score {hit.score:.2f} "
        f"is over this channel's {tier} threshold {hit.threshold:.2f}"
    )


class ModerationService:
    def __init__(
        self,
        *,
        scorer: ScoreClient,
        store: Store,
        actions: Mapping[Platform, PlatformActions],
        clock: Clock,
        own_user_ids: frozenset[str] = frozenset(),
        score_timeout: float = 5.0,
    ) -> None:
        self._scorer = scorer
        self._store = store
        self._actions = dict(actions)
        self._clock = clock
        self._own = own_user_ids
        self._score_timeout = score_timeout
        self._alerted: set[tuple[Platform, str, str]] = set()

    @property
    def store(self) -> Store:
        return self._store

    def actions_for(self, platform: Platform) -> PlatformActions:
        try:
            return self._actions[platform]
        except KeyError:
            raise ValidationError("platform", f"no platform actions configured for {platform}") from None

    def register_actions(self, platform: Platform, actions: PlatformActions) -> None:
        self._actions[platform] = actions

    def add_own_user_id(self, user_id: str) -> None:
        self._own = self._own | {user_id}

    # ------------------------------------------------------------------ the loop

    async def handle_message(self, msg: MessageVersion) -> Outcome:
        """Filter, score, decide, store, act, notify. Idempotent per message version."""
        started = time.perf_counter()
        msg = replace(msg, text=sanitize(msg.text))
        server_policy = await self._store.get_policy(msg.platform, msg.server_id)
        policy = server_policy.for_channel(msg.channel_id)
        filtered = prefilter(msg, policy, self._own)
        if filtered.alert:
            await self._alert_once(msg.platform, msg.server_id, filtered.alert)
        if not filtered.scored:
            log.debug("skip message %s: %s", msg.key, filtered.skip)
            return Outcome(msg, filtered)

        existing = await self._store.get_case_by_key(msg.key)
        if existing is not None:
            log.info("duplicate delivery of %s: case %s already decided", msg.key, existing.id)
            return Outcome(msg, filtered, existing.decision, existing, duplicate=True)

        if len(msg.text) > MAX_MESSAGE_CHARS:
            log.warning("oversized message %s: %d chars, scored in windows", msg.key, len(msg.text))
        text, clipped = clip_for_scoring(_strip_allow_terms(msg.text, policy.allow_terms))
        if clipped:
            log.warning("message %s clipped to %d chars for scoring", msg.key, len(text))

        now = self._clock.now()
        actions = self.actions_for(msg.platform)
        result: ScoreResult | None
        t_score = time.perf_counter()
        try:
            result = await self._scorer.score(text, timeout=self._score_timeout)
        except RetryLater as exc:
            result = None
            decision = self._unscored_decision(exc, actions)
        else:
            strikes = await self._store.strikes_for(msg.platform, msg.server_id, msg.author.user_id)
            decision = decide(
                result.scores,
                policy,
                strikes,
                now,
                capabilities=actions.capabilities,
                model_version=result.model_version,
            )
        score_ms = (time.perf_counter() - t_score) * 1000

        if msg.edited or decision.strike:
            decision = await self._no_double_punishment(msg, decision)

        case, created = await self._store.record_decision(msg, result, decision, now)
        if not created:  # lost a race with a concurrent redelivery
            return Outcome(msg, filtered, case.decision, case, duplicate=True, score=result)
        await self._audit(
            now,
            "system",
            "decision",
            msg.server_id,
            str(case.id),
            action=decision.action.value,
            reason=decision.reason,
            model_version=decision.model_version,
            hits={h.label: round(h.score, 4) for h in decision.hits},
            degraded_from=decision.degraded_from.value if decision.degraded_from else None,
        )
        if decision.strike:
            await self._store.add_strike(
                Strike(msg.platform, msg.server_id, msg.author.user_id, now, case_id=case.id)
            )
        await self._apply(case, decision, actions)
        log.info(
            "decision case=%s key=%s action=%s reason=%s top=%s model=%s score_ms=%.1f total_ms=%.1f",
            case.id,
            msg.key,
            decision.action.value,
            decision.reason,
            decision.category,
            decision.model_version,
            score_ms,
            (time.perf_counter() - started) * 1000,
        )
        return Outcome(msg, filtered, decision, case, score=result)

    def _unscored_decision(self, exc: RetryLater, actions: PlatformActions) -> Decision:
        """No score (queue overloaded or timed out): hold and escalate rather than pass unchecked."""
        log.warning("scoring unavailable (%s): hold and escalate", exc)
        caps = actions.capabilities
        action = Action.HOLD if caps.can_hold else Action.ESCALATE
        return Decision(
            action=action,
            reason="scoring_unavailable",
            degraded_from=None if action is Action.HOLD else Action.HOLD,
            alert_moderators=True,
            notify_member=False,
        )

    async def _no_double_punishment(self, msg: MessageVersion, decision: Decision) -> Decision:
        """An edit is rescored, but a member is punished at most once per message."""
        prior = await self._store.cases_for_message(msg.platform, msg.channel_id, msg.message_id)
        if not any(c.decision.strike or c.decision.action in _PUNITIVE for c in prior):
            return decision
        action = Action.DELETE if decision.action is Action.TIMEOUT else decision.action
        return replace(
            decision, strike=False, action=action, timeout_seconds=0, reason=decision.reason + "+edit"
        )

    async def _apply(self, case: Case, decision: Decision, actions: PlatformActions) -> None:
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if decision.action is Action.HOLD:
            steps.append(("hold", lambda: actions.hold(case)))
        elif decision.action in (Action.DELETE, Action.TIMEOUT):
            steps.append(("delete", lambda: actions.delete(case)))
        if decision.action is Action.TIMEOUT and decision.timeout_seconds:
            steps.append(("timeout", lambda: actions.timeout(case, decision.timeout_seconds)))
        if decision.alert_moderators:
            steps.append(("escalate", lambda: actions.escalate(case)))
        if decision.notify_member:
            notice = Notice(
                case_id=case.id,
                action=decision.action,
                category=decision.category,
                rule=rule_text(decision),
                text=case.text or "",
                appealable=decision.action is not Action.ESCALATE,
            )
            steps.append(("notify", lambda: actions.notify_member(case, notice)))
        for name, step in steps:
            await self._run_action(case, name, step)

    async def _run_action(self, case: Case, name: str, step: Callable[[], Awaitable[None]]) -> bool:
        if not await self._store.mark_action(case.id, name):
            log.info("action %s for case %s already applied: skipped", name, case.id)
            return False
        try:
            await step()
        except PlatformActionFailed as exc:
            log.error("action %s failed for case %s: %s", name, case.id, exc)
            # Not applied after all: the record stays true (a restore only reposts what was removed)
            # and a later attempt — a moderator upholding the case — applies it.
            await self._store.unmark_action(case.id, name)
            await self._audit(
                self._clock.now(),
                "system",
                "action.failed",
                case.server_id,
                str(case.id),
                action=name,
                error=str(exc),
                status=exc.status,
                retryable=exc.retryable,
            )
            if exc.status == 403:
                await self._alert_once(
                    case.key.platform, case.server_id, f"chatmod lacks permission to {name} messages: {exc}"
                )
            return False
        return True

    async def _alert_once(self, platform: Platform, server_id: str, message: str) -> None:
        key = (platform, server_id, message)
        if key in self._alerted:
            return
        self._alerted.add(key)
        log.warning("admin alert server=%s: %s", server_id, message)
        try:
            await self.actions_for(platform).alert_admins(server_id, message)
        except (PlatformActionFailed, ValidationError) as exc:
            log.error("could not alert admins of %s: %s", server_id, exc)
        await self._audit(self._clock.now(), "system", "alert", server_id, server_id, message=message)

    # ------------------------------------------------------------------ moderators

    async def apply_override(self, case_id: int, moderator: Member, verdict: Verdict, note: str = "") -> Case:
        """A moderator's verdict on a case; stored as a labelled example and audited."""
        case = await self._store.get_case(case_id)
        await self._require(moderator, Role.MODERATOR, case.server_id, f"override:{case_id}")
        now = self._clock.now()
        actions = self.actions_for(case.key.platform)
        action = case.decision.action
        # What was actually done to the message: a hold or delete the platform refused is not marked.
        applied = set(await self._store.applied_actions_for(case.id))
        removed = bool(applied & {"hold", "delete"})

        if verdict in _NEGATIVE:
            if removed:
                await self._run_action(case, "restore", lambda: actions.restore(case))
            await self._store.reverse_strikes(case.id)
        else:
            # Uphold, delete and timeout all remove the message: a delete already applied is not
            # repeated, one that failed is retried now. An upheld automatic timeout was already applied
            # (and is marked), so only an explicit Timeout verdict can add one.
            if "delete" not in applied:
                await self._run_action(case, "delete", lambda: actions.delete(case))
            if verdict is Verdict.TIMEOUT and not actions.capabilities.can_timeout:
                # e.g. Slack: no member timeouts. The removal and strike stand; the audit says why.
                await self._audit(
                    now, "system", "action.unsupported", case.server_id, str(case.id), action="timeout"
                )
            elif verdict is Verdict.TIMEOUT:
                policy = await self._store.get_policy(case.key.platform, case.server_id)
                seconds = policy.ladder.steps[0].timeout_seconds if policy.ladder.steps else 600
                await self._run_action(case, "timeout", lambda: actions.timeout(case, seconds))
            if not case.decision.strike:
                strikes = await self._store.strikes_for(
                    case.key.platform, case.server_id, case.author.user_id
                )
                if not any(s.case_id == case.id and not s.reversed for s in strikes):
                    await self._store.add_strike(
                        Strike(case.key.platform, case.server_id, case.author.user_id, now, case_id=case.id)
                    )

        override = Override(case.id, moderator, verdict, now, note, previous_action=action)
        await self._store.record_override(override)
        resolved = await self._store.resolve_case(case.id, verdict)
        await self._audit(
            now,
            actor_id(moderator),
            "override",
            case.server_id,
            str(case.id),
            verdict=verdict.value,
            previous_action=action.value,
            note=note,
        )
        try:
            await actions.resolve_review(resolved, verdict, moderator)
        except PlatformActionFailed as exc:
            log.error("could not update review post of case %s: %s", case.id, exc)
        return resolved

    async def submit_appeal(self, case_id: int, member: Member, text: str) -> Appeal:
        case = await self._store.get_case(case_id)
        if case.author.user_id != member.user_id or case.author.platform != member.platform:
            await self._audit(
                self._clock.now(),
                actor_id(member),
                "appeal.denied",
                case.server_id,
                str(case_id),
                reason="not_author",
            )
            raise PermissionDenied("author", actor_id(member))
        if case.decision.action is Action.ALLOW:
            raise InvalidTransition(f"case {case_id} took no action: nothing to appeal")
        open_appeals = [
            a
            for a in await self._store.list_appeals(case.key.platform, case.server_id)
            if a.case_id == case_id
        ]
        if open_appeals:
            raise InvalidTransition(f"case {case_id} already has appeal {open_appeals[0].id}")
        now = self._clock.now()
        text = sanitize(text)[:2000]
        appeal = await self._store.create_appeal(case_id, member, text, now)
        await self._audit(
            now, actor_id(member), "appeal.submit", case.server_id, str(case_id), appeal=appeal.id
        )
        return appeal

    async def decide_appeal(
        self, appeal_id: int, moderator: Member, granted: bool, message: str = ""
    ) -> Appeal:
        appeal = await self._store.get_appeal(appeal_id)
        case = await self._store.get_case(appeal.case_id)
        await self._require(moderator, Role.MODERATOR, case.server_id, f"appeal:{appeal_id}")
        now = self._clock.now()
        outcome = AppealOutcome.GRANTED if granted else AppealOutcome.DENIED
        decided = await self._store.decide_appeal(appeal_id, outcome, moderator, message, now)
        if granted:
            await self.apply_override(case.id, moderator, Verdict.RESTORE, note=f"appeal {appeal_id} granted")
        await self._audit(
            now,
            actor_id(moderator),
            "appeal.decide",
            case.server_id,
            str(case.id),
            appeal=appeal_id,
            outcome=outcome.value,
        )
        try:
            await self.actions_for(case.key.platform).send_appeal_outcome(case, decided)
        except PlatformActionFailed as exc:
            log.error("could not send appeal outcome for %s: %s", appeal_id, exc)
        return decided

    # ------------------------------------------------------------------ queries

    async def review_queue(self, platform: Platform, server_id: str, limit: int = 25) -> list[Case]:
        return await self._store.list_cases(platform, server_id, status="open", limit=limit)

    async def history(self, platform: Platform, server_id: str, user_id: str, limit: int = 25) -> list[Case]:
        return await self._store.list_cases(platform, server_id, user_id=user_id, limit=limit)

    async def live_strikes(self, platform: Platform, server_id: str, user_id: str) -> int:
        policy = await self._store.get_policy(platform, server_id)
        strikes = await self._store.strikes_for(platform, server_id, user_id)
        return policy.ladder.live_strikes(strikes, self._clock.now())

    async def open_appeals(self, platform: Platform, server_id: str) -> list[Appeal]:
        return await self._store.list_appeals(platform, server_id, status="submitted")

    # ------------------------------------------------------------------ admins

    async def update_policy(
        self,
        platform: Platform,
        server_id: str,
        admin: Member,
        change: Callable[[ServerPolicy], ServerPolicy],
        what: str,
        **detail: object,
    ) -> ServerPolicy:
        """Apply a validated change to a server's policy and audit it."""
        await self._require(admin, Role.ADMIN, server_id, f"policy.{what}")
        policy = change(await self._store.get_policy(platform, server_id))
        await self._store.save_policy(platform, policy)
        await self._audit(
            self._clock.now(), actor_id(admin), f"policy.{what}", server_id, server_id, **detail
        )
        return policy

    async def set_threshold(
        self,
        platform: Platform,
        server_id: str,
        admin: Member,
        *,
        label: str,
        channel_id: str | None = None,
        review_at: float | None = None,
        act_at: float | None = None,
    ) -> ServerPolicy:
        if label not in LABELS:
            raise ValidationError("label", f"unknown label {label!r}; expected one of {list(LABELS)}")

        def change(p: ServerPolicy) -> ServerPolicy:
            if channel_id is None:
                cur = p.thresholds[label]
                tiers = Tiers(
                    cur.review_at if review_at is None else review_at,
                    cur.act_at if act_at is None else act_at,
                )
                return replace(p, thresholds={**p.thresholds, label: tiers})
            ch = p.channels.get(channel_id, ChannelPolicy(channel_id))
            cur = ch.thresholds.get(label, p.thresholds[label])
            tiers = Tiers(
                cur.review_at if review_at is None else review_at, cur.act_at if act_at is None else act_at
            )
            return p.with_channel(replace(ch, thresholds={**ch.thresholds, label: tiers}))

        return await self.update_policy(
            platform,
            server_id,
            admin,
            change,
            "threshold",
            channel=channel_id,
            label=label,
            review_at=review_at,
            act_at=act_at,
        )

    async def set_channel_action(
        self, platform: Platform, server_id: str, admin: Member, channel_id: str | None, action: Action
    ) -> ServerPolicy:
        def change(p: ServerPolicy) -> ServerPolicy:
            if channel_id is None:
                return replace(p, action=action)
            ch = p.channels.get(channel_id, ChannelPolicy(channel_id))
            return p.with_channel(replace(ch, action=action))

        return await self.update_policy(
            platform, server_id, admin, change, "action", channel=channel_id, value=action.value
        )

    async def set_auto_action(
        self, platform: Platform, server_id: str, admin: Member, enabled: bool, channel_id: str | None = None
    ) -> ServerPolicy:
        def change(p: ServerPolicy) -> ServerPolicy:
            if channel_id is None:
                return replace(p, auto_action=enabled)
            ch = p.channels.get(channel_id, ChannelPolicy(channel_id))
            return p.with_channel(replace(ch, auto_action=enabled))

        return await self.update_policy(
            platform, server_id, admin, change, "auto", channel=channel_id, value=enabled
        )

    async def set_exempt(
        self, platform: Platform, server_id: str, admin: Member, *, kind: str, target_id: str, exempt: bool
    ) -> ServerPolicy:
        if kind not in ("role", "channel"):
            raise ValidationError("kind", "must be 'role' or 'channel'")

        def toggle(current: frozenset[str]) -> frozenset[str]:
            return current | {target_id} if exempt else current - {target_id}

        def change(p: ServerPolicy) -> ServerPolicy:
            if kind == "role":
                return replace(p, exempt_role_ids=toggle(p.exempt_role_ids))
            return replace(p, exempt_channel_ids=toggle(p.exempt_channel_ids))

        return await self.update_policy(
            platform, server_id, admin, change, "exempt", kind=kind, target=target_id, exempt=exempt
        )

    async def set_allow_term(
        self, platform: Platform, server_id: str, admin: Member, term: str, allowed: bool = True
    ) -> ServerPolicy:
        term = sanitize(term).strip()
        if not term or len(term) > 100:
            raise ValidationError("term", "must be 1..100 characters")

        def change(p: ServerPolicy) -> ServerPolicy:
            terms = [t for t in p.allow_terms if t.lower() != term.lower()]
            if allowed:
                terms.append(term)
            return replace(p, allow_terms=tuple(terms))

        return await self.update_policy(
            platform, server_id, admin, change, "allow_term", term=term, allowed=allowed
        )

    async def set_ladder(
        self,
        platform: Platform,
        server_id: str,
        admin: Member,
        *,
        strikes: int,
        window_days: float,
        timeout_minutes: float,
    ) -> ServerPolicy:
        ladder = StrikeLadder(
            steps=(LadderStep(strikes, Action.TIMEOUT, int(timeout_minutes * 60)),),
            window=timedelta(days=window_days),
        )
        return await self.update_policy(
            platform,
            server_id,
            admin,
            lambda p: replace(p, ladder=ladder),
            "ladder",
            strikes=strikes,
            window_days=window_days,
            timeout_minutes=timeout_minutes,
        )

    async def set_review_channel(
        self, platform: Platform, server_id: str, admin: Member, channel_id: str | None
    ) -> ServerPolicy:
        return await self.update_policy(
            platform,
            server_id,
            admin,
            lambda p: replace(p, review_channel_id=channel_id),
            "review_channel",
            channel=channel_id,
        )

    # ------------------------------------------------------------------ helpers

    async def _require(self, member: Member, role: Role, server_id: str, subject: str) -> None:
        try:
            require(member, role)
        except PermissionDenied:
            await self._audit(
                self._clock.now(),
                actor_id(member),
                "permission.denied",
                server_id,
                subject,
                required=role.value,
            )
            log.warning("permission denied: %s needs %s for %s", actor_id(member), role.value, subject)
            raise

    async def _audit(
        self, now: datetime, actor: str, kind: str, server_id: str, subject: str, /, **detail: object
    ) -> None:
        await self._store.append(AuditEntry(now, actor, kind, server_id, subject, detail))


def verdict_labels(case: Case, verdict: Verdict) -> dict[str, int]:
    """The labelled example a moderator verdict produces, for retraining.

    Restore/dismiss: the message was fine (every label 0). Uphold/delete/timeout: the labels that fired
    are confirmed (1); labels that did not fire are left out (unknown), so retraining masks them.
    """
    if verdict in _NEGATIVE:
        return dict.fromkeys(LABELS, 0)
    fired = {h.label for h in case.decision.hits} or {"toxic"}
    return dict.fromkeys(sorted(fired), 1)
