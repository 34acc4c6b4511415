"""Which words drove a label: occlusion measured in logit space.

``TorchScorer.explain`` ranks words by the drop in *probability* without them; for a clearly toxic
message every probability sits near 1.0, so single-word drops round to nothing and moderators would
see no evidence exactly when they need it. The logit does not saturate, so the same occlusion over
``score_matrix`` ranks the words usefully at any confidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

MAX_WORDS = 64  # occlusion costs one model row per word: bound it for long messages
_WORD = re.compile(r"\S+")
_PUNCT = ".,!?;:\"'()[]{}<>"


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def occlusion_evidence(
    scorer: Any, text: str, labels: Sequence[str], top_k: int = 4, min_drop: float = 0.05
) -> dict[str, list[tuple[str, float]]]:
    """label -> up to ``top_k`` (word, logit drop without it), strongest first."""
    words = [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)][:MAX_WORDS]
    wanted = [(label, scorer.labels.index(label)) for label in labels if label in scorer.labels]
    if not words or not wanted:
        return {}
    variants = [text] + [text[:s] + text[e:] for _, s, e in words]
    rows = scorer.score_matrix(variants)
    out: dict[str, list[tuple[str, float]]] = {}
    for label, j in wanted:
        base = _logit(rows[0][j])
        drops = sorted(((base - _logit(rows[k + 1][j]), k) for k in range(len(words))), reverse=True)
        picked = [
            (words[k][0].strip(_PUNCT) or words[k][0], round(d, 3)) for d, k in drops[:top_k] if d > min_drop
        ]
        if picked:
            out[label] = picked
    return out
