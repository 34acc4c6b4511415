"""``chatmod soup``: weight averaging of artifacts trained on one split, refused across splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from moderation.scoring.artifact import ArtifactError, ModelCard
from training.data import Example, Split
from training.soup import average_weights, check_same_split


def test_average_weights_uniform_weighted_and_non_float() -> None:
    a = {"w": torch.tensor([1.0, 3.0], dtype=torch.float16), "ids": torch.tensor([0, 1, 2])}
    b = {"w": torch.tensor([3.0, 7.0], dtype=torch.float16), "ids": torch.tensor([0, 1, 2])}
    mean = average_weights([a, b])
    assert mean["w"].dtype == torch.float32 and mean["w"].tolist() == [2.0, 5.0]
    assert mean["ids"].tolist() == [0, 1, 2]
    weighted = average_weights([a, b], [3, 1])  # normalised: 0.75 / 0.25
    assert weighted["w"].tolist() == [1.5, 4.0]
    assert average_weights([a, b], [1, 0])["w"].tolist() == [1.0, 3.0]


@pytest.mark.parametrize(
    ("other", "weights", "match"),
    [
        ({"w": torch.zeros(2), "ids": torch.tensor([0, 1, 2]), "x": torch.zeros(1)}, None, "tensors differ"),
        ({"w": torch.zeros(3), "ids": torch.tensor([0, 1, 2])}, None, "shape"),
        ({"w": torch.zeros(2), "ids": torch.tensor([0, 1, 5])}, None, "non-float"),
        ({"w": torch.zeros(2), "ids": torch.tensor([0, 1, 2])}, [1.0, -1.0], "non-negative"),
        ({"w": torch.zeros(2), "ids": torch.tensor([0, 1, 2])}, [0.0, 0.0], "positive sum"),
        ({"w": torch.zeros(2), "ids": torch.tensor([0, 1, 2])}, [1.0], "2 non-negative"),
    ],
)
def test_average_weights_rejects_mismatches(other, weights, match: str) -> None:
    a = {"w": torch.ones(2), "ids": torch.tensor([0, 1, 2])}
    with pytest.raises(ValueError, match=match):
        average_weights([a, other], weights, names=["a", "b"])


def test_one_ingredient_is_not_a_soup() -> None:
    with pytest.raises(ValueError, match="at least two"):
        average_weights([{"w": torch.ones(1)}])


def _split() -> Split:
    rows = [Example("hello there", [0.0] * 6, [1.0] * 6, "jigsaw")]
    return Split(train=rows, valid=list(rows), files={"a.csv": "f00d"})


def _card(data: dict) -> ModelCard:
    return ModelCard(labels=("toxic",), version="v", base_model="b", created_at="", data=data)


def test_check_same_split_refuses_another_split(tmp_path: Path) -> None:
    split = _split()
    same = {"files": split.files, "counts": json.loads(json.dumps(split.counts()))}
    check_same_split([(tmp_path / "a", _card(same)), (tmp_path / "b", _card(same))], split)
    other = {"files": {"a.csv": "beef"}, "counts": same["counts"]}
    with pytest.raises(ArtifactError, match="another data split") as err:
        check_same_split([(tmp_path / "a", _card(same)), (tmp_path / "b", _card(other))], split)
    assert err.value.path == str(tmp_path / "b" / "card.json")
    with pytest.raises(ArtifactError, match="another data split"):
        check_same_split([(tmp_path / "a", _card(same)), (tmp_path / "c", _card({}))], split)


@pytest.mark.slow
def test_soup_command_averages_calibrates_and_loads(shared_data: Path, tmp_path: Path) -> None:
    """Two real-encoder artifacts on one small real split → the CLI writes their mean (the encoder
    exactly, the head recalibrated), a card naming the ingredients, and an artifact the scorer loads."""
    from safetensors.torch import load_file, save_file
    from typer.testing import CliRunner

    from bot.cli import _register_all, app
    from moderation.scoring.artifact import read_card
    from moderation.scoring.backend import TorchScorer
    from training.export import make_untrained_artifact
    from training.pipeline import prepare_split

    _register_all()
    run_dir = tmp_path / "run"
    split = prepare_split(shared_data, run_dir, limit=30)
    snapshot = {"files": split.files, "counts": split.counts()}
    arts = []
    for seed in (1, 2):
        art = make_untrained_artifact(tmp_path / f"m{seed}", seed=seed, version=f"ingredient-{seed}")
        card = json.loads((art / "card.json").read_text())
        card["data"] = snapshot
        card["metrics"] = {"train_wall_s": 100.0 * seed}
        (art / "card.json").write_text(json.dumps(card))
        arts.append(art)
    # Make the encoders differ too, so the mean is not the base encoder.
    key = "encoder.encoder.layer.0.attention.self.query.weight"
    state = load_file(str(arts[1] / "model.safetensors"))
    assert key in state, sorted(state)[:5]
    state[key] = state[key] + 0.5
    save_file(state, str(arts[1] / "model.safetensors"))
    ingredients = [load_file(str(a / "model.safetensors")) for a in arts]

    out = tmp_path / "soup"
    runner = CliRunner()
    args = ["soup", str(arts[0]), str(arts[1]), "--out", str(out), "--run-dir", str(run_dir), "--fp32"]
    result = runner.invoke(app, [*args, "--version", "soup-test"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    souped = load_file(str(out / "model.safetensors"))
    want = (ingredients[0][key].float() + ingredients[1][key].float()) / 2
    assert torch.allclose(souped[key], want)
    assert not torch.allclose(souped[key], ingredients[0][key].float())
    card = read_card(out)
    assert card.version == "soup-test"
    soup = card.extra["training"]["soup"]
    assert [i["version"] for i in soup["ingredients"]] == ["ingredient-1", "ingredient-2"]
    assert [i["weight"] for i in soup["ingredients"]] == [0.5, 0.5]
    assert card.metrics["train_wall_s"] == 300.0
    assert card.metrics["train_device"] == "ingredient-1: unknown; ingredient-2: unknown"
    assert "calibration" in card.metrics and set(card.thresholds) == set(card.labels)
    scores = TorchScorer.load(out, device="cpu").score_batch(["you are wonderful"])[0]
    assert set(scores) == set(card.labels) and all(0.0 <= p <= 1.0 for p in scores.values())

    # An artifact of another split is refused with the file named; nothing is written.
    stranger = make_untrained_artifact(tmp_path / "stranger", seed=3)
    bad = runner.invoke(
        app, ["soup", str(arts[0]), str(stranger), "--out", str(tmp_path / "x"), "--run-dir", str(run_dir)]
    )
    assert bad.exit_code == 3
    assert "another data split" in bad.output and str(stranger / "card.json") in bad.output
    assert not (tmp_path / "x").exists()
    one = runner.invoke(app, ["soup", str(arts[0]), "--out", str(tmp_path / "y"), "--run-dir", str(run_dir)])
    assert one.exit_code == 2 and "at least two" in one.output
