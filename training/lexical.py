"""Fit the lexical head (``moderation.scoring.lexical``) and attach it to a fine-tuned artifact.

``attach_lexical``: the TF-IDF + logistic-regression model is trained on the artifact's own training
split (the same rows, features and solver as the report's baseline, ``training.baseline``); the
per-label stacking ``(a, b, c)`` is a two-input Platt scaling fitted on the validation rows the
calibration uses (``pipeline.CALIBRATION_EXCLUDED`` left out), exactly like the head's own
calibration. Thresholds are then re-chosen and the card's metrics recomputed on the stacked scores.
Where the fit gives the lexical score no positive weight (too few positives, or it only adds noise),
that label keeps the transformer alone.

Because the stacking reads validation rows, the artifact must have been trained on this split (the
card's data snapshot is checked, as ``chatmod soup`` does); otherwise its validation scores would be
scores on training rows.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from moderation.labels import LABELS
from moderation.scoring.artifact import ModelCard, check_artifact, write_card
from moderation.scoring.lexical import (
    LEXICAL_ARRAYS,
    LEXICAL_JSON,
    AnalyzerSpec,
    LexicalHead,
    identity_stack,
    logit,
)
from training.baseline import TfidfBaseline
from training.calibrate import fit_per_label
from training.data import Example, Split

log = logging.getLogger(__name__)

#: Most n-grams per analyzer. 50k word + 50k char n-grams stacked as well as 200k + 200k on the shared
#: validation split (Jigsaw any-toxic 0.9843 vs 0.9845, mean six-label 0.9700 both) at a quarter of
#: the size in the artifact (docs/MODEL.md "The lexical head").
MAX_FEATURES = 50_000
#: Character n-gram lengths. sklearn's ``char_wb`` analyzer is pure Python and its cost grows with the
#: number of lengths: 2–5-grams cost 0.61 ms of CPU per chat message, 4-grams alone 0.15 ms (word 1–2-
#: grams included; AMD EPYC, 2 cores) with the same stacked AUCs on every source to ±0.0006.
CHAR_RANGE = (4, 4)


def head_from_baseline(base: TfidfBaseline, info: dict[str, Any] | None = None) -> LexicalHead:
    """A fitted ``TfidfBaseline`` as a ``LexicalHead`` (stacking: the transformer alone until fitted)."""
    specs, vocabs, idfs = [], [], []
    for vec in (base.word, base.char):
        vocab = [""] * len(vec.vocabulary_)
        for term, i in vec.vocabulary_.items():
            vocab[i] = term
        lo, hi = vec.ngram_range
        spec = AnalyzerSpec(
            str(vec.analyzer), (int(lo), int(hi)), bool(vec.sublinear_tf), bool(vec.lowercase)
        )
        specs.append(spec)
        vocabs.append(vocab)
        idfs.append(np.asarray(vec.idf_))
    width = sum(len(v) for v in vocabs)
    coef = np.zeros((len(LABELS), width), dtype=np.float32)
    intercept = np.zeros(len(LABELS), dtype=np.float32)
    for j, lab in enumerate(LABELS):
        m = base.models[lab]
        if isinstance(m, float):  # the label never varies in training: a constant
            intercept[j] = float(logit(np.array(m)))
        else:
            coef[j] = m.coef_[0]
            intercept[j] = m.intercept_[0]
    return LexicalHead(LABELS, specs, vocabs, idfs, coef, intercept, identity_stack(len(LABELS)), info)


def fit_stack(model_probs: np.ndarray, lexical_logits: np.ndarray, rows: Sequence[Example]) -> np.ndarray:
    """Per label ``(a, b, c)``: logistic regression of the label on ``[logit(p_model), z_lexical]`` over
    the rows where it is known. ``(1, 0, 0)`` (the transformer alone) when the label has too few rows
    or positives, or the fit gives the lexical score no positive weight."""
    stack = identity_stack(len(LABELS))
    features = np.stack([logit(model_probs), lexical_logits], axis=2)
    for j, fit in enumerate(fit_per_label(features, rows)):
        if fit is not None and fit[0][0] > 0.05 and fit[0][1] > 0.0:
            stack[j] = (float(fit[0][0]), float(fit[0][1]), fit[1])
    return stack


def attach_lexical(
    model_dir: Path,
    split: Split,
    out_dir: Path,
    *,
    version: str | None = None,
    max_features: int = MAX_FEATURES,
    calibration_excluded: frozenset[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write ``out_dir``: ``model_dir``'s encoder, tokenizer and card plus a fitted lexical head, with
    re-chosen thresholds and the card's metrics on the stacked scores. Returns (path, summary)."""
    from moderation.scoring.backend import TorchScorer
    from training.calibrate import choose_thresholds
    from training.evaluate import score_probs
    from training.metrics import source_report, validation_report
    from training.pipeline import CALIBRATION_EXCLUDED
    from training.soup import check_same_split

    excluded = CALIBRATION_EXCLUDED if calibration_excluded is None else calibration_excluded
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    card = check_artifact(model_dir)
    check_same_split([(model_dir, card)], split)
    started = time.perf_counter()
    scorer = TorchScorer.load(model_dir, device="cpu")
    scorer.lexical = None  # the transformer alone: an earlier lexical head is replaced, not stacked on
    texts = [e.text for e in split.valid]
    prepared = [scorer.prepare(t) for t in texts]
    probs = score_probs(scorer, texts)
    base = TfidfBaseline(max_features=max_features, char_range=CHAR_RANGE).fit(split.train)
    head = head_from_baseline(base)
    zl = head.decision(prepared).astype(np.float64)
    pick = [i for i, e in enumerate(split.valid) if e.source not in excluded]
    calib_rows = [split.valid[i] for i in pick]
    head.stack = fit_stack(probs[pick], zl[pick], calib_rows)
    head.info = {
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_rows": len(split.train),
        "stack_rows": len(pick),
        "stack_sources": sorted({e.source for e in calib_rows}),
        "max_features": max_features,
        "char_range": list(CHAR_RANGE),
    }
    stacked = np.asarray(head.combine(probs.tolist(), prepared), dtype=np.float64)
    logits = logit(stacked, eps=1e-7)
    thresholds = choose_thresholds(logits[pick], calib_rows)
    metrics = validation_report(logits, split.valid, thresholds)
    for key in ("calibration", "train_wall_s", "train_device"):
        if key in card.metrics:
            metrics[key] = card.metrics[key]
    # The transformer alone on the same rows and windows (not the input card's metrics, which are the
    # stacked ones when that artifact already had a lexical head).
    metrics["transformer_alone"] = {"sources": source_report(probs, split.valid)}
    fit_s = round(time.perf_counter() - started, 1)

    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() != model_dir.resolve():
        for f in model_dir.iterdir():
            if f.is_file() and f.name not in (LEXICAL_JSON, LEXICAL_ARRAYS, "card.json"):
                shutil.copy2(f, out_dir / f.name)
    head.save(out_dir)
    summary = {
        "base_artifact": card.version,
        "fit_seconds": fit_s,
        **head.describe(),
        **{k: v for k, v in head.info.items() if k not in ("stack_rows",)},
    }
    new = ModelCard(
        labels=card.labels,
        version=version or f"{card.version}+lex",
        base_model=card.base_model,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        max_length=card.max_length,
        stride=card.stride,
        data=card.data,
        metrics=metrics,
        thresholds=thresholds,
        extra={**card.extra, "lexical": summary},
    )
    write_card(out_dir, new)
    check_artifact(out_dir)
    log.info("attached a lexical head to %s → %s (%s)", model_dir, out_dir, new.version)
    return out_dir, summary
