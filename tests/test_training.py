"""Data loaders on small real slices of the shared files, the split, and two real training steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moderation.labels import LABELS
from training.data import (
    DataError,
    Example,
    dedup_key,
    in_validation,
    load_by_path,
    load_civil_comments,
    load_davidson,
    load_hatexplain,
    load_jigsaw,
    load_jigsaw_test,
    load_jsonl,
    load_olid,
    load_ruddit,
    load_toxic_spans,
    make,
    merge_duplicates,
)

ALL = [1.0] * len(LABELS)


def known(ex: Example) -> set[str]:
    return {lab for lab, m in zip(LABELS, ex.mask, strict=True) if m}


def positives(ex: Example) -> set[str]:
    return {lab for lab, v, m in zip(LABELS, ex.labels, ex.mask, strict=True) if m and v}


def test_jigsaw_subset_has_all_six_labels(shared_data: Path) -> None:
    rows = load_jigsaw(shared_data / "jigsaw2018_train_subset.csv", limit=300)
    assert len(rows) == 300
    assert all(ex.mask == ALL for ex in rows)
    assert any("toxic" in positives(ex) for ex in rows)
    assert rows[0].meta["id"]


def test_davidson_mapping(shared_data: Path) -> None:
    import csv

    rows = load_davidson(shared_data / "davidson2017_labeled_data.csv", limit=400)
    with (shared_data / "davidson2017_labeled_data.csv").open(newline="") as fh:
        classes = [int(r["class"]) for _, r in zip(range(400), csv.DictReader(fh), strict=False)]
    assert len(rows) == len(classes)
    for ex, cls in zip(rows, classes, strict=True):
        assert known(ex) == {"toxic", "identity_hate"}
        expected = {0: {"toxic", "identity_hate"}, 1: {"toxic"}, 2: set()}[cls]
        assert positives(ex) == expected
    assert {0, 1, 2} <= set(classes)


def test_olid_mapping(shared_data: Path) -> None:
    rows = load_olid(shared_data / "olid_training_v1.0.tsv", limit=600)
    assert all(known(ex) == {"toxic", "identity_hate"} for ex in rows)
    assert all("identity_hate" not in positives(ex) or "toxic" in positives(ex) for ex in rows)
    assert any(positives(ex) == {"toxic", "identity_hate"} for ex in rows)  # OFF/TIN/GRP
    assert any(positives(ex) == {"toxic"} for ex in rows)
    assert any(positives(ex) == set() for ex in rows)


def test_hatexplain_and_ruddit_only_toxic(shared_data: Path) -> None:
    hx = load_hatexplain(shared_data / "hatexplain_val.csv", limit=200)
    assert all(known(ex) == {"toxic"} for ex in hx)
    assert {0.0, 1.0} == {ex.value("toxic") for ex in hx}
    rd = load_ruddit(shared_data / "ruddit_with_text.csv", pos_at=0.4, neg_below=0.1)
    assert all(known(ex) == {"toxic"} for ex in rd)
    assert all(ex.text.strip() not in ("[deleted]", "[removed]") for ex in rd)
    assert 0 < sum(ex.value("toxic") for ex in rd) < len(rd)
    # the band between the two cut-offs is masked out entirely (not guessed)
    loose = load_ruddit(shared_data / "ruddit_with_text.csv", pos_at=0.4, neg_below=0.4)
    assert len(loose) > len(rd)


def test_toxic_spans_offsets(shared_data: Path) -> None:
    rows = load_toxic_spans(shared_data / "toxic_spans_trial.csv", limit=50)
    assert all(positives(ex) == {"toxic"} and known(ex) == {"toxic"} for ex in rows)
    first = rows[0]
    assert first.spans is not None
    assert first.text[first.spans[0] : first.spans[-1] + 1].strip().lower() in first.text.lower()
    assert "moron" in "".join(first.text[i] for i in first.spans)


def test_jsonl_moderation_lists_and_verdicts(tmp_path: Path) -> None:
    p = tmp_path / "mod.jsonl"
    p.write_text(
        "\n".join(
            [
                json.dumps({"text": "you idiot", "labels": {"moderation": ["toxic", "insult"]}}),
                json.dumps({"text": "nice day", "labels": {"moderation": ["safe"]}}),
                "",
                json.dumps({"text": "verdict row", "labels": {"toxic": 0, "threat": 1}}),
            ]
        )
    )
    a, b, c = load_jsonl(p)
    assert positives(a) == {"toxic", "insult"} and known(a) == set(LABELS)
    assert positives(b) == set() and known(b) == set(LABELS)
    assert known(c) == {"toxic", "threat"} and positives(c) == {"threat"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "labels": {"moderation": []}}\n{oops\n')
    with pytest.raises(DataError, match="line 2"):
        load_jsonl(bad)


def test_kaggle_test_labels_drop_minus_one(tmp_path: Path) -> None:
    (tmp_path / "test.csv").write_text('id,comment_text\na1,"hello there"\na2,"you fool"\na3,"x"\n')
    header = "id," + ",".join(LABELS)
    (tmp_path / "test_labels.csv").write_text(
        f"{header}\na1,0,0,0,0,0,0\na2,1,0,0,0,1,0\na3,-1,-1,-1,-1,-1,-1\n"
    )
    rows = load_jigsaw_test(tmp_path / "test.csv", tmp_path / "test_labels.csv")
    assert [r.text for r in rows] == ["hello there", "you fool"]
    assert positives(rows[1]) == {"toxic", "insult"}
    assert [r.text for r in load_by_path(tmp_path / "test.csv")] == ["hello there", "you fool"]


def test_civil_comments_threshold(tmp_path: Path) -> None:
    p = tmp_path / "civil.csv"
    p.write_text(
        "id,comment_text,toxicity,severe_toxicity,obscene,threat,insult,identity_attack\n"
        '1,"fine comment",0.1,0,0,0,0,0\n'
        '2,"awful comment",0.7,0.1,0.6,0,0.55,0.2\n'
    )
    rows = load_civil_comments(p, threshold=0.5)
    assert positives(rows[0]) == set() and known(rows[0]) == set(LABELS)
    assert positives(rows[1]) == {"toxic", "obscene", "insult"}
    assert positives(load_civil_comments(p, threshold=0.6)[1]) == {"toxic", "obscene"}
    assert len(load_by_path(p)) == 2
    with pytest.raises(DataError, match="file not found"):
        load_by_path(tmp_path / "nope.csv")


def test_dedup_merges_known_labels() -> None:
    a = make("You IDIOT", "jigsaw", **{**dict.fromkeys(LABELS, 0.0), "toxic": 1.0})
    b = make("you   idiot", "olid", toxic=1.0, identity_hate=0.0)
    c = make("Y​ou idi0t", "verdicts", insult=1.0)  # same text once normalised
    d = make("you are nice", "x", toxic=0.0)
    merged = merge_duplicates([a, b, c, d])
    assert len(merged) == 2
    first = merged[0]
    assert first.source == "jigsaw" and first.text == "You IDIOT"
    assert known(first) == set(LABELS) and positives(first) == {"toxic", "insult"}


def test_validation_split_is_fixed_and_never_leaks(shared_data: Path) -> None:
    from training.data import load_shared

    split = load_shared(shared_data, limit=300)
    assert in_validation("some text", 0.1) == in_validation("some text", 0.1)
    valid_keys = {dedup_key(e.text) for e in split.valid}
    assert valid_keys and not any(dedup_key(e.text) in valid_keys for e in split.train)
    again = load_shared(shared_data, limit=300)
    assert [e.text for e in again.valid] == [e.text for e in split.valid]
    assert {e.source for e in split.valid} >= {"jigsaw", "hatexplain", "toxic_spans_trial"}
    assert "toxic_spans_trial" not in {e.source for e in split.train}
    assert set(split.files) >= {"jigsaw2018_train_subset.csv", "olid_training_v1.0.tsv"}


def test_masked_bce_ignores_unknown_labels() -> None:
    import torch

    from training.train import masked_bce

    logits = torch.tensor([[5.0, -5.0], [0.0, 0.0]])
    targets = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    only_second_row = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    loss = masked_bce(logits, targets, only_second_row)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-5)


def test_bucketed_batches_cover_every_row_once() -> None:
    import random

    from training.train import bucketed_batches

    lengths = [random.Random(i).randint(3, 120) for i in range(1000)]
    batches = bucketed_batches(lengths, 32, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 30  # similar lengths share a batch: little padding


@pytest.mark.slow
def test_two_training_steps_and_resume(shared_data: Path, tmp_path: Path) -> None:
    import torch

    from training.pipeline import base_model_path, load_tokenizer
    from training.train import TrainConfig, train

    rows = load_jigsaw(shared_data / "jigsaw2018_train_subset.csv", limit=40)
    rows += load_olid(shared_data / "olid_training_v1.0.tsv", limit=24)
    base = base_model_path()
    tok = load_tokenizer(base)
    cfg = TrainConfig(
        base_model=base, batch_size=8, max_steps=2, max_length=64, checkpoint_every=1, threads=1
    )
    model = train(rows, rows[:8], tok, cfg, tmp_path)
    assert (tmp_path / "checkpoint.pt").is_file()
    logged = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged and all(v == v for r in logged for v in r.values())  # no NaN
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2
    cfg.max_steps = 3
    train(rows, rows[:8], tok, cfg, tmp_path)  # resumes at step 2, runs one more
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 3
    assert model.classifier.out_features == len(LABELS)


def test_source_oversample_repeats_rows_of_favoured_sources() -> None:
    from training.train import oversample

    six = {lab: 0.0 for lab in LABELS}
    jig = make("a", "jigsaw", **six)
    obf = make("b", "jigsaw+obf", **{**six, "toxic": 1})
    threat = make("c", "jigsaw", **{**six, "threat": 1, "toxic": 1})
    other = make("d", "olid", toxic=1)
    out = oversample([jig, obf, threat, other], {"threat": 6}, {"jigsaw": 2})
    counts = {t: sum(1 for e in out if e.text == t) for t in "abcd"}
    assert counts == {"a": 2, "b": 2, "c": 6, "d": 1}  # the larger factor wins, +obf counts as its source


def test_warm_start_from_an_artifact(tmp_path: Path) -> None:
    """``init_from`` loads an artifact's weights (fp16 here) into the model before training."""
    import torch

    from moderation.scoring.backend import ToxicityModel
    from training.export import make_untrained_artifact
    from training.pipeline import base_model_path
    from training.train import load_initial_weights

    art = make_untrained_artifact(tmp_path / "art", seed=7)
    from safetensors.torch import load_file

    saved = load_file(str(art / "model.safetensors"))
    model = ToxicityModel.from_base(base_model_path(), len(LABELS))
    assert not torch.allclose(model.classifier.weight, saved["classifier.weight"].float())
    load_initial_weights(model, art)
    assert torch.allclose(model.classifier.weight, saved["classifier.weight"].float())
    assert model.classifier.weight.dtype == torch.float32
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({"classifier.weight": torch.zeros(2, 2)}, str(bad))
    with pytest.raises(ValueError, match="do not fit"):
        load_initial_weights(model, bad)


@pytest.mark.slow
def test_train_command_end_to_end_on_a_tiny_slice(shared_data: Path, tmp_path: Path) -> None:
    """``chatmod train`` through the CLI: options reach the run config, an artifact is written and loads."""
    from typer.testing import CliRunner

    from bot.cli import _register_all, app
    from moderation.scoring.backend import TorchScorer

    _register_all()
    out, run_dir = tmp_path / "model", tmp_path / "run"
    common = ["train", "--data", str(shared_data), "--out", str(out), "--run-dir", str(run_dir)]
    bad = CliRunner().invoke(app, [*common, "--source-oversample", "jigsaw"])
    assert bad.exit_code == 2 and "SOURCE=N" in bad.output
    opts = ["--limit", "12", "--max-steps", "2", "--no-eval", "--seed", "5", "--threads", "1"]
    opts += ["--source-oversample", "jigsaw=2", "--version", "tiny-cli"]
    result = CliRunner().invoke(app, [*common, *opts], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "train_config.json").read_text())
    assert config["seed"] == 5 and config["source_oversample"] == {"jigsaw": 2} and config["threads"] == 1
    scorer = TorchScorer.load(out, device="cpu")
    assert scorer.version == "tiny-cli"
    assert set(scorer.score_batch(["hello"])[0]) == set(LABELS)
