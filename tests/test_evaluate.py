"""``chatmod eval`` on small real slices of the shared data with the shipped model: the report's parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moderation.labels import LABELS

pytestmark = pytest.mark.slow


def test_eval_command_writes_the_report(shared_data: Path, tmp_path: Path) -> None:
    from bot.cli import _register_all, app

    _register_all()

    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        ["eval", "--data", str(shared_data), "--out", str(out), "--limit", "60"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    for png in ("roc.png", "roc_jigsaw.png", "reliability.png"):
        assert (out / png).stat().st_size > 1000, png
    # Per-label metrics at the card's thresholds, per-source AUCs, and the baseline beside them.
    assert set(metrics["labels"]) == set(LABELS)
    toxic = metrics["labels"]["toxic"]
    assert 0.5 < toxic["roc_auc"] <= 1.0 and 0.0 <= toxic["ece"] <= 1.0
    assert {"at_review", "at_act"} <= set(toxic)
    assert {"jigsaw", "davidson", "olid", "hatexplain"} <= set(metrics["sources"])
    assert set(metrics["baseline_sources"]) == set(metrics["sources"])
    # Bias templates, robustness per transform, explanation spans, int8 on the same rows.
    assert metrics["bias"]["subgroup_auc_gap"] is not None
    assert {"leetspeak", "spacing", "confusables"} <= set(metrics["robustness"]["transforms"])
    assert 0.0 <= metrics["spans"]["span_f1"] <= 1.0
    q = metrics["int8"]
    assert q["n"] == metrics["valid_rows"]
    assert 0.0 < q["mean_abs_prob_diff"] < 0.1
    assert 0.5 < q["jigsaw_int8"]["any_toxic_auc"] <= 1.0
    o = metrics["int8_onnx"]  # ONNX Runtime's int8 on the same rows
    assert o["engine"] == "onnx" and o["n"] == q["n"]
    assert 0.0 < o["mean_abs_prob_diff"] < 0.1
    assert "ONNX Runtime, per-channel" in report
    for heading in ("int8", "TF-IDF", "Robustness", "toxic spans"):
        assert heading.lower() in report.lower(), heading
