from __future__ import annotations

import pytest

from moderation.labels import LABELS
from moderation.policy import DEFAULT_TIERS, Tiers
from moderation.promotion import VerdictPoint, recommend_thresholds, should_promote


@pytest.mark.parametrize(
    ("current", "candidate", "promote"),
    [
        ({}, {"mean_auc": 0.90}, True),  # first model
        ({"mean_auc": 0.95}, {}, False),  # candidate without metrics
        ({"mean_auc": 0.95}, {"mean_auc": 0.96}, True),
        ({"mean_auc": 0.95}, {"mean_auc": 0.949}, True),  # within tolerance: not worse
        ({"mean_auc": 0.95}, {"mean_auc": 0.94}, False),
        (
            {"mean_auc": 0.95, "any_toxic_auc": 0.98},
            {"mean_auc": 0.97, "any_toxic_auc": 0.97},
            False,
        ),  # guard
        ({"mean_auc": 0.95, "any_toxic_auc": 0.98}, {"mean_auc": 0.96}, False),  # guard missing
        ({"mean_auc": 0.95, "any_toxic_auc": 0.98}, {"mean_auc": 0.96, "any_toxic_auc": 0.978}, True),
    ],
)
def test_should_promote(current: dict, candidate: dict, promote: bool) -> None:
    decision = should_promote(current, candidate)
    assert decision.promote is promote
    assert decision.reasons


def test_recommend_thresholds_from_verdicts() -> None:
    # toxic: violating messages score 0.6..0.99; false positives cluster at 0.5..0.8
    pts = [VerdictPoint("toxic", 0.6 + i * 0.0039, True) for i in range(100)]
    pts += [VerdictPoint("toxic", 0.5 + i * 0.01, False) for i in range(30)]
    rec = recommend_thresholds(pts, DEFAULT_TIERS)
    toxic = rec["toxic"]
    assert 0.6 <= toxic.review_at <= 0.63  # 95 % of violating messages still reach review

    def precision(at: float) -> float:
        above = [p for p in pts if p.score >= at]
        return sum(p.violating for p in above) / len(above)

    assert precision(toxic.act_at) >= 0.95 > precision(toxic.act_at - 0.03)  # the lowest precise-enough point
    # labels without enough verdicts keep their tiers
    assert all(rec[label] == DEFAULT_TIERS[label] for label in LABELS if label != "toxic")


def test_recommendation_is_always_valid_tiers() -> None:
    pts = [VerdictPoint("insult", s / 100, s % 3 == 0) for s in range(100)]
    rec = recommend_thresholds(pts, DEFAULT_TIERS)
    assert isinstance(rec["insult"], Tiers) and rec["insult"].review_at <= rec["insult"].act_at
