"""Scheduled retraining from moderator verdicts (`chatmod retrain`).

Verdicts (overrides and appeal outcomes) become labelled examples, mixed with the base data; a candidate
is trained, both the current and the candidate model are scored on the same frozen evaluation set (the
seeded validation split of the base data), and the candidate is promoted only if it is not worse
(``moderation.promotion.should_promote``). Promotion writes ``<models_root>/<version>/``, repoints
``<models_root>/current`` atomically, records the version in the store and publishes a reload notice that
`chatmod worker`s act on without dropping requests. Threshold recommendations from the verdicts are
written to the report for admins; they are never applied automatically.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from moderation.domain import Verdict
from moderation.labels import LABELS
from moderation.policy import DEFAULT_TIERS, Tiers
from moderation.ports import TextScorer
from moderation.promotion import VerdictPoint, recommend_thresholds, should_promote
from moderation.service import verdict_labels
from training.data import Example, load_shared, make

log = logging.getLogger(__name__)

_NEGATIVE = {Verdict.RESTORE, Verdict.DISMISS}


@dataclass
class RetrainReport:
    status: str  # skipped | promoted | rejected
    verdicts: int
    reasons: list[str] = field(default_factory=list)
    current: dict[str, float] = field(default_factory=dict)
    candidate: dict[str, float] = field(default_factory=dict)
    candidate_path: str | None = None
    promoted_path: str | None = None
    recommended_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


async def collect_verdicts(
    store: Any, since: datetime | None = None
) -> tuple[list[Example], list[VerdictPoint]]:
    """Moderator verdicts on retained texts → training examples and per-label verdict points."""
    examples: list[Example] = []
    points: list[VerdictPoint] = []
    for item in await store.labelled_examples(since):
        case = await store.get_case(item.case_id)
        labels = verdict_labels(case, item.verdict)
        examples.append(make(item.text, "verdicts", **{k: float(v) for k, v in labels.items()}))
        fired = {h.label for h in case.decision.hits}
        for label, score in case.scores.items():
            if label in LABELS and (item.verdict in _NEGATIVE or label in fired):
                points.append(VerdictPoint(label, float(score), item.verdict not in _NEGATIVE))
    return examples, points


def frozen_eval_set(
    data_dir: Path, size: int = 2000, seed: int = 13, limit: int | None = None
) -> list[Example]:
    """A fixed sample of the base validation split (same rows every run, independent of verdicts)."""
    valid = load_shared(data_dir, seed=seed, limit=limit).valid
    valid.sort(key=lambda ex: hashlib.sha256(f"{seed}:{ex.text}".encode()).hexdigest())
    return valid[:size]


def evaluate(scorer: TextScorer, rows: Sequence[Example], batch: int = 64) -> dict[str, float]:
    """Mean per-label ROC-AUC (labels known in the rows, both classes present) and any-toxic AUC."""
    from sklearn.metrics import roc_auc_score

    probs = np.array(
        [
            [s[label] for label in LABELS]
            for i in range(0, len(rows), batch)
            for s in scorer.score_batch([r.text for r in rows[i : i + batch]])
        ]
    )
    targets = np.array([r.labels for r in rows], dtype=float)
    mask = np.array([r.mask for r in rows], dtype=bool)
    aucs: dict[str, float] = {}
    for j, label in enumerate(LABELS):
        m = mask[:, j]
        y = targets[m, j]
        if m.sum() and 0 < y.sum() < len(y):
            aucs[f"auc_{label}"] = float(roc_auc_score(y, probs[m, j]))
    out = dict(aucs)
    if aucs:
        out["mean_auc"] = float(np.mean(list(aucs.values())))
    toxic = LABELS.index("toxic")
    m = mask[:, toxic]
    y = (targets[m] * mask[m]).max(axis=1)
    if 0 < y.sum() < len(y):
        out["any_toxic_auc"] = float(roc_auc_score(y, probs[m].max(axis=1)))
    return out


def promote(candidate: Path, models_root: Path, version: str) -> Path:
    """Copy the candidate to ``models_root/version`` and atomically repoint ``models_root/current``."""
    models_root.mkdir(parents=True, exist_ok=True)
    target = models_root / version
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(candidate, target)
    tmp = models_root / f".current-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target.name)
    os.replace(tmp, models_root / "current")  # atomic on POSIX: readers see the old or the new model
    return target


async def retrain(
    *,
    store: Any,
    data_dir: Path,
    run_dir: Path,
    models_root: Path,
    current_model: Path | None,
    load_scorer: Callable[[Path | None], TextScorer],
    train_candidate: Callable[[Path, Path, Sequence[Example]], Path],
    min_new_verdicts: int = 50,
    since: datetime | None = None,
    eval_size: int = 2000,
    eval_limit: int | None = None,
    publish_reload: Callable[[str], Awaitable[None]] | None = None,
    current_tiers: Mapping[str, Tiers] = DEFAULT_TIERS,
    now: datetime,
) -> RetrainReport:
    """One retraining round. ``train_candidate(run_dir, out_dir, extra) -> artifact dir`` trains.

    ``current_tiers`` are the thresholds new servers get today (the current model card's); the
    recommendation keeps them for labels with too few verdicts.
    """
    examples, points = await collect_verdicts(store, since)
    current = load_scorer(current_model)
    report = RetrainReport("skipped", len(examples))
    report.recommended_thresholds = {
        label: {"review_at": t.review_at, "act_at": t.act_at}
        for label, t in recommend_thresholds(points, current_tiers).items()
    }
    if len(examples) < min_new_verdicts:
        report.reasons.append(f"{len(examples)} verdicts < min_new_verdicts {min_new_verdicts}")
        return report

    candidate_dir = await asyncio.to_thread(train_candidate, run_dir, run_dir / "artifact", examples)
    report.candidate_path = str(candidate_dir)
    candidate = load_scorer(candidate_dir)
    rows = await asyncio.to_thread(frozen_eval_set, data_dir, eval_size, limit=eval_limit)
    report.current = await asyncio.to_thread(evaluate, current, rows)
    report.candidate = await asyncio.to_thread(evaluate, candidate, rows)
    decision = should_promote(report.current, report.candidate)
    report.reasons.extend(decision.reasons)
    if not decision.promote:
        report.status = "rejected"
        log.info("retrain: candidate %s rejected: %s", candidate.version, "; ".join(decision.reasons))
        return report
    target = await asyncio.to_thread(promote, candidate_dir, models_root, candidate.version)
    report.status, report.promoted_path = "promoted", str(target)
    await store.register_model_version(
        candidate.version, {"path": str(target), "frozen_eval": report.candidate}, now
    )
    await store.promote_model_version(candidate.version, now)
    if publish_reload is not None:
        await publish_reload(str(models_root / "current"))
    log.info("retrain: promoted %s (%s)", candidate.version, "; ".join(decision.reasons))
    return report
