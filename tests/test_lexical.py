"""The lexical head: TF-IDF + LR stacked on the transformer per label (moderation/scoring/lexical.py,
training/lexical.py) — file round trip, the stacking maths, typed errors, and the real scorer paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from moderation.labels import LABELS
from moderation.scoring.artifact import ArtifactError
from moderation.scoring.lexical import LEXICAL_ARRAYS, LEXICAL_JSON, LexicalHead, identity_stack
from training.baseline import TfidfBaseline
from training.data import Example
from training.lexical import fit_stack, head_from_baseline


@pytest.fixture(scope="module")
def fitted(shared_data: Path) -> tuple[TfidfBaseline, LexicalHead, list[str]]:
    from training.data import load_davidson, load_jigsaw

    rows = load_jigsaw(shared_data / "jigsaw2018_train_subset.csv", limit=400)
    rows += load_davidson(shared_data / "davidson2017_labeled_data.csv", limit=300)
    base = TfidfBaseline(max_features=5000).fit(rows)
    probe = [e.text for e in rows[:40]] + ["you are a stupid idiot", "thanks, see you tomorrow"]
    return base, head_from_baseline(base), probe


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def test_head_decision_is_the_fitted_baseline(fitted) -> None:
    base, head, probe = fitted
    want = _logit(base.predict_proba(probe))
    got = head.decision([base._prep([t])[0] for t in probe])
    assert got.shape == (len(probe), len(LABELS))
    # fp32 features and coefficients vs sklearn's float64: equal to well under any threshold's width.
    assert np.abs(got - want).max() < 1e-3


def test_save_load_round_trip_is_exact_to_fp16_coefficients(fitted, tmp_path: Path) -> None:
    _base, head, probe = fitted
    head.stack = np.array([[0.8, 0.3, -0.1]] * len(LABELS))
    head.save(tmp_path)
    meta = json.loads((tmp_path / LEXICAL_JSON).read_text())
    assert meta["format"] == 1 and meta["labels"] == list(LABELS)
    assert meta["stack"]["toxic"] == {"a": 0.8, "b": 0.3, "c": -0.1}
    loaded = LexicalHead.load(tmp_path, LABELS)
    assert loaded is not None
    np.testing.assert_allclose(loaded.decision(probe), head.decision(probe), atol=2e-2)
    np.testing.assert_array_equal(loaded.stack, head.stack)
    assert LexicalHead.load(tmp_path / "nothing-here", LABELS) is None
    head.stack = identity_stack(len(LABELS))


def test_combine_is_the_stacked_logistic_and_keeps_empty_texts_zero(fitted) -> None:
    _base, head, _probe = fitted
    texts = ["you are a stupid idiot", "", "   ", "have a nice day"]
    probs = [[0.9, 0.2, 0.5, 0.01, 0.7, 0.05], [0.0] * 6, [0.0] * 6, [0.1] * 6]
    head.stack = identity_stack(len(LABELS))
    same = head.combine(probs, texts)
    np.testing.assert_allclose(same, probs, atol=1e-6)  # (1, 0, 0): the transformer alone
    stack = np.array(
        [[0.8, 0.4, -0.2], [1.0, 0.0, 0.0], [0.9, 0.2, 0.1], [1, 0, 0], [1, 0.1, 0], [1, 0.3, 0]]
    )
    head.stack = stack
    out = np.array(head.combine(probs, texts))
    zl = head.decision([texts[0], texts[3]])
    zm = _logit(np.array([probs[0], probs[3]]))
    want = 1 / (1 + np.exp(-(stack[:, 0] * zm + stack[:, 1] * zl + stack[:, 2])))
    np.testing.assert_allclose(out[[0, 3]], want, rtol=1e-5)
    assert out[1].tolist() == [0.0] * 6 and out[2].tolist() == [0.0] * 6
    np.testing.assert_allclose(out[[0, 3], 1], [0.2, 0.1], rtol=1e-6)  # b = 0: that label untouched
    head.stack = identity_stack(len(LABELS))


def _rows(y: np.ndarray, known: int = 6) -> list[Example]:
    mask = [1.0] * known + [0.0] * (6 - known)
    return [Example(f"t{i}", [float(v)] + [0.0] * 5, mask, "jigsaw") for i, v in enumerate(y)]


def test_fit_stack_uses_an_informative_lexical_score_and_drops_a_useless_one() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    y = rng.random(n) < 0.2
    truth = np.where(y, 1.5, -1.5) + rng.normal(0, 1.5, n)
    zm = truth + rng.normal(0, 1.0, n)  # the transformer: noisy view of the truth
    zl_good = truth + rng.normal(0, 1.0, n)  # an independent noisy view: worth stacking
    probs = np.tile((1 / (1 + np.exp(-zm)))[:, None], (1, 6))
    rows = _rows(y.astype(float), known=1)  # only "toxic" known; other labels keep (1, 0, 0)
    good = fit_stack(probs, np.tile(zl_good[:, None], (1, 6)), rows)
    assert good[0, 1] > 0.2 and good[0, 0] > 0.05
    assert good[1:].tolist() == identity_stack(6)[1:].tolist()
    anti = fit_stack(probs, np.tile(-zl_good[:, None], (1, 6)), rows)  # anti-correlated: refused
    assert anti.tolist() == identity_stack(6).tolist()
    few = fit_stack(probs[:40], np.tile(zl_good[:40, None], (1, 6)), rows[:40])  # too few rows
    assert few.tolist() == identity_stack(6).tolist()


def test_broken_lexical_files_raise_typed_errors_naming_the_file(fitted, tmp_path: Path) -> None:
    _base, head, _probe = fitted
    head.save(tmp_path)
    (tmp_path / LEXICAL_ARRAYS).rename(tmp_path / "moved")
    with pytest.raises(ArtifactError, match="incomplete") as err:
        LexicalHead.load(tmp_path, LABELS)
    assert err.value.path == str(tmp_path / LEXICAL_ARRAYS)
    (tmp_path / "moved").write_bytes(b"not a safetensors file")
    (tmp_path / "moved").rename(tmp_path / LEXICAL_ARRAYS)
    with pytest.raises(ArtifactError, match="corrupt lexical arrays") as err:
        LexicalHead.load(tmp_path, LABELS)
    assert err.value.path == str(tmp_path / LEXICAL_ARRAYS)
    head.save(tmp_path)
    with pytest.raises(ArtifactError, match="labels"):
        LexicalHead.load(tmp_path, ("toxic",))
    meta = json.loads((tmp_path / LEXICAL_JSON).read_text())
    meta["format"] = 99
    (tmp_path / LEXICAL_JSON).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="unknown lexical format") as err:
        LexicalHead.load(tmp_path, LABELS)
    assert err.value.path == str(tmp_path / LEXICAL_JSON)
    (tmp_path / LEXICAL_JSON).write_text("{trunc")
    with pytest.raises(ArtifactError, match="corrupt lexical head"):
        LexicalHead.load(tmp_path, LABELS)


@pytest.mark.slow
def test_lexical_command_on_the_real_model_and_every_scoring_path(shared_data: Path, tmp_path: Path) -> None:
    """The shipped encoder + a lexical head fitted on a small real split, through the CLI: the card,
    the scorer (fp32, torch int8), the worker's fast path and ``chatmod score`` all use the head."""
    from typer.testing import CliRunner

    from bot.cli import _register_all, app
    from moderation.scoring.artifact import default_model_path, read_card
    from moderation.scoring.backend import TorchScorer
    from moderation.scoring.runner import _TorchFastPath
    from training.pipeline import prepare_split

    _register_all()
    run_dir = tmp_path / "run"
    split = prepare_split(shared_data, run_dir, limit=250)
    src = tmp_path / "encoder"
    shutil.copytree(default_model_path(), src, ignore=shutil.ignore_patterns("eval", "lexical.*"))
    card = json.loads((src / "card.json").read_text())
    card["data"] = {"files": split.files, "counts": split.counts()}
    (src / "card.json").write_text(json.dumps(card))

    out = tmp_path / "stacked"
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["lexical", str(src), "--out", str(out), "--run-dir", str(run_dir), "--version", "lex-test",
         "--max-features", "4000"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["base_artifact"] == card["version"] and summary["features"] > 1000
    new = read_card(out)
    assert new.version == "lex-test" and new.extra["lexical"]["uses_lexical"] == summary["uses_lexical"]
    assert set(new.thresholds) == set(LABELS) and "sources" in new.metrics
    assert (out / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()

    texts = ["you are a stupid worthless idiot", "", "thanks for the help with the migration!", "die " * 300]
    scorer = TorchScorer.load(out, device="cpu")
    assert scorer.lexical is not None
    stacked = scorer.score_matrix(texts)
    lexical, scorer.lexical = scorer.lexical, None
    alone = scorer.score_matrix(texts)
    scorer.lexical = lexical
    assert stacked[1] == [0.0] * 6 and alone[1] == [0.0] * 6
    # The card's "transformer alone" is this split scored without the head (not the input card's).
    from training.metrics import source_report

    want = source_report(np.array(scorer.score_matrix([e.text for e in split.valid])), split.valid)
    got_alone = new.metrics["transformer_alone"]["sources"]
    assert got_alone["jigsaw"]["any_toxic_auc"] == pytest.approx(want["jigsaw"]["any_toxic_auc"], abs=1e-6)
    assert got_alone["olid"]["toxic_auc"] == pytest.approx(want["olid"]["toxic_auc"], abs=1e-6)
    uses = [LABELS.index(lab) for lab in summary["uses_lexical"]]
    assert uses, "the fitted stack should use the lexical score for some label"
    assert any(abs(stacked[0][j] - alone[0][j]) > 1e-4 for j in uses)
    # The worker's fast path (tokenise at intake, run later) gives the very same scores.
    fast = _TorchFastPath(scorer)
    got = fast.score(fast.prepare(texts))
    np.testing.assert_allclose([[d[lab] for lab in LABELS] for d in got], stacked, atol=1e-6)
    int8 = TorchScorer.load(out, device="cpu", quantize=True)
    assert int8.lexical is not None
    assert np.abs(np.array(int8.score_matrix(texts)) - np.array(stacked)).max() < 0.35

    scored = runner.invoke(
        app, ["score", "--model", str(out), "-q"], input='{"text": "you idiot"}\n\n', catch_exceptions=False
    )
    assert scored.exit_code == 0, scored.output
    lines = [json.loads(x) for x in scored.stdout.strip().splitlines()]
    assert len(lines) == 2 and set(lines[0]) == set(LABELS) and all(v == 0.0 for v in lines[1].values())

    # An encoder trained on another split is refused (exit 3, the card named): nothing is written.
    other = tmp_path / "other"
    shutil.copytree(src, other)
    card["data"] = {"files": {"x.csv": "beef"}, "counts": {}}
    (other / "card.json").write_text(json.dumps(card))
    bad = runner.invoke(app, ["lexical", str(other), "--out", str(tmp_path / "x"), "--run-dir", str(run_dir)])
    assert bad.exit_code == 3 and "another data split" in bad.output
    assert not (tmp_path / "x").exists()
