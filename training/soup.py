"""Weight averaging ("model soup", Wortsman et al. 2022) of fine-tuned artifacts.

Artifacts fine-tuned from the same base encoder usually lie in one basin of the loss, so the element-wise
mean of their weights is itself a good model — often better than each ingredient — at the inference cost
of one model (an ensemble of outputs would cost one forward pass per member). ``chatmod soup`` averages
two or more artifacts, then calibrates the result, picks thresholds and writes an artifact with its card
exactly as ``chatmod train`` does (``training.pipeline.finalize``), on the same validation split.

Only artifacts trained on that split may be mixed: an ingredient trained on another split may have seen
this split's validation rows, and the soup's validation figures would then be leaked. The cards' data
snapshots (file hashes and per-source counts) are compared with the split, and a mismatch is an error.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from moderation.labels import LABELS
from moderation.scoring.artifact import WEIGHTS, ArtifactError, ModelCard, read_card
from moderation.scoring.backend import ToxicityModel, read_weights
from training.data import Split

log = logging.getLogger(__name__)


def soup_shares(n: int, weights: Sequence[float] | None = None) -> list[float]:
    """Mixing shares of ``n`` ingredients: ``weights`` (default uniform) normalised to sum to 1."""
    if n < 2:
        raise ValueError("a soup needs at least two ingredients")
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    if len(w) != n or any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(f"soup weights must be {n} non-negative numbers with a positive sum: {w}")
    total = sum(w)
    return [x / total for x in w]


def average_weights(
    states: Sequence[dict[str, torch.Tensor]],
    weights: Sequence[float] | None = None,
    *,
    names: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The weighted mean (computed in fp32) of state dicts with identical keys, shapes and dtypes kinds.

    ``weights`` default to uniform and are normalised to sum to 1; non-float tensors (e.g. position ids)
    must be equal and are copied. ``names`` label the states in error messages."""
    w = soup_shares(len(states), weights)
    names = list(names) if names is not None else [f"#{i + 1}" for i in range(len(states))]
    first = states[0]
    for name, state in zip(names[1:], states[1:], strict=True):
        if state.keys() != first.keys():
            diff = sorted(set(state) ^ set(first))
            raise ValueError(f"{name}: its tensors differ from {names[0]}'s: {diff[:5]}")
        for key, tensor in state.items():
            if tensor.shape != first[key].shape:
                raise ValueError(
                    f"{name}: {key} has shape {tuple(tensor.shape)}, {names[0]} {tuple(first[key].shape)}"
                )
    out: dict[str, torch.Tensor] = {}
    for key, ref in first.items():
        if not ref.is_floating_point():
            for name, state in zip(names[1:], states[1:], strict=True):
                if not torch.equal(state[key], ref):
                    raise ValueError(f"{name}: non-float tensor {key} differs from {names[0]}'s")
            out[key] = ref.clone()
            continue
        acc = torch.zeros(ref.shape, dtype=torch.float32)
        for share, state in zip(w, states, strict=True):
            acc += share * state[key].to(torch.float32)
        out[key] = acc
    return out


def check_same_split(cards: Sequence[tuple[Path, ModelCard]], split: Split) -> None:
    """Every ingredient must have been trained on ``split`` (same source files, same per-source counts)."""
    want_files, want_counts = split.files, split.counts()
    for path, card in cards:
        files, counts = card.data.get("files"), card.data.get("counts")
        if files != want_files or counts != want_counts:
            raise ArtifactError(
                Path(path) / "card.json",
                "trained on another data split than this run's (its data snapshot differs): its "
                "validation rows may have been training rows, so the soup could not be validated",
            )
    lengths = {card.max_length for _path, card in cards}
    if len(lengths) != 1:
        raise ArtifactError(
            Path(cards[0][0]) / "card.json", f"ingredients differ in max_length: {sorted(lengths)}"
        )


def make_soup(
    ingredients: Sequence[Path],
    split: Split,
    base_model: str,
    weights: Sequence[float] | None = None,
) -> tuple[ToxicityModel, dict[str, Any]]:
    """Average the ingredients into a fresh model (eval mode, fp32) and describe them for the card."""
    shares = soup_shares(len(ingredients), weights)
    cards = [(Path(p), read_card(p)) for p in ingredients]
    check_same_split(cards, split)
    for path, card in cards:
        if tuple(card.labels) != LABELS:
            raise ArtifactError(path / "card.json", f"labels {card.labels} are not {LABELS}")
    states = [read_weights(p) for p in ingredients]
    mean = average_weights(states, shares, names=[str(p) for p in ingredients])
    model = ToxicityModel.from_base(base_model, len(LABELS))
    try:
        model.load_state_dict(mean)
    except RuntimeError as exc:
        raise ArtifactError(
            Path(ingredients[0]) / WEIGHTS, f"weights do not fit the base encoder: {exc}"
        ) from exc
    model.eval()
    info: dict[str, Any] = {
        "max_length": cards[0][1].max_length,  # the same for all (check_same_split)
        "ingredients": [
            {
                "version": card.version,
                "weight": round(share, 6),
                "train_wall_s": card.metrics.get("train_wall_s"),
                "train_device": card.metrics.get("train_device"),
                "training": card.extra.get("training"),
            }
            for (_path, card), share in zip(cards, shares, strict=True)
        ],
    }
    info["train_device"] = "; ".join(
        f"{card.version}: {card.metrics.get('train_device', 'unknown')}" for _path, card in cards
    )
    walls = [w for _path, card in cards if isinstance(w := card.metrics.get("train_wall_s"), int | float)]
    if len(walls) == len(cards):
        info["train_wall_s"] = round(sum(walls), 1)
    log.info("souped %s with weights %s", [c.version for _p, c in cards], [round(x, 3) for x in shares])
    return model, info
