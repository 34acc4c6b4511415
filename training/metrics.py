"""Validation metrics over partially labelled rows: each label is measured only where it is known."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from moderation.labels import LABELS
from training.data import Example


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def arrays(rows: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([e.labels for e in rows], dtype=np.float64).reshape(-1, len(LABELS)),
        np.array([e.mask for e in rows], dtype=np.float64).reshape(-1, len(LABELS)),
    )


def safe_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    if len(y) == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, p))


def safe_ap(y: np.ndarray, p: np.ndarray) -> float | None:
    if len(y) == 0 or y.max() == 0:
        return None
    return float(average_precision_score(y, p))


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error with equal-width bins."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return float(total)


def prf(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    pred = p >= threshold
    tp = float((pred & (y > 0.5)).sum())
    fp = float((pred & (y < 0.5)).sum())
    fn = float((~pred & (y > 0.5)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def per_label(
    probs: np.ndarray, rows: Sequence[Example], thresholds: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    labels, masks = arrays(rows)
    out: dict[str, dict[str, Any]] = {}
    for j, lab in enumerate(LABELS):
        known = masks[:, j] > 0
        y, p = labels[known, j], probs[known, j]
        entry: dict[str, Any] = {
            "n": int(known.sum()),
            "positives": int(y.sum()),
            "roc_auc": safe_auc(y, p),
            "pr_auc": safe_ap(y, p),
            "ece": ece(y, p) if len(y) else None,
        }
        if len(y):
            entry["at_0.5"] = prf(y, p, 0.5)
        if thresholds and lab in thresholds:
            t = thresholds[lab]
            review, act = (
                (t.review_at, t.act_at) if hasattr(t, "review_at") else (t["review_at"], t["act_at"])
            )
            entry["at_review"] = {"threshold": review, **prf(y, p, review)}
            entry["at_act"] = {"threshold": act, **prf(y, p, act)}
        out[lab] = entry
    return out


def source_report(probs: np.ndarray, rows: Sequence[Example]) -> dict[str, dict[str, Any]]:
    """Per source: AUC of each label it provides; for all-label sources the mean and any-toxic AUC."""
    labels, masks = arrays(rows)
    sources = sorted({e.source for e in rows})
    out: dict[str, dict[str, Any]] = {}
    for src in sources:
        sel = np.array([e.source == src for e in rows])
        entry: dict[str, Any] = {"n": int(sel.sum())}
        aucs = []
        for j, lab in enumerate(LABELS):
            known = sel & (masks[:, j] > 0)
            if known.any():
                auc = safe_auc(labels[known, j], probs[known, j])
                entry[f"{lab}_auc"] = auc
                entry[f"{lab}_pr_auc"] = safe_ap(labels[known, j], probs[known, j])
                if auc is not None:
                    aucs.append(auc)
        if (masks[sel] > 0).all():
            entry["mean_auc"] = float(np.mean(aucs)) if aucs else None
            any_y = labels[sel].max(1)
            entry["any_toxic_auc"] = safe_auc(any_y, probs[sel].max(1))
        out[src] = entry
    return out


def validation_report(
    logits: np.ndarray, rows: Sequence[Example], thresholds: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    probs = sigmoid(logits)
    return {"labels": per_label(probs, rows, thresholds), "sources": source_report(probs, rows)}
