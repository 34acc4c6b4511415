"""The model artifact: a directory with weights, tokenizer and ``card.json``.

Layout::

    model.safetensors      encoder + head weights (fp16 for the shipped default)
    config.json            the BERT encoder config
    tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json
    card.json              labels, version, base_model, created_at, data, metrics, thresholds,
                           max_length, stride

This module is pure (no torch): it reads and validates the card and checks the files exist, so a
missing or corrupt artifact fails with an ``ArtifactError`` naming the file before any weights load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moderation.errors import ModerationError
from moderation.labels import LABELS

CARD = "card.json"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
REQUIRED_FILES = (CARD, WEIGHTS, CONFIG, "tokenizer.json")


class ArtifactError(ModerationError):
    """A model artifact is missing or corrupt; ``path`` names the offending file."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


def default_model_path() -> Path:
    """``models/default`` of the source tree this package was imported from."""
    return Path(__file__).resolve().parents[2] / "models" / "default"


@dataclass(frozen=True, slots=True)
class Thresholds:
    review_at: float
    act_at: float


@dataclass(slots=True)
class ModelCard:
    labels: tuple[str, ...]
    version: str
    base_model: str
    created_at: str
    max_length: int = 128
    stride: int = 96
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Thresholds] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "version": self.version,
            "base_model": self.base_model,
            "created_at": self.created_at,
            "max_length": self.max_length,
            "stride": self.stride,
            "data": self.data,
            "metrics": self.metrics,
            "thresholds": {
                k: {"review_at": t.review_at, "act_at": t.act_at} for k, t in self.thresholds.items()
            },
            **self.extra,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], path: Path | str = CARD) -> ModelCard:
        try:
            labels = tuple(str(x) for x in obj["labels"])
            thresholds = {
                str(k): Thresholds(float(v["review_at"]), float(v["act_at"]))
                for k, v in dict(obj.get("thresholds", {})).items()
            }
            known = {
                "labels",
                "version",
                "base_model",
                "created_at",
                "max_length",
                "stride",
                "data",
                "metrics",
                "thresholds",
            }
            card = cls(
                labels=labels,
                version=str(obj["version"]),
                base_model=str(obj.get("base_model", "")),
                created_at=str(obj.get("created_at", "")),
                max_length=int(obj.get("max_length", 128)),
                stride=int(obj.get("stride", 96)),
                data=dict(obj.get("data", {})),
                metrics=dict(obj.get("metrics", {})),
                thresholds=thresholds,
                extra={k: v for k, v in obj.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(path, f"invalid card: {exc!r}") from exc
        if not labels or len(set(labels)) != len(labels):
            raise ArtifactError(path, f"invalid card: labels {labels!r}")
        unknown = set(labels) - set(LABELS)
        if unknown:
            raise ArtifactError(path, f"invalid card: unknown labels {sorted(unknown)}")
        if not 8 <= card.max_length <= 512 or not 0 < card.stride <= card.max_length:
            raise ArtifactError(path, f"invalid card: max_length={card.max_length} stride={card.stride}")
        return card


def write_card(directory: Path, card: ModelCard) -> Path:
    path = Path(directory) / CARD
    path.write_text(json.dumps(card.to_json(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def read_card(directory: Path | str) -> ModelCard:
    path = Path(directory) / CARD
    if not path.is_file():
        raise ArtifactError(path, "model card not found")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(path, f"cannot read model card: {exc}") from exc
    if not isinstance(obj, dict):
        raise ArtifactError(path, "model card is not a JSON object")
    return ModelCard.from_json(obj, path)


def check_artifact(directory: Path | str) -> ModelCard:
    """Validate an artifact directory's files and card; return the card."""
    d = Path(directory)
    if not d.is_dir():
        raise ArtifactError(d, "model directory not found")
    for name in REQUIRED_FILES:
        if not (d / name).is_file():
            raise ArtifactError(d / name, "required artifact file missing")
    config = d / CONFIG
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(config, f"corrupt encoder config: {exc}") from exc
    return read_card(d)
