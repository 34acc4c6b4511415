"""Explanations: span F1 (SemEval-2021 definition) and occlusion spans against real toxic-spans posts."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.explain_eval import predicted_offsets, span_f1


@pytest.mark.parametrize(
    ("pred", "gold", "f1"),
    [
        ([], [], 1.0),
        ([1, 2], [], 0.0),
        ([], [1, 2], 0.0),
        ([1, 2, 3], [1, 2, 3], 1.0),
        ([1, 2], [1, 2, 3, 4], 2 * (1.0 * 0.5) / 1.5),
        ([7, 8], [1, 2], 0.0),
    ],
)
def test_span_f1(pred: list[int], gold: list[int], f1: float) -> None:
    assert span_f1(pred, gold) == pytest.approx(f1)


def test_predicted_offsets_pick_the_top_words_without_punctuation() -> None:
    text = "what a moron, honestly."
    attributions = [(0, 4, 0.01), (5, 6, 0.0), (7, 13, 0.6), (14, 23, 0.1)]
    offsets = predicted_offsets(text, attributions)
    assert "".join(text[i] for i in offsets) == "moron"
    assert predicted_offsets(text, [(0, 4, 0.001)]) == []


@pytest.mark.slow
def test_occlusion_finds_the_toxic_words_of_real_posts(shared_data: Path) -> None:
    """On the shipped model, occlusion spans beat marking every word on real toxic-spans posts."""
    from moderation.scoring.backend import TorchScorer
    from training.data import load_toxic_spans
    from training.explain_eval import span_report

    scorer = TorchScorer.load(None, device="cpu", threads=1)
    rows = load_toxic_spans(shared_data / "toxic_spans_trial.csv", limit=120)
    report = span_report(scorer, rows, sample=25, max_words=40)
    assert report["posts"] == 25
    assert report["span_f1"] > report["all_words_f1"]
    assert report["span_f1"] > 0.3

    text = "I hope you have a great day, you pathetic moron"
    explained = {e.label: e for e in scorer.explain(text, top_k=2, min_score=0.2)}
    assert "toxic" in explained
    assert any(w.strip(",.").lower() in {"moron", "pathetic"} for w, _ in explained["toxic"].words)
