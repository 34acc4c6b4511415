"""Dashboard statistics and the inline SVG: pure functions, table-tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.web.charts import Series, line_chart, percentile, precision_of, precision_series
from bot.web.scoring import PredictionRecord, bucket_records
from moderation.domain import Action, Case, Decision, Member, MessageKey, Platform, Verdict

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([5.0], 50, 5.0), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 95, 4), (list(range(1, 101)), 99, 99)],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def case(i: int, action: Action, reason: str, verdict: Verdict | None, minutes: int = 0) -> Case:
    return Case(
        i,
        MessageKey(Platform.DEMO, "c", str(i), "h"),
        "s",
        Member(Platform.DEMO, "u"),
        "t",
        Decision(action, reason),
        {},
        T0 + timedelta(minutes=minutes),
        verdict=verdict,
    )


def test_precision_counts_confirmed_against_reversed_verdicts() -> None:
    cases = [
        case(1, Action.DELETE, "over_act_threshold", Verdict.UPHOLD),
        case(2, Action.DELETE, "over_act_threshold", Verdict.RESTORE),
        case(3, Action.DELETE, "over_act_threshold", Verdict.DELETE),
        case(4, Action.DELETE, "over_act_threshold", None),  # not reviewed: not counted
    ]
    p = precision_of(cases)
    assert (p.confirmed, p.reversed, p.value) == (2, 1, pytest.approx(2 / 3))
    assert precision_of([]).value is None


def test_precision_series_separates_automatic_actions_from_holds() -> None:
    cases = [
        case(1, Action.DELETE, "over_act_threshold", Verdict.UPHOLD, 1),
        case(2, Action.HOLD, "over_review_threshold", Verdict.RESTORE, 1),
        case(3, Action.HOLD, "over_review_threshold", Verdict.DELETE, 1),
    ]
    auto, holds = precision_series(cases, T0, timedelta(minutes=10))
    assert auto.points == ((T0, 100.0),)
    assert holds.points == ((T0, 50.0),)


def test_bucket_records_matches_the_store_aggregation() -> None:
    recs = [
        PredictionRecord(T0 + timedelta(seconds=s), "api", "h", "v", lat, {"toxic": tox, "insult": 0.0})
        for s, lat, tox in ((1, 10.0, 0.9), (2, 30.0, 0.1), (70, 5.0, 0.6))
    ]
    b = bucket_records(recs, T0, T0 + timedelta(minutes=3), timedelta(minutes=1))
    assert [x.count for x in b] == [2, 1, 0]
    assert (b[0].latency_p50_ms, b[0].latency_p95_ms) == (10.0, 30.0)
    assert b[0].flagged["toxic"] == 1 and b[1].flagged["toxic"] == 1


def test_svg_escapes_every_text() -> None:
    svg = line_chart(
        "<script>x</script>", [Series("<b>", ((T0, 1.0),))], T0, T0 + timedelta(hours=1), unit="<"
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<b>" not in svg
    assert svg.startswith("<svg") and "circle" in svg
    assert "no data yet" in line_chart("empty", [Series("a", ())], T0, T0 + timedelta(hours=1))
