"""Logit-space occlusion finds the words even when the probability is saturated near 1."""

from __future__ import annotations

from collections.abc import Sequence

from bot.web.explain import occlusion_evidence


class SaturatedScorer:
    labels = ("toxic", "insult")

    def score_matrix(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for t in texts:
            bad = ("idiot" in t) + ("stupid" in t)
            # probability-space drops are ~1e-4: invisible to probability occlusion
            out.append([[0.01, 0.9990, 0.99999][bad], [0.01, 0.5, 0.9][bad]])
        return out


def test_words_are_ranked_by_logit_drop() -> None:
    ev = occlusion_evidence(SaturatedScorer(), "shut up, you stupid idiot!", ["toxic", "insult", "threat"])
    assert {w for w, _ in ev["toxic"]} == {"stupid", "idiot"}  # punctuation stripped, both found
    assert all(d > 1 for _, d in ev["toxic"])
    assert "threat" not in ev  # not a label of this scorer


def test_nothing_to_explain() -> None:
    assert occlusion_evidence(SaturatedScorer(), "   ", ["toxic"]) == {}
    assert occlusion_evidence(SaturatedScorer(), "hello there", ["toxic"]) == {}
