"""Post-hoc calibration (per-label Platt scaling folded into the head) and threshold selection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve

from moderation.labels import LABELS
from moderation.scoring.artifact import Thresholds
from moderation.scoring.backend import ToxicityModel
from training.data import Example
from training.metrics import arrays, sigmoid

#: Fewer known rows or positives than this for a label: no per-label fit (the identity is kept).
MIN_ROWS, MIN_POSITIVES = 50, 5


def fit_per_label(features: np.ndarray, rows: Sequence[Example]) -> list[tuple[np.ndarray, float] | None]:
    """Per label, ``(coef, intercept)`` of a logistic regression (C = 100) of the label on
    ``features[:, j, :]`` over the rows where it is known; None when the label has fewer than
    ``MIN_ROWS`` known rows or ``MIN_POSITIVES`` positives, or no negatives."""
    labels, masks = arrays(rows)
    out: list[tuple[np.ndarray, float] | None] = []
    for j in range(len(LABELS)):
        known = masks[:, j] > 0
        y = labels[known, j]
        if known.sum() < MIN_ROWS or y.sum() < MIN_POSITIVES or y.sum() == len(y):
            out.append(None)
            continue
        lr = LogisticRegression(C=100.0)
        lr.fit(features[known, j, :], y)
        out.append((lr.coef_[0].astype(float), float(lr.intercept_[0])))
    return out


def platt(logits: np.ndarray, rows: Sequence[Example]) -> dict[str, np.ndarray]:
    """Per label ``(scale, shift)`` so that ``sigmoid(scale * z + shift)`` is calibrated on ``rows``.

    Training with ``pos_weight`` and oversampling inflates positive probabilities; Platt scaling on
    held-out rows undoes that without changing the ranking (AUC is unchanged: scale stays positive).
    """
    scale = np.ones(len(LABELS))
    shift = np.zeros(len(LABELS))
    for j, fit in enumerate(fit_per_label(logits[:, :, None], rows)):
        if fit is not None and fit[0][0] > 0.05:
            scale[j], shift[j] = float(fit[0][0]), fit[1]
    return {"scale": scale, "shift": shift}


def calibrate_head(
    model: ToxicityModel, logits: np.ndarray, rows: Sequence[Example]
) -> dict[str, np.ndarray]:
    """Fit Platt scaling on validation logits and fold it into the classifier weights in place."""
    params = platt(logits, rows)
    with torch.no_grad():
        w = model.classifier.weight
        b = model.classifier.bias
        s = torch.tensor(params["scale"], dtype=w.dtype, device=w.device)
        t = torch.tensor(params["shift"], dtype=w.dtype, device=w.device)
        w.mul_(s[:, None])
        b.mul_(s).add_(t)
    return params


def choose_thresholds(
    logits: np.ndarray,
    rows: Sequence[Example],
    *,
    review_recall: float = 0.85,
    act_precision: float = 0.90,
) -> dict[str, Thresholds]:
    """Per label: ``review_at`` where recall is still ≥ ``review_recall`` (hold for a human: cheap
    false positives), ``act_at`` the lowest threshold whose precision is ≥ ``act_precision`` (act
    automatically: false positives hurt members). Bounded to sane ranges for labels with few positives."""
    probs = sigmoid(logits)
    labels, masks = arrays(rows)
    out: dict[str, Thresholds] = {}
    for j, lab in enumerate(LABELS):
        known = masks[:, j] > 0
        y, p = labels[known, j], probs[known, j]
        if y.sum() < 5 or y.sum() == len(y):
            out[lab] = Thresholds(0.5, 0.9)
            continue
        precision, recall, thr = precision_recall_curve(y, p)
        precision, recall = precision[:-1], recall[:-1]
        ok = np.where(recall >= review_recall)[0]
        review = float(thr[ok[-1]]) if len(ok) else float(thr[0])
        good = np.where(precision >= act_precision)[0]
        act = float(thr[good[0]]) if len(good) else 0.9
        review = float(np.clip(review, 0.05, 0.8))
        act = float(np.clip(max(act, review + 0.1), 0.3, 0.97))
        out[lab] = Thresholds(round(review, 3), round(act, 3))
    return out
