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
