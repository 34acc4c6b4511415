"""Predictions log, bucketed stats, decision counts and model versions."""

from __future__ import annotations

from datetime import date, timedelta, timezone

import pytest

from moderation.domain import content_hash
from moderation.errors import NotFound, ValidationError
from moderation.labels import LABELS
from moderation.store import PredictionRow, SqlStore
from tests.store.helpers import ALLOW, T0, delete, hold, msg, scores

H = timedelta(hours=1)


async def test_prediction_stats_bucket_latency_and_labels(sql_store: SqlStore) -> None:
    # Bucket 0: three predictions; bucket 1: none; bucket 2: one.
    await sql_store.record_prediction(content_hash("a"), "v1", 10.0, {"toxic": 0.9, "insult": 0.2}, T0)
    await sql_store.record_prediction(
        content_hash("b"), "v1", 30.0, {"toxic": 0.1, "insult": 0.6}, T0 + 10 * timedelta(minutes=1)
    )
    await sql_store.record_prediction(
        content_hash("c"), "v1", 20.0, {"toxic": 0.5, "insult": 0.1}, T0 + 59 * timedelta(minutes=1)
    )
    await sql_store.record_prediction(
        content_hash("d"), "v2", 50.0, {"toxic": 0.0, "insult": 0.0}, T0 + 2 * H, source="demo"
    )
    await sql_store.record_prediction(content_hash("e"), "v1", 99.0, {"toxic": 1.0}, T0 + 3 * H)  # outside

    buckets = await sql_store.prediction_stats(T0, T0 + 3 * H, H)
    assert [b.start for b in buckets] == [T0, T0 + H, T0 + 2 * H]
    assert [b.count for b in buckets] == [3, 0, 1]
    first = buckets[0]
    assert first.end == T0 + H
    assert first.latency_mean_ms == pytest.approx(20.0)
    assert (first.latency_p50_ms, first.latency_p95_ms, first.latency_max_ms) == (20.0, 30.0, 30.0)
    assert first.flagged["toxic"] == 2 and first.flagged["insult"] == 1 and first.flagged["threat"] == 0
    assert set(first.flagged) == set(LABELS)
    assert first.mean_scores["toxic"] == pytest.approx(0.5)
    assert buckets[1].latency_mean_ms is None and buckets[1].flagged["toxic"] == 0

    demo = await sql_store.prediction_stats(T0, T0 + 3 * H, H, source="demo")
    assert [b.count for b in demo] == [0, 0, 1]
    v1 = await sql_store.prediction_stats(T0, T0 + 4 * H, 2 * H, model_version="v1", flag_at=0.95)
    assert [b.count for b in v1] == [3, 1]
    assert [b.flagged["toxic"] for b in v1] == [0, 1]


async def test_batch_of_predictions_in_one_call(sql_store: SqlStore) -> None:
    rows = [
        PredictionRow(
            content_hash(str(i)), "v1", float(i), {"toxic": i / 10}, T0 + i * timedelta(minutes=1), "demo"
        )
        for i in range(10)
    ]
    assert await sql_store.record_predictions(rows) == 10
    assert await sql_store.record_predictions([]) == 0
    (bucket,) = await sql_store.prediction_stats(T0, T0 + H, H, source="demo")
    assert bucket.count == 10 and bucket.latency_max_ms == 9.0 and bucket.flagged["toxic"] == 5


async def test_prediction_stats_rejects_bad_windows(sql_store: SqlStore) -> None:
    with pytest.raises(ValidationError):
        await sql_store.prediction_stats(T0, T0, H)
    with pytest.raises(ValidationError):
        await sql_store.prediction_stats(T0, T0 + H, timedelta(0))
    with pytest.raises(ValidationError):
        await sql_store.prediction_stats(T0, T0 + timedelta(days=365), timedelta(seconds=1))


async def test_decision_counts_group_by_utc_day_label_and_action(sql_store: SqlStore) -> None:
    plus5 = timezone(timedelta(hours=5))
    late = T0.replace(hour=23, minute=30)  # 23:30 UTC, already the next day at +05:00
    await sql_store.record_decision(msg("1"), scores(), hold("insult"), late.astimezone(plus5))
    await sql_store.record_decision(msg("2"), scores(), hold("insult"), T0)
    await sql_store.record_decision(msg("3"), scores(), delete("toxic"), late + H)
    await sql_store.record_decision(msg("4"), scores(), ALLOW, T0)
    await sql_store.record_decision(msg("5", server_id="g2"), scores(), ALLOW, T0)
    day, next_day = date(2026, 3, 1), date(2026, 3, 2)
    assert await sql_store.decision_counts() == {
        (day, "insult", "hold"): 2,
        (next_day, "toxic", "delete"): 1,
        (day, None, "allow"): 2,
    }
    assert await sql_store.decision_counts(since=late, server_id="g1") == {
        (day, "insult", "hold"): 1,
        (next_day, "toxic", "delete"): 1,
    }
    assert await sql_store.decision_counts(until=T0 + H, server_id="g2") == {(day, None, "allow"): 1}


async def test_model_versions(sql_store: SqlStore) -> None:
    assert await sql_store.active_model_version() is None
    assert await sql_store.register_model_version("v1", {"labels": list(LABELS), "f1": 0.71}, T0)
    assert not await sql_store.register_model_version("v1", {"other": True}, T0)
    assert await sql_store.register_model_version("v2", {"f1": 0.74}, T0 + H)
    await sql_store.promote_model_version("v1", T0)
    assert await sql_store.active_model_version() == "v1"
    await sql_store.promote_model_version("v2", T0 + 2 * H)
    assert await sql_store.active_model_version() == "v2"
    records = await sql_store.list_model_versions()
    assert [(r.version, r.active) for r in records] == [("v1", False), ("v2", True)]
    assert records[0].card == {"labels": list(LABELS), "f1": 0.71}
    assert records[1].promoted_at == T0 + 2 * H
    with pytest.raises(NotFound):
        await sql_store.promote_model_version("v9")
