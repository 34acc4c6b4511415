"""Predictions log, model versions and aggregate queries for the API and dashboard charts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from moderation.errors import NotFound, ValidationError
from moderation.labels import LABELS
from moderation.store._base import SqlBase, rowcount
from moderation.store.schema import cases, model_versions, predictions

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class PredictionBucket:
    """Predictions in ``[start, end)``: latency summary and per-label distribution (drift charts)."""

    start: datetime
    end: datetime
    count: int = 0
    latency_mean_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_max_ms: float | None = None
    #: label -> how many predictions scored at or over the flag threshold.
    flagged: Mapping[str, int] = field(default_factory=dict)
    #: label -> mean probability.
    mean_scores: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    version: str
    card: Mapping[str, Any]
    created_at: datetime
    promoted_at: datetime | None
    active: bool


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One logged prediction, as ``record_predictions`` takes it."""

    text_hash: str
    model_version: str
    latency_ms: float
    scores: Mapping[str, float]
    created_at: datetime
    source: str = "api"


def _prediction_values(row: PredictionRow) -> dict[str, Any]:
    clean = {k: float(v) for k, v in row.scores.items()}
    top = max(clean, key=lambda k: clean[k]) if clean else None
    return {
        "created_at": row.created_at,
        "source": row.source,
        "text_hash": row.text_hash,
        "model_version": row.model_version,
        "latency_ms": float(row.latency_ms),
        "scores": clean,
        "top_label": top,
        "top_score": clean[top] if top is not None else None,
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (what latency dashboards usually show)."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def bucket_start(at: datetime, since: datetime, bucket: timedelta) -> datetime:
    return since + bucket * ((at - since) // bucket)


class AnalyticsMixin(SqlBase):
    async def record_prediction(
        self,
        text_hash: str,
        model_version: str,
        latency_ms: float,
        scores: Mapping[str, float],
        created_at: datetime | None = None,
        *,
        source: str = "api",
    ) -> None:
        """Log one prediction (no text: only its hash)."""
        await self.record_predictions(
            [PredictionRow(text_hash, model_version, latency_ms, scores, created_at or self._clock(), source)]
        )

    async def record_predictions(self, rows: Iterable[PredictionRow]) -> int:
        """Log a batch of predictions in one transaction; returns how many were written."""
        values = [_prediction_values(r) for r in rows]
        if values:
            async with self._write() as s:
                await s.execute(insert(predictions), values)
        return len(values)

    async def prediction_stats(
        self,
        since: datetime,
        until: datetime,
        bucket: timedelta,
        *,
        flag_at: float = 0.5,
        source: str | None = None,
        model_version: str | None = None,
    ) -> list[PredictionBucket]:
        """Buckets of width ``bucket`` from ``since`` (inclusive) to ``until`` (exclusive), empty ones too.

        Aggregated here rather than in SQL: percentiles are not portable to SQLite, and a dashboard
        window holds few enough rows.
        """
        if bucket <= timedelta(0) or until <= since:
            raise ValidationError("bucket", "need a positive bucket and since < until")
        n = math.ceil((until - since) / bucket)
        if n > MAX_BUCKETS:
            raise ValidationError("bucket", f"{n} buckets requested; at most {MAX_BUCKETS}")
        stmt = select(predictions.c.created_at, predictions.c.latency_ms, predictions.c.scores).where(
            predictions.c.created_at >= since, predictions.c.created_at < until
        )
        if source is not None:
            stmt = stmt.where(predictions.c.source == source)
        if model_version is not None:
            stmt = stmt.where(predictions.c.model_version == model_version)
        latencies: list[list[float]] = [[] for _ in range(n)]
        sums: list[dict[str, float]] = [dict.fromkeys(LABELS, 0.0) for _ in range(n)]
        flagged: list[dict[str, int]] = [dict.fromkeys(LABELS, 0) for _ in range(n)]
        async with self._read() as s:
            for at, latency, scores in await s.execute(stmt):
                i = (at - since) // bucket
                latencies[i].append(float(latency))
                for label, p in scores.items():
                    sums[i][label] = sums[i].get(label, 0.0) + float(p)
                    flagged[i][label] = flagged[i].get(label, 0) + (1 if float(p) >= flag_at else 0)
        out: list[PredictionBucket] = []
        for i in range(n):
            start = since + bucket * i
            lat = sorted(latencies[i])
            if not lat:
                out.append(PredictionBucket(start, start + bucket, 0, flagged=flagged[i]))
                continue
            out.append(
                PredictionBucket(
                    start,
                    start + bucket,
                    len(lat),
                    latency_mean_ms=sum(lat) / len(lat),
                    latency_p50_ms=_percentile(lat, 0.50),
                    latency_p95_ms=_percentile(lat, 0.95),
                    latency_max_ms=lat[-1],
                    flagged=flagged[i],
                    mean_scores={k: v / len(lat) for k, v in sums[i].items()},
                )
            )
        return out

    async def decision_counts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        server_id: str | None = None,
    ) -> dict[tuple[date, str | None, str], int]:
        """(UTC day, top label, action) -> number of decisions. Erasure leaves these unchanged."""
        async with self._read() as s:
            day: ColumnElement[Any]
            if s.get_bind().dialect.name == "sqlite":
                day = func.date(cases.c.decided_at)  # stored as naive UTC text
            else:
                day = cast(func.timezone("UTC", cases.c.decided_at), Date)
            stmt = select(
                day.label("day"), cases.c.category, cases.c.action, func.count().label("n")
            ).group_by(day, cases.c.category, cases.c.action)
            if since is not None:
                stmt = stmt.where(cases.c.decided_at >= since)
            if until is not None:
                stmt = stmt.where(cases.c.decided_at < until)
            if server_id is not None:
                stmt = stmt.where(cases.c.server_id == server_id)
            rows = (await s.execute(stmt)).all()
        return {
            (d if isinstance(d, date) else date.fromisoformat(d), category, action): int(n)
            for d, category, action, n in rows
        }

    async def register_model_version(
        self, version: str, card: Mapping[str, Any], now: datetime | None = None
    ) -> bool:
        """Record a model version; False if it was already registered (the card is not changed)."""
        try:
            async with self._write() as s:
                await s.execute(
                    insert(model_versions).values(
                        version=version, card=dict(card), created_at=now or self._clock(), active=False
                    )
                )
        except IntegrityError:
            return False
        return True

    async def promote_model_version(self, version: str, now: datetime | None = None) -> None:
        """Make ``version`` the active one (and no other)."""
        async with self._write() as s:
            res = await s.execute(
                update(model_versions)
                .where(model_versions.c.version == version)
                .values(active=True, promoted_at=now or self._clock())
            )
            if rowcount(res) == 0:
                raise NotFound("model version", version)
            await s.execute(
                update(model_versions)
                .where(model_versions.c.version != version, model_versions.c.active.is_(True))
                .values(active=False)
            )

    async def active_model_version(self) -> str | None:
        async with self._read() as s:
            return (
                await s.execute(select(model_versions.c.version).where(model_versions.c.active.is_(True)))
            ).scalar_one_or_none()

    async def list_model_versions(self) -> list[ModelVersionRecord]:
        """Registered versions, oldest first."""
        async with self._read() as s:
            rows = (await s.execute(select(model_versions).order_by(model_versions.c.id))).mappings().all()
        return [
            ModelVersionRecord(r["version"], r["card"], r["created_at"], r["promoted_at"], bool(r["active"]))
            for r in rows
        ]
