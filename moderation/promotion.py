"""Pure rules for the retraining loop: promote a candidate model or not, and recommend thresholds.

``should_promote`` compares metrics on the frozen evaluation set; a candidate is promoted only if it is
not worse. ``recommend_thresholds`` turns moderator verdicts on past decisions into per-label tiers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from moderation.labels import LABELS
from moderation.policy import Tiers


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    promote: bool
    reasons: tuple[str, ...]


def should_promote(
    current: Mapping[str, float],
    candidate: Mapping[str, float],
    *,
    primary: str = "mean_auc",
    tolerance: float = 0.002,
    guards: Sequence[str] = ("any_toxic_auc",),
    guard_tolerance: float = 0.005,
) -> PromotionDecision:
    """Promote ``candidate`` only if it is not worse than ``current`` on the frozen evaluation set.

    Not worse: the primary metric drops by no more than ``tolerance`` and no guard metric drops by more
    than ``guard_tolerance``. A missing metric in the candidate is a refusal; a current model without
    metrics (first run) is always replaced.
    """
    if primary not in candidate:
        return PromotionDecision(False, (f"candidate lacks {primary}",))
    if primary not in current:
        return PromotionDecision(True, ("no current metrics",))
    reasons: list[str] = []
    delta = candidate[primary] - current[primary]
    ok = delta >= -tolerance
    reasons.append(f"{primary} {current[primary]:.4f} -> {candidate[primary]:.4f} ({delta:+.4f})")
    for guard in guards:
        if guard not in current:
            continue
        if guard not in candidate:
            return PromotionDecision(False, (*reasons, f"candidate lacks {guard}"))
        g_delta = candidate[guard] - current[guard]
        reasons.append(f"{guard} {g_delta:+.4f}")
        ok = ok and g_delta >= -guard_tolerance
    return PromotionDecision(ok, tuple(reasons))


@dataclass(frozen=True, slots=True)
class VerdictPoint:
    """One decided case: the model's score for a label and whether moderators found it violating."""

    label: str
    score: float
    violating: bool


def recommend_thresholds(
    points: Sequence[VerdictPoint],
    current: Mapping[str, Tiers],
    *,
    review_recall: float = 0.95,
    act_precision: float = 0.95,
    min_points: int = 20,
) -> dict[str, Tiers]:
    """Per-label tiers from moderator verdicts.

    ``review_at``: the highest threshold that still sends ``review_recall`` of the violating messages
    to review. ``act_at``: the lowest threshold at which automatic action would have been right at least
    ``act_precision`` of the time. Labels with fewer than ``min_points`` verdicts keep their tiers.
    """
    out: dict[str, Tiers] = {}
    for label in LABELS:
        cur = current[label]
        pts = sorted((p for p in points if p.label == label), key=lambda p: p.score)
        positives = [p.score for p in pts if p.violating]
        if len(pts) < min_points or not positives:
            out[label] = cur
            continue
        # review_at: keep review_recall of positives at or above it.
        k = int((1.0 - review_recall) * len(positives))
        review_at = math.floor(positives[k] * 100) / 100  # round down: keep the recall
        # act_at: scan thresholds from high to low while precision stays >= act_precision.
        act_at = 1.0
        tp = fp = 0
        for p in reversed(pts):
            tp += p.violating
            fp += not p.violating
            if tp / (tp + fp) >= act_precision:
                act_at = p.score
            else:
                break
        act_at = min(1.0, math.ceil(max(act_at, review_at) * 100) / 100)  # round up: keep the precision
        out[label] = Tiers(min(review_at, act_at), act_at)
    return out
