from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from moderation.domain import Action, Capabilities, Platform, Strike
from moderation.errors import ThresholdError, ValidationError
from moderation.labels import LABELS
from moderation.policy import (
    DEFAULT_TIERS,
    ChannelPolicy,
    LadderStep,
    ServerPolicy,
    StrikeLadder,
    Tiers,
    decide,
    live_strike_count,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLEAN = dict.fromkeys(LABELS, 0.01)


def scores(**kw: float) -> dict[str, float]:
    return {**CLEAN, **kw}


def strikes(*days_ago: float, reversed_: bool = False) -> list[Strike]:
    return [
        Strike(Platform.DEMO, "s", "u", NOW - timedelta(days=d), case_id=i, reversed=reversed_)
        for i, d in enumerate(days_ago)
    ]


REVIEW_FIRST = ServerPolicy("s").for_channel("general")
AUTO_DELETE = ServerPolicy("s", auto_action=True).for_channel("general")
AUTO_TIMEOUT = ServerPolicy("s", auto_action=True, action=Action.TIMEOUT).for_channel("general")
AUTO_ESCALATE = ServerPolicy("s", auto_action=True, action=Action.ESCALATE).for_channel("general")


@pytest.mark.parametrize(
    ("label_scores", "policy", "past", "caps", "action", "reason", "strike", "degraded", "timeout"),
    [
        # nothing over any threshold
        (scores(), REVIEW_FIRST, [], Capabilities(), Action.ALLOW, "under_thresholds", False, None, 0),
        (
            scores(toxic=0.79),
            AUTO_DELETE,
            [],
            Capabilities(),
            Action.ALLOW,
            "under_thresholds",
            False,
            None,
            0,
        ),
        # review tier holds, whatever the auto setting
        (
            scores(toxic=0.80),
            REVIEW_FIRST,
            [],
            Capabilities(),
            Action.HOLD,
            "over_review_threshold",
            False,
            None,
            0,
        ),
        (
            scores(toxic=0.85),
            AUTO_DELETE,
            [],
            Capabilities(),
            Action.HOLD,
            "over_review_threshold",
            False,
            None,
            0,
        ),
        # act tier: review-first holds without a strike; auto applies the channel action with a strike
        (
            scores(toxic=0.99),
            REVIEW_FIRST,
            [],
            Capabilities(),
            Action.HOLD,
            "over_act_threshold_review_first",
            False,
            None,
            0,
        ),
        (
            scores(toxic=0.99),
            AUTO_DELETE,
            [],
            Capabilities(),
            Action.DELETE,
            "over_act_threshold",
            True,
            None,
            0,
        ),
        (
            scores(toxic=0.99),
            AUTO_TIMEOUT,
            [],
            Capabilities(),
            Action.TIMEOUT,
            "over_act_threshold",
            True,
            None,
            600,
        ),
        (
            scores(toxic=0.99),
            AUTO_ESCALATE,
            [],
            Capabilities(),
            Action.ESCALATE,
            "over_act_threshold",
            False,
            None,
            0,
        ),
        # rare labels have lower thresholds
        (
            scores(threat=0.6),
            REVIEW_FIRST,
            [],
            Capabilities(),
            Action.HOLD,
            "over_review_threshold",
            False,
            None,
            0,
        ),
        # strike ladder: the 3rd live strike within 30 days times out
        (
            scores(toxic=0.99),
            AUTO_DELETE,
            strikes(1, 2),
            Capabilities(),
            Action.TIMEOUT,
            "strike_ladder",
            True,
            None,
            600,
        ),
        # decayed strikes (older than the window) and reversed ones do not count
        (
            scores(toxic=0.99),
            AUTO_DELETE,
            strikes(1, 31),
            Capabilities(),
            Action.DELETE,
            "over_act_threshold",
            True,
            None,
            0,
        ),
        (
            scores(toxic=0.99),
            AUTO_DELETE,
            strikes(1, 2, reversed_=True),
            Capabilities(),
            Action.DELETE,
            "over_act_threshold",
            True,
            None,
            0,
        ),
        # capabilities: no timeout on the platform → delete; no delete → escalate; no hold → escalate
        (
            scores(toxic=0.99),
            AUTO_TIMEOUT,
            [],
            Capabilities(can_timeout=False),
            Action.DELETE,
            "over_act_threshold",
            True,
            Action.TIMEOUT,
            0,
        ),
        (
            scores(toxic=0.99),
            AUTO_TIMEOUT,
            [],
            Capabilities(can_timeout=False, can_delete=False),
            Action.ESCALATE,
            "over_act_threshold",
            True,
            Action.TIMEOUT,
            0,
        ),
        (
            scores(toxic=0.99),
            AUTO_DELETE,
            [],
            Capabilities(can_delete=False),
            Action.ESCALATE,
            "over_act_threshold",
            True,
            Action.DELETE,
            0,
        ),
        (
            scores(toxic=0.85),
            REVIEW_FIRST,
            [],
            Capabilities(can_hold=False),
            Action.ESCALATE,
            "over_review_threshold",
            False,
            Action.HOLD,
            0,
        ),
    ],
)
def test_decide_table(label_scores, policy, past, caps, action, reason, strike, degraded, timeout) -> None:
    d = decide(label_scores, policy, past, NOW, capabilities=caps, model_version="m1")
    assert (d.action, d.reason, d.strike, d.degraded_from, d.timeout_seconds) == (
        action,
        reason,
        strike,
        degraded,
        timeout,
    )
    assert d.model_version == "m1"
    assert set(d.thresholds) == set(LABELS)


def test_decision_records_hits_and_thresholds_used() -> None:
    policy = ServerPolicy(
        "s", auto_action=True, channels={"kids": ChannelPolicy("kids", thresholds={"toxic": Tiers(0.3, 0.5)})}
    ).for_channel("kids")
    d = decide(scores(toxic=0.6, insult=0.81), policy, [], NOW)
    assert d.action is Action.DELETE
    assert {(h.label, h.tier, h.threshold) for h in d.hits} == {
        ("toxic", "act", 0.5),
        ("insult", "review", 0.8),
    }
    assert d.thresholds["toxic"] == (0.3, 0.5)
    assert d.thresholds["insult"] == (DEFAULT_TIERS["insult"].review_at, DEFAULT_TIERS["insult"].act_at)
    assert d.category == "insult"
    assert d.notify_member and d.alert_moderators


def test_decide_is_pure() -> None:
    args = (scores(toxic=0.99), AUTO_DELETE, strikes(1), NOW)
    assert decide(*args) == decide(*args)


def test_degraded_decisions_notify_member() -> None:
    d = decide(scores(toxic=0.99), AUTO_DELETE, [], NOW, capabilities=Capabilities(can_delete=False))
    assert d.action is Action.ESCALATE and d.degraded_from is Action.DELETE and d.notify_member


@pytest.mark.parametrize(
    ("review_at", "act_at", "field"),
    [(-0.1, 0.5, "review_at"), (0.5, 1.5, "act_at"), (0.9, 0.5, "act_at"), (float("nan"), 0.5, "review_at")],
)
def test_tiers_validation_names_the_field(review_at: float, act_at: float, field: str) -> None:
    with pytest.raises(ThresholdError) as err:
        Tiers(review_at, act_at)
    assert err.value.field == field


def test_channel_overrides_merge_with_server_defaults() -> None:
    server = ServerPolicy(
        "s",
        action=Action.DELETE,
        exempt_channel_ids=frozenset({"staff"}),
        channels={
            "kids": ChannelPolicy("kids", {"toxic": Tiers(0.2, 0.4)}, action=Action.TIMEOUT, auto_action=True)
        },
    )
    kids = server.for_channel("kids")
    assert kids.thresholds["toxic"] == Tiers(0.2, 0.4)
    assert kids.thresholds["insult"] == DEFAULT_TIERS["insult"]
    assert (kids.action, kids.auto_action) == (Action.TIMEOUT, True)
    unknown = server.for_channel("never-seen")
    assert unknown.thresholds == dict(DEFAULT_TIERS) and not unknown.auto_action
    assert server.for_channel("staff").channel_exempt


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ServerPolicy("s", thresholds={"spam": Tiers(0.1, 0.2)}), "label"),
        (lambda: ServerPolicy("s", thresholds={"toxic": Tiers(0.1, 0.2)}), "thresholds"),
        (lambda: ServerPolicy("s", action=Action.ALLOW), "action"),
        (lambda: StrikeLadder(steps=(LadderStep(3), LadderStep(2))), "ladder.steps"),
        (lambda: LadderStep(strikes=0), "ladder.strikes"),
        (lambda: LadderStep(strikes=2, timeout_seconds=-1), "ladder.timeout_seconds"),
    ],
    ids=["unknown-label", "missing-labels", "bad-action", "ladder-order", "zero-strikes", "negative-timeout"],
)
def test_policy_validation_names_the_field(build, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        build()
    assert err.value.field == field


@pytest.mark.parametrize(
    ("ages_days", "window_days", "expected"),
    [((), 30, 0), ((1, 2, 3), 30, 3), ((1, 29.9, 30.1), 30, 2), ((1, 2), 1.5, 1), ((-1,), 30, 0)],
)
def test_strike_decay(ages_days: tuple[float, ...], window_days: float, expected: int) -> None:
    assert live_strike_count(strikes(*ages_days), NOW, timedelta(days=window_days)) == expected


def test_ladder_steps() -> None:
    ladder = StrikeLadder(steps=(LadderStep(2, Action.TIMEOUT, 60), LadderStep(4, Action.TIMEOUT, 3600)))
    assert [getattr(ladder.step_for(n), "timeout_seconds", None) for n in range(6)] == [
        None,
        None,
        60,
        60,
        3600,
        3600,
    ]
