"""Validate occlusion explanations against the SemEval-2021 toxic spans (character-level span F1)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from typing import Any

from training.data import Example

_EDGE = re.compile(r"^\W+|\W+$")


def span_f1(pred: Iterable[int], gold: Iterable[int]) -> float:
    """SemEval-2021 Task 5 per-post F1 over character offsets (both empty → 1)."""
    p, g = set(pred), set(gold)
    if not g:
        return 1.0 if not p else 0.0
    if not p:
        return 0.0
    tp = len(p & g)
    if tp == 0:
        return 0.0
    precision, recall = tp / len(p), tp / len(g)
    return 2 * precision * recall / (precision + recall)


def predicted_offsets(
    text: str, attributions: Sequence[tuple[int, int, float]], *, rel: float = 0.5, floor: float = 0.02
) -> list[int]:
    """Characters of the words whose occlusion drop is ≥ ``rel`` × the largest drop (and ≥ ``floor``),
    without leading/trailing punctuation (the gold spans mostly exclude it)."""
    if not attributions:
        return []
    top = max(d for _, _, d in attributions)
    if top < floor:
        return []
    out: list[int] = []
    for start, end, drop in attributions:
        if drop >= max(floor, rel * top):
            word = text[start:end]
            lead = len(word) - len(word.lstrip("\"'([{*_.,!?;:-"))
            core = _EDGE.sub("", word)
            if core:
                s = start + lead
                out.extend(range(s, s + len(core)))
    return out


def span_report(
    scorer: Any, rows: Sequence[Example], *, sample: int = 150, max_words: int = 60, seed: int = 5
) -> dict[str, Any]:
    """Mean span F1 of occlusion explanations for ``toxic`` on a sample of toxic-spans posts.

    Baselines for context: every word marked, and no word marked (empty posts score 1)."""
    eligible = [e for e in rows if e.spans is not None and len(e.text.split()) <= max_words]
    picked = random.Random(seed).sample(eligible, k=min(sample, len(eligible)))
    f1s, f1_all, f1_none = [], [], []
    for ex in picked:
        gold = ex.spans or ()
        attributions = scorer.word_attributions(ex.text, "toxic")
        f1s.append(span_f1(predicted_offsets(ex.text, attributions), gold))
        every = [i for s, e, _ in attributions for i in range(s, e)]
        f1_all.append(span_f1(every, gold))
        f1_none.append(span_f1([], gold))
    n = max(1, len(picked))
    return {
        "posts": len(picked),
        "span_f1": sum(f1s) / n,
        "all_words_f1": sum(f1_all) / n,
        "no_words_f1": sum(f1_none) / n,
        "method": "occlusion (word removal), words with drop >= 0.5 x max",
    }
