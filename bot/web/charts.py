"""Dashboard statistics (pure functions over records) and their inline-SVG charts (no JS, no CDN)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import TypeVar

from bot.web.context import QueueSample
from moderation.domain import Action, Case, Verdict
from moderation.store.analytics import PredictionBucket

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#64748b")
AUTO_REASONS = frozenset({"over_act_threshold", "strike_ladder"})
CONFIRMED = frozenset({Verdict.UPHOLD, Verdict.DELETE, Verdict.TIMEOUT})
REVERSED = frozenset({Verdict.RESTORE, Verdict.DISMISS})

Point = tuple[datetime, float]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: tuple[Point, ...]


def bucket_of(at: datetime, start: datetime, width: timedelta) -> datetime:
    n = int((at - start) / width)
    return start + n * width


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _buckets(
    items: Iterable[tuple[datetime, T]], start: datetime, width: timedelta
) -> dict[datetime, list[T]]:
    out: dict[datetime, list[T]] = {}
    for at, value in items:
        if at < start:
            continue
        out.setdefault(bucket_of(at, start, width), []).append(value)
    return dict(sorted(out.items()))


def latency_series(buckets: Sequence[PredictionBucket]) -> list[Series]:
    """p50 and p95 of scoring latency (ms) per bucket (empty buckets leave gaps)."""
    full = [b for b in buckets if b.count and b.latency_p50_ms is not None]
    return [
        Series("p50 ms", tuple((b.start, float(b.latency_p50_ms or 0.0)) for b in full)),
        Series("p95 ms", tuple((b.start, float(b.latency_p95_ms or 0.0)) for b in full)),
    ]


def label_series(buckets: Sequence[PredictionBucket], labels: Sequence[str]) -> list[Series]:
    """Share of scored texts (%) with each label at or over 0.5, per bucket: drift shows as a trend."""
    full = [b for b in buckets if b.count]
    return [
        Series(label, tuple((b.start, 100.0 * b.flagged.get(label, 0) / b.count) for b in full))
        for label in labels
    ]


@dataclass(frozen=True, slots=True)
class Precision:
    confirmed: int
    reversed: int

    @property
    def reviewed(self) -> int:
        return self.confirmed + self.reversed

    @property
    def value(self) -> float | None:
        return self.confirmed / self.reviewed if self.reviewed else None


def is_automatic(case: Case) -> bool:
    return case.decision.reason in AUTO_REASONS and case.decision.action in (Action.DELETE, Action.TIMEOUT)


def precision_of(cases: Iterable[Case]) -> Precision:
    confirmed = reversed_ = 0
    for c in cases:
        if c.verdict in CONFIRMED:
            confirmed += 1
        elif c.verdict in REVERSED:
            reversed_ += 1
    return Precision(confirmed, reversed_)


def precision_series(cases: Sequence[Case], start: datetime, width: timedelta) -> list[Series]:
    """Precision (%) of automatic actions and of holds, from moderator verdicts, per bucket."""
    out = []
    for name, pick in (
        ("automatic actions", is_automatic),
        ("holds", lambda c: c.decision.action is Action.HOLD),
    ):
        groups = _buckets(
            ((c.decided_at, c) for c in cases if pick(c) and c.verdict is not None), start, width
        )
        pts = []
        for t, group in groups.items():
            p = precision_of(group).value
            if p is not None:
                pts.append((t, 100.0 * p))
        out.append(Series(name, tuple(pts)))
    return out


def queue_series(samples: Sequence[QueueSample], start: datetime) -> list[Series]:
    recent = [s for s in samples if s.at >= start]
    return [
        Series("review queue", tuple((s.at, float(s.review_open)) for s in recent)),
        Series("scoring queue", tuple((s.at, float(s.scoring_depth)) for s in recent)),
    ]


def _fmt_time(t: datetime, span: timedelta) -> str:
    return t.strftime("%H:%M" if span <= timedelta(days=1) else "%m-%d %H:%M")


def line_chart(
    title: str,
    series: Sequence[Series],
    start: datetime,
    end: datetime,
    *,
    unit: str = "",
    y_max: float | None = None,
    width: int = 560,
    height: int = 200,
) -> str:
    """An accessible inline SVG line chart. Every text is HTML-escaped."""
    left, right, top, bottom = 44, 10, 24, 36
    pw, ph = width - left - right, height - top - bottom
    values = [v for s in series for _, v in s.points]
    top_value = y_max if y_max is not None else max(values, default=0.0)
    top_value = top_value if top_value > 0 else 1.0
    span = max(end - start, timedelta(seconds=1))

    def x(t: datetime) -> float:
        return left + pw * min(1.0, max(0.0, (t - start) / span))

    def y(v: float) -> float:
        return top + ph * (1 - min(v, top_value) / top_value)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="15" class="chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" class="axis"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = top_value * frac
        label = f"{v:.0f}" if top_value >= 10 else f"{v:.2g}"
        parts.append(
            f'<text x="{left - 4}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(label)}{escape(unit)}</text>"
        )
        if frac:
            parts.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" class="grid"/>')
    for t, anchor in ((start, "start"), (start + span / 2, "middle"), (end, "end")):
        parts.append(
            f'<text x="{x(t):.1f}" y="{top + ph + 14}" class="tick" text-anchor="{anchor}">'
            f"{escape(_fmt_time(t, span))}</text>"
        )
    if not values:
        parts.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" class="empty" '
            'text-anchor="middle">no data yet</text>'
        )
    legend_x = left
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        if s.points:
            pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
            for t, v in s.points[-60:]:
                parts.append(
                    f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                    f"<title>{escape(s.name)}: {v:.3g}{escape(unit)}</title></circle>"
                )
        parts.append(f'<rect x="{legend_x}" y="{height - 12}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 3}" class="legend">{escape(s.name)}</text>')
        legend_x += 18 + 7 * len(s.name)
    parts.append("</svg>")
    return "".join(parts)


def window_for(hours: float, now: datetime) -> tuple[datetime, timedelta]:
    """Start of the window and a bucket width giving about 24 buckets."""
    start = now - timedelta(hours=hours)
    width = timedelta(hours=hours) / 24
    return start, width


def chart_bundle(
    buckets: Sequence[PredictionBucket],
    cases: Sequence[Case],
    samples: Sequence[QueueSample],
    labels: Sequence[str],
    start: datetime,
    width: timedelta,
    now: datetime,
) -> Mapping[str, str]:
    return {
        "latency": line_chart(
            "Scoring latency p50/p95 (cache hits included)", latency_series(buckets), start, now, unit=" ms"
        ),
        "labels": line_chart(
            "Label distribution: % of texts scoring ≥ 0.5",
            label_series(buckets, labels),
            start,
            now,
            unit="%",
        ),
        "precision": line_chart(
            "Precision from moderator verdicts",
            precision_series(cases, start, width),
            start,
            now,
            unit="%",
            y_max=100,
        ),
        "queue": line_chart("Queue depth", queue_series(samples, start), start, now),
    }
