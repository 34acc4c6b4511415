"""Per-server and per-channel moderation policy, and the pure ``decide`` function.

A server carries defaults; a channel may override any label's thresholds, the action taken when a
label crosses ``act_at``, and whether automatic action is on. Automatic action is off by default
(review-first): a message over ``act_at`` is then held for review like one over ``review_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from moderation.domain import Action, Capabilities, Decision, LabelHit, Strike
from moderation.errors import ThresholdError, ValidationError
from moderation.labels import LABELS

CHANNEL_ACTIONS = (Action.DELETE, Action.TIMEOUT, Action.ESCALATE, Action.HOLD)


@dataclass(frozen=True, slots=True)
class Tiers:
    """Two thresholds for one label: hold for review at ``review_at``, act at ``act_at``."""

    review_at: float
    act_at: float

    def __post_init__(self) -> None:
        for name in ("review_at", "act_at"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ThresholdError(name, f"must be a number in [0, 1], got {value!r}")
        if self.act_at < self.review_at:
            raise ThresholdError("act_at", f"act_at ({self.act_at}) must be >= review_at ({self.review_at})")


DEFAULT_TIERS: Mapping[str, Tiers] = {
    "toxic": Tiers(0.80, 0.95),
    "severe_toxic": Tiers(0.50, 0.80),
    "obscene": Tiers(0.85, 0.97),
    "threat": Tiers(0.50, 0.85),
    "insult": Tiers(0.80, 0.95),
    "identity_hate": Tiers(0.50, 0.85),
}


@dataclass(frozen=True, slots=True)
class LadderStep:
    """At ``strikes`` live strikes within the window, apply ``action`` (timeout for ``timeout_seconds``)."""

    strikes: int
    action: Action = Action.TIMEOUT
    timeout_seconds: int = 600

    def __post_init__(self) -> None:
        if self.strikes < 1:
            raise ValidationError("ladder.strikes", "must be >= 1")
        if self.action not in (Action.TIMEOUT, Action.ESCALATE, Action.DELETE):
            raise ValidationError("ladder.action", f"unsupported ladder action {self.action}")
        if self.timeout_seconds < 0 or self.timeout_seconds > 28 * 24 * 3600:
            raise ValidationError("ladder.timeout_seconds", "must be within 0..28 days (Discord's limit)")


@dataclass(frozen=True, slots=True)
class StrikeLadder:
    """Strikes decay: one older than ``window`` no longer counts."""

    steps: tuple[LadderStep, ...] = (LadderStep(3, Action.TIMEOUT, 600),)
    window: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise ValidationError("ladder.window", "must be positive")
        counts = [s.strikes for s in self.steps]
        if counts != sorted(set(counts)):
            raise ValidationError("ladder.steps", "strike counts must be strictly increasing")

    def live_strikes(self, strikes: Iterable[Strike], now: datetime) -> int:
        return live_strike_count(strikes, now, self.window)

    def step_for(self, live: int) -> LadderStep | None:
        """The highest step reached by ``live`` strikes, if any."""
        reached = [s for s in self.steps if live >= s.strikes]
        return reached[-1] if reached else None


def live_strike_count(strikes: Iterable[Strike], now: datetime, window: timedelta) -> int:
    """Strikes that are neither reversed nor older than ``window`` (strike decay)."""
    return sum(1 for s in strikes if not s.reversed and now - window < s.at <= now)


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """Per-channel overrides; ``None`` means inherit the server default."""

    channel_id: str
    thresholds: Mapping[str, Tiers] = field(default_factory=dict)
    action: Action | None = None
    auto_action: bool | None = None
    exempt: bool = False

    def __post_init__(self) -> None:
        validate_labels(self.thresholds)
        if self.action is not None and self.action not in CHANNEL_ACTIONS:
            raise ValidationError(
                "action", f"channel action must be one of {[a.value for a in CHANNEL_ACTIONS]}"
            )


@dataclass(frozen=True, slots=True)
class ServerPolicy:
    server_id: str
    thresholds: Mapping[str, Tiers] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    action: Action = Action.DELETE
    auto_action: bool = False  # review-first by default
    exempt_role_ids: frozenset[str] = frozenset()
    exempt_channel_ids: frozenset[str] = frozenset()
    allow_terms: tuple[str, ...] = ()
    ladder: StrikeLadder = field(default_factory=StrikeLadder)
    review_channel_id: str | None = None
    channels: Mapping[str, ChannelPolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_labels(self.thresholds)
        missing = [label for label in LABELS if label not in self.thresholds]
        if missing:
            raise ValidationError("thresholds", f"server defaults lack labels {missing}")
        if self.action not in CHANNEL_ACTIONS:
            raise ValidationError(
                "action", f"server action must be one of {[a.value for a in CHANNEL_ACTIONS]}"
            )

    def for_channel(self, channel_id: str) -> EffectivePolicy:
        """Merge server defaults with the channel's overrides (unknown channels get the defaults)."""
        ch = self.channels.get(channel_id)
        thresholds = dict(self.thresholds)
        action, auto, exempt = self.action, self.auto_action, channel_id in self.exempt_channel_ids
        if ch is not None:
            thresholds.update(ch.thresholds)
            action = ch.action or action
            auto = auto if ch.auto_action is None else ch.auto_action
            exempt = exempt or ch.exempt
        return EffectivePolicy(
            channel_id=channel_id,
            thresholds=thresholds,
            action=action,
            auto_action=auto,
            channel_exempt=exempt,
            exempt_role_ids=self.exempt_role_ids,
            allow_terms=self.allow_terms,
            ladder=self.ladder,
        )

    def with_channel(self, channel: ChannelPolicy) -> ServerPolicy:
        channels = dict(self.channels)
        channels[channel.channel_id] = channel
        return replace(self, channels=channels)


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The policy that applies to one channel after merging; what ``decide`` reads."""

    channel_id: str
    thresholds: Mapping[str, Tiers]
    action: Action = Action.DELETE
    auto_action: bool = False
    channel_exempt: bool = False
    exempt_role_ids: frozenset[str] = frozenset()
    allow_terms: tuple[str, ...] = ()
    ladder: StrikeLadder = field(default_factory=StrikeLadder)


def validate_labels(thresholds: Mapping[str, Tiers]) -> None:
    for label, tiers in thresholds.items():
        if label not in LABELS:
            raise ValidationError("label", f"unknown label {label!r}; expected one of {list(LABELS)}")
        if not isinstance(tiers, Tiers):
            raise ValidationError(f"thresholds.{label}", "must be Tiers(review_at, act_at)")


_SEVERITY = {Action.ALLOW: 0, Action.ESCALATE: 1, Action.HOLD: 2, Action.DELETE: 3, Action.TIMEOUT: 4}


def _degrade(action: Action, caps: Capabilities) -> Action:
    """The action the platform can actually carry out for ``action``."""
    if action is Action.TIMEOUT and not caps.can_timeout:
        action = Action.DELETE if caps.can_delete else Action.ESCALATE
    if action is Action.DELETE and not caps.can_delete:
        return Action.ESCALATE
    if action is Action.HOLD and not caps.can_hold:
        return Action.ESCALATE
    return action


def decide(
    scores: Mapping[str, float],
    policy: EffectivePolicy,
    strikes: Sequence[Strike],
    now: datetime,
    *,
    capabilities: Capabilities = Capabilities(),
    model_version: str | None = None,
) -> Decision:
    """Decide what to do with a scored message. Pure: same inputs, same decision.

    - any label at or over ``act_at`` with automatic action on → the channel's action (a strike);
      with automatic action off (review-first) → HOLD for review (a strike only once a moderator upholds);
    - any label at or over ``review_at`` → HOLD for review;
    - otherwise ALLOW.
    A strike that reaches a step of the ladder escalates the action to that step's (e.g. timeout).
    Actions the platform cannot carry out degrade (timeout → delete → escalate), and the decision says so.
    """
    used = {label: (t.review_at, t.act_at) for label, t in policy.thresholds.items()}
    hits: list[LabelHit] = []
    for label in LABELS:
        tiers = policy.thresholds.get(label)
        score = float(scores.get(label, 0.0))
        if tiers is None:
            continue
        if score >= tiers.act_at:
            hits.append(LabelHit(label, score, "act", tiers.act_at))
        elif score >= tiers.review_at:
            hits.append(LabelHit(label, score, "review", tiers.review_at))
    if not hits:
        return Decision(Action.ALLOW, "under_thresholds", thresholds=used, model_version=model_version)

    act = any(h.tier == "act" for h in hits)
    strike = False
    timeout = 0
    if act and policy.auto_action:
        wanted = policy.action
        reason = "over_act_threshold"
        strike = wanted is not Action.ESCALATE
        if strike:
            step = policy.ladder.step_for(policy.ladder.live_strikes(strikes, now) + 1)
            if step is not None and _SEVERITY[step.action] >= _SEVERITY[wanted]:
                wanted, timeout, reason = step.action, step.timeout_seconds, "strike_ladder"
        if wanted is Action.TIMEOUT and timeout == 0:
            step = policy.ladder.steps[0] if policy.ladder.steps else None
            timeout = step.timeout_seconds if step is not None else 600
    else:
        wanted = Action.HOLD
        reason = "over_act_threshold_review_first" if act else "over_review_threshold"

    action = _degrade(wanted, capabilities)
    degraded = wanted if action is not wanted else None
    if action is not Action.TIMEOUT:
        timeout = 0
    return Decision(
        action=action,
        reason=reason,
        hits=tuple(hits),
        thresholds=used,
        model_version=model_version,
        degraded_from=degraded,
        strike=strike,
        timeout_seconds=timeout,
        # A member is told when their message is acted on, or when the platform could not act and
        # moderators were asked instead (Slack without an admin token: "escalate + notice").
        notify_member=capabilities.can_notify
        and (action in (Action.HOLD, Action.DELETE, Action.TIMEOUT) or degraded is not None),
        alert_moderators=action is not Action.ALLOW,
    )
