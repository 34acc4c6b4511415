"""TorchScorer on the real base model: artifact round trip, typed errors, long-message windows, int8."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from moderation.labels import LABELS
from moderation.ports import TextScorer
from moderation.scoring.artifact import ArtifactError, check_artifact, default_model_path, read_card

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.export import make_untrained_artifact

    return make_untrained_artifact(tmp_path_factory.mktemp("artifact") / "model", seed=1)


@pytest.fixture(scope="module")
def scorer(artifact: Path):  # type: ignore[no-untyped-def]
    from moderation.scoring.backend import TorchScorer

    return TorchScorer.load(artifact, device="cpu", threads=1)


def test_round_trip_matches_the_in_memory_model(artifact: Path, scorer) -> None:  # type: ignore[no-untyped-def]
    import torch

    from moderation.scoring.backend import ToxicityModel
    from training.export import make_untrained_artifact  # noqa: F401  (same seed → same head)
    from training.pipeline import base_model_path, load_tokenizer

    card = check_artifact(artifact)
    assert card.labels == LABELS and card.version == "test-untrained"
    assert set(card.thresholds) == set(LABELS)
    assert isinstance(scorer, TextScorer)
    assert scorer.labels == LABELS and scorer.version == "test-untrained"

    torch.manual_seed(1)
    model = ToxicityModel.from_base(base_model_path(), len(LABELS))
    torch.nn.init.normal_(model.classifier.weight, std=0.5)
    model.eval()
    tok = load_tokenizer(base_model_path())
    texts = ["you are a wonderful person", "shut up you idiot"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(model(enc["input_ids"], enc["attention_mask"])).tolist()
    got = scorer.score_batch(texts)
    for row, exp in zip(got, expected, strict=True):
        assert list(row) == list(LABELS)
        assert [row[k] for k in LABELS] == pytest.approx(exp, abs=5e-3)  # fp16 storage


def test_empty_and_whitespace_score_zero(scorer) -> None:  # type: ignore[no-untyped-def]
    rows = scorer.score_batch(["", "   \n\t", "\u200b\u200d", "hello"])
    assert rows[0] == dict.fromkeys(LABELS, 0.0)
    assert rows[1] == dict.fromkeys(LABELS, 0.0)
    assert rows[2] == dict.fromkeys(LABELS, 0.0)  # only zero-width characters: empty once normalised
    assert any(v > 0 for v in rows[3].values())


def test_batch_order_and_size_independence(scorer) -> None:  # type: ignore[no-untyped-def]
    texts = [f"message number {i} " + "word " * (i * 7) for i in range(20)]
    together = scorer.score_batch(texts)
    alone = [scorer.score_batch([t])[0] for t in texts[:5]]
    for a, b in zip(together[:5], alone, strict=True):
        assert [a[k] for k in LABELS] == pytest.approx([b[k] for k in LABELS], abs=1e-4)


def test_long_messages_are_scored_in_windows_taking_the_max(scorer) -> None:  # type: ignore[no-untyped-def]
    filler = "the weather report for tomorrow says sunny skies and light wind . " * 40
    text = filler + " you are a disgusting worthless idiot"
    ids = scorer._encode([scorer.prepare(text)])[0]
    windows = scorer._windows(ids)
    assert len(ids) > scorer.max_length and len(windows) > 1
    assert all(len(w) <= scorer.max_length for w in windows)
    body = [t for w in windows for t in w[1:-1]]
    assert set(body) == set(ids)  # every token is in some window
    assert windows[-1][1:-1] == ids[-(scorer.max_length - 2) :]  # the tail is covered
    per_window = scorer._run(windows)
    full = scorer.score_matrix([text])[0]
    for j in range(len(LABELS)):
        assert full[j] == pytest.approx(max(w[j] for w in per_window), abs=1e-5)
    assert scorer.token_lengths([text])[0] == sum(len(w) for w in windows)
    assert scorer.token_lengths(["", "hi"]) == [0, 3]
    huge = scorer.score_batch(["word " * 20000])[0]  # any length is scored
    assert set(huge) == set(LABELS)


def test_int8_agrees_with_fp32() -> None:
    """On the shipped (trained) model: int8 dynamic quantisation moves probabilities only a little."""
    from moderation.scoring.backend import TorchScorer

    fp32 = TorchScorer.load(None, device="cpu", threads=1)
    q = TorchScorer.load(None, device="cpu", quantize=True, threads=1)
    assert q.version == fp32.version + "+int8"
    texts = [
        "hello there friend, how was the trip?",
        "you stupid idiot, nobody wants you here",
        "I will find you and hurt you",
        "what a lovely photo of your garden",
        "shut the fuck up",
        "those people are animals and should be deported",
    ]
    diffs = [
        abs(a[k] - b[k])
        for a, b in zip(fp32.score_batch(texts), q.score_batch(texts), strict=True)
        for k in LABELS
    ]
    # Near-boundary texts move most: on the whole validation split torch int8's largest move is 0.28
    # (minilm-tox-1.1; 0.33 for 1.0), its mean 0.0125 — here "those people are animals..." moves
    # identity_hate by ~0.28. ONNX Runtime int8 moves less (test_onnx_int8_* below; AUCs in MODEL.md).
    assert max(diffs) < 0.35
    assert sum(diffs) / len(diffs) < 0.04


def test_int8_keeps_the_outlier_layer_in_fp32(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first FFN output projection stays fp32, and that is what keeps int8 close to fp32 on real text."""
    import csv

    from torch import nn

    from moderation.scoring import backend
    from moderation.scoring.backend import INT8_KEEP_FP32, TorchScorer

    with (shared_data / "jigsaw2018_train_subset.csv").open(newline="", encoding="utf-8") as fh:
        texts = [r["comment_text"] for r in csv.DictReader(fh) if len(r["comment_text"]) < 400][:160]
    fp32 = TorchScorer.load(None, device="cpu", threads=1)
    q = TorchScorer.load(None, device="cpu", quantize=True, threads=1)
    modules = dict(q._model.encoder.named_modules())
    assert modules.keys() >= INT8_KEEP_FP32
    assert all(type(modules[name]) is nn.Linear for name in INT8_KEEP_FP32)
    quantised = [m for m in modules.values() if type(m).__name__ == "Linear" and type(m) is not nn.Linear]
    assert len(quantised) == 35  # the other 35 of the encoder's 36 linear layers are int8
    monkeypatch.setattr(backend, "INT8_KEEP_FP32", frozenset())
    q_all = TorchScorer.load(None, device="cpu", quantize=True, threads=1)

    reference = fp32.score_matrix(texts)

    def mean_shift(other: TorchScorer) -> float:
        rows = zip(reference, other.score_matrix(texts), strict=True)
        total = sum(abs(x - y) for ra, rb in rows for x, y in zip(ra, rb, strict=True))
        return total / (len(texts) * len(LABELS))

    kept, all_int8 = mean_shift(q), mean_shift(q_all)
    print(f"int8 mean |dp| vs fp32: {kept:.4f} with the fp32 layer, {all_int8:.4f} without")
    assert kept < 0.8 * all_int8, (kept, all_int8)


def test_explain_names_words(scorer) -> None:  # type: ignore[no-untyped-def]
    text = "have a lovely day you absolute idiot"
    out = scorer.explain(text, top_k=3, min_score=0.0)
    assert out and {e.label for e in out} <= set(LABELS)
    for e in out:
        assert len(e.words) <= 3 and len(e.words) == len(e.offsets)
        for (word, drop), (s, end) in zip(e.words, e.offsets, strict=True):
            assert text[s:end] == word and drop > 0
    attributions = scorer.word_attributions(text, "toxic")
    assert [text[s:e] for s, e, _ in attributions] == text.split()
    assert scorer.explain("", min_score=0.0) == []


@pytest.mark.parametrize(
    ("breakage", "file"),
    [
        ("delete_weights", "model.safetensors"),
        ("truncate_weights", "model.safetensors"),
        ("corrupt_card", "card.json"),
        ("card_bad_labels", "card.json"),
        ("delete_card", "card.json"),
        ("corrupt_config", "config.json"),
        ("delete_tokenizer", "tokenizer.json"),
    ],
)
def test_missing_or_corrupt_artifact_is_a_typed_error_naming_the_file(
    artifact: Path, tmp_path: Path, breakage: str, file: str
) -> None:
    from moderation.scoring.backend import TorchScorer

    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    target = broken / file
    if breakage.startswith("delete"):
        target.unlink()
    elif breakage == "truncate_weights":
        target.write_bytes(target.read_bytes()[:1000])
    elif breakage == "card_bad_labels":
        card = json.loads(target.read_text())
        card["labels"] = ["toxic", "not_a_label"]
        target.write_text(json.dumps(card))
    else:
        target.write_text("{ not json")
    with pytest.raises(ArtifactError) as info:
        TorchScorer.load(broken, device="cpu")
    assert info.value.path.endswith(file)
    assert file in str(info.value)


def test_missing_directory(tmp_path: Path) -> None:
    from moderation.scoring.backend import TorchScorer

    with pytest.raises(ArtifactError, match="not found"):
        TorchScorer.load(tmp_path / "nope", device="cpu")


def test_shipped_default_model_card() -> None:
    path = default_model_path()
    if not (path / "card.json").is_file():
        pytest.fail(f"the default model artifact is missing at {path}")
    card = read_card(path)
    assert card.labels == LABELS
    for label in LABELS:
        t = card.thresholds[label]
        assert 0 < t.review_at <= t.act_at < 1
    assert card.data.get("files") and card.metrics


def test_card_thresholds_become_new_server_defaults() -> None:
    from bot.compose import card_tiers
    from bot.settings import ModelSettings
    from moderation.scoring.artifact import default_model_path

    tiers = card_tiers(ModelSettings())
    card = read_card(default_model_path())
    assert tiers is not None and set(tiers) == set(LABELS)
    assert all(tiers[k].review_at == card.thresholds[k].review_at for k in LABELS)
    assert card_tiers(ModelSettings(backend="fake")) is None


def test_onnx_engine_matches_torch(scorer) -> None:  # type: ignore[no-untyped-def]
    """ONNX Runtime on the same weights: same probabilities (windows, empties and order included)."""
    from moderation.scoring.backend import TorchScorer, describe

    artifact = scorer  # the module fixture: an untrained artifact, on torch eager by default
    onnx = TorchScorer.load(None, device="cpu", threads=1, engine="onnx")
    torch_ = TorchScorer.load(None, device="cpu", threads=1)
    assert onnx.engine == "onnx" and torch_.engine == "torch" and artifact.engine == "torch"
    assert onnx.version == torch_.version  # same weights, same model version
    assert describe(onnx)["engine"] == "onnx"
    assert onnx.call_overhead_tokens < torch_.call_overhead_tokens
    texts = [
        "you stupid idiot, nobody wants you here",
        "",
        "what a lovely photo of your garden",
        "I will find you and hurt you. " * 80,  # several windows
        "   ",
        "y0u ar3 a m0r0n",
    ]
    a, b = onnx.score_matrix(texts), torch_.score_matrix(texts)
    assert max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)) < 1e-4
    assert a[1] == [0.0] * len(LABELS) and a[4] == [0.0] * len(LABELS)
    assert onnx.explain("you stupid idiot")[0].words[0][0] in {"idiot", "stupid"}


def test_onnx_int8_agrees_with_fp32_closer_than_torch_int8(
    shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ONNX Runtime int8 (per-channel weights, the outlier layer and the head kept fp32) on the shipped
    model: quantised MatMuls in the graph, the kept layer a plain MatMul, and real comments' probabilities
    closer to fp32 than the torch int8 path's (per-tensor weight scales)."""
    import csv

    import onnx

    from moderation.scoring.backend import (
        INT8_KEEP_FP32,
        TorchScorer,
        _onnx_node_prefix,
        export_onnx,
        quantize_onnx,
    )

    with (shared_data / "jigsaw2018_train_subset.csv").open(newline="", encoding="utf-8") as fh:
        texts = [r["comment_text"] for r in csv.DictReader(fh) if len(r["comment_text"]) < 400][:160]
    texts += ["", "I will find you and hurt you. " * 80]  # an empty text and a many-window one
    with caplog.at_level(logging.INFO):
        q = TorchScorer.load(None, device="cpu", threads=1, quantize=True, engine="onnx")
    assert q.engine == "onnx" and q.quantized and q.version.endswith("+int8")
    # ORT's quantiser logs a note per tensor on the root logger: kept out of the service's logs.
    assert not [r for r in caplog.records if r.name == "root"]
    assert any(r.getMessage() == "model loaded" for r in caplog.records)
    fp = TorchScorer.load(None, device="cpu", threads=1)
    graph = onnx.load_from_string(quantize_onnx(export_onnx(fp._model)))  # what load() quantised
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("MatMulInteger") == 35  # the other 35 of the encoder's 36 weight MatMuls
    kept = [n.name for n in graph.graph.node if n.op_type == "MatMul"]
    assert all(any(k.startswith(_onnx_node_prefix(m)) for k in kept) for m in INT8_KEEP_FP32)
    head = [n for n in graph.graph.node if n.name.startswith("/classifier/")]
    assert head and all(n.op_type in ("Gemm", "MatMul", "Add") for n in head)  # the head stays fp32

    fp32 = fp.score_matrix(texts)
    torch8 = TorchScorer.load(None, device="cpu", threads=1, quantize=True).score_matrix(texts)
    ort8 = q.score_matrix(texts)
    assert ort8[-2] == [0.0] * len(LABELS)

    def mean_shift(other: list[list[float]]) -> float:
        rows = zip(fp32, other, strict=True)
        return sum(abs(x - y) for ra, rb in rows for x, y in zip(ra, rb, strict=True)) / (
            len(texts) * len(LABELS)
        )

    print(f"int8 mean |dp| vs fp32: onnx {mean_shift(ort8):.4f}, torch {mean_shift(torch8):.4f}")
    assert mean_shift(ort8) < 0.02
    assert mean_shift(ort8) < mean_shift(torch8)


def test_onnx_engine_needs_a_known_name() -> None:
    from moderation.scoring.backend import TorchScorer

    with pytest.raises(ValueError, match="engine"):
        TorchScorer.load(None, device="cpu", engine="tensorrt")  # type: ignore[arg-type]


@pytest.fixture
def torch_threads():  # type: ignore[no-untyped-def]
    """Puts the process's torch thread count back after a test that changes it."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("torch_threads")
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_short_calls_run_on_one_thread(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``serial_tokens``: calls up to that many padded tokens run on one intra-op thread (torch: the
    thread count switches per call; onnx: a second, one-thread session), longer ones on all — with the
    same probabilities either way."""
    import torch

    from moderation.scoring.backend import TorchScorer

    plain = TorchScorer.load(None, device="cpu", threads=2, engine=engine)  # type: ignore[arg-type]
    mixed = TorchScorer.load(None, device="cpu", threads=2, engine=engine, serial_tokens=64)  # type: ignore[arg-type]
    assert plain.serial_tokens == 0 and mixed.serial_tokens == 64 and mixed.threads == 2
    short, long_ = "you stupid idiot", "I will find you and hurt you. " * 60
    if engine == "onnx":
        assert mixed._onnx_serial is not None and plain._onnx_serial is None
        used: list[str] = []

        class Spy:
            def __init__(self, name: str, session: object) -> None:
                self.name, self.session = name, session

            def run(self, *args: object) -> object:
                used.append(self.name)
                return self.session.run(*args)  # type: ignore[attr-defined]

        for name in ("_onnx", "_onnx_serial"):
            monkeypatch.setattr(mixed, name, Spy(name, getattr(mixed, name)))
        mixed.score_matrix([short])
        mixed.score_matrix([long_])
        assert used == ["_onnx_serial", "_onnx"]
    else:
        mixed.score_matrix([short])
        assert torch.get_num_threads() == 1
        mixed.score_matrix([long_])
        assert torch.get_num_threads() == 2
    a = mixed.score_matrix([short, long_, ""])
    b = plain.score_matrix([short, long_, ""])
    assert max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)) < 1e-4
    single = TorchScorer.load(None, device="cpu", threads=1, serial_tokens=64)
    assert single.serial_tokens == 0  # nothing to switch on one thread
