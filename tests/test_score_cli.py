"""`chatmod score`: the JSONL contract used by external evaluation, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moderation.labels import LABELS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def chatmod(*args: str, stdin: bytes = b"", timeout: float = 240) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.export import make_untrained_artifact

    return make_untrained_artifact(tmp_path_factory.mktemp("cli") / "model", seed=2)


def rows(out: bytes) -> list[dict[str, float]]:
    return [json.loads(line) for line in out.decode().splitlines()]


def test_one_object_per_line_in_order_with_every_label(artifact: Path) -> None:
    texts = [f"message {i}: " + ("you idiot " if i % 3 == 0 else "nice work ") * (i + 1) for i in range(40)]
    lines = [json.dumps({"text": t}) for t in texts]
    lines[5] = ""  # a blank line is an (empty) input line
    lines[9] = json.dumps({"text": "   \t "})
    lines[11] = json.dumps({"text": "long " * 3000})  # windows
    lines[12] = json.dumps({"text": "emoji 🤬 and ünïcödé and \u2028 separator", "id": 7})
    result = chatmod("score", "--model", str(artifact), stdin=("\n".join(lines) + "\n").encode())
    assert result.returncode == 0, result.stderr.decode()
    out = rows(result.stdout)
    assert len(out) == len(lines)
    assert all(list(r) == list(LABELS) for r in out)
    assert all(0.0 <= v <= 1.0 for r in out for v in r.values())
    assert out[5] == dict.fromkeys(LABELS, 0.0) and out[9] == dict.fromkeys(LABELS, 0.0)
    assert "line 6: empty text" in result.stderr.decode()  # flagged on stderr
    # order: each row equals the score of its own text scored alone
    single = chatmod("score", "--model", str(artifact), stdin=(lines[3] + "\n" + lines[0]).encode())
    a, b = rows(single.stdout)
    assert a == pytest.approx(out[3], abs=1e-5) and b == pytest.approx(out[0], abs=1e-5)


def test_no_trailing_newline_and_files(artifact: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "one"}\n{"text": "two"}')
    dst = tmp_path / "out.jsonl"
    result = chatmod("score", "--model", str(artifact), "--input", str(src), "--output", str(dst), "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    assert len(rows(dst.read_bytes())) == 2


def test_onnx_int8_engine_keeps_the_contract(artifact: Path, tmp_path: Path) -> None:
    """`--engine onnx --int8` (ONNX Runtime int8) on the shipped model: same rows, same order, close
    to the fp32 scores."""
    src = tmp_path / "in.jsonl"
    texts = ["you idiot", "", "nice work " * 300, "thanks for the help", "I will find you and hurt you"]
    src.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    fp32 = chatmod("score", "--input", str(src), "-q")
    q = chatmod("score", "--input", str(src), "-q", "--engine", "onnx", "--int8")
    assert q.returncode == 0 and fp32.returncode == 0, q.stderr.decode()
    a, b = rows(fp32.stdout), rows(q.stdout)
    assert len(b) == len(texts) and all(list(r) == list(LABELS) for r in b)
    assert b[1] == dict.fromkeys(LABELS, 0.0)
    assert max(abs(x[k] - y[k]) for x, y in zip(a, b, strict=True) for k in LABELS) < 0.1
    bad = chatmod("score", "--model", str(artifact), "--input", str(src), "--engine", "tensorrt")
    assert bad.returncode == 2 and b"engine" in bad.stderr


def test_invalid_json_names_the_line(artifact: Path) -> None:
    bad = b'{"text": "fine"}\n{"text": "fine"}\n{not json}\n{"text": "x"}\n'
    result = chatmod("score", "--model", str(artifact), stdin=bad)
    assert result.returncode == 2
    assert result.stdout == b""
    assert "line 3" in result.stderr.decode()
    missing = chatmod("score", "--model", str(artifact), stdin=b'{"body": "no text field"}\n')
    assert missing.returncode == 2 and "line 1" in missing.stderr.decode()
    skipped = chatmod("score", "--model", str(artifact), "--skip-invalid", stdin=bad)
    assert skipped.returncode == 0
    out = rows(skipped.stdout)
    assert len(out) == 4 and out[2] == dict.fromkeys(LABELS, 0.0)
    assert "line 3" in skipped.stderr.decode()


def test_invalid_utf8_is_scored_not_fatal(artifact: Path) -> None:
    result = chatmod("score", "--model", str(artifact), stdin=b'{"text": "bad \xff\xfe bytes"}\n')
    assert result.returncode == 0, result.stderr.decode()
    assert len(rows(result.stdout)) == 1


def test_missing_or_corrupt_model_says_which_file(artifact: Path, tmp_path: Path) -> None:
    result = chatmod("score", "--model", str(tmp_path / "nope"), stdin=b'{"text": "x"}\n')
    assert result.returncode == 3 and "nope" in result.stderr.decode()
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    result = chatmod("score", "--model", str(broken), stdin=b'{"text": "x"}\n')
    assert result.returncode == 3 and "model.safetensors" in result.stderr.decode()


def test_parse_lines_unit() -> None:
    from bot.commands.model import InvalidLine, parse_lines, split_lines

    lines = split_lines('{"text": "a"}\n\n{"text": null}\n["x"]\n')
    assert len(lines) == 4
    with pytest.raises(InvalidLine) as info:
        list(parse_lines(lines))
    assert info.value.lineno == 4
    items = list(parse_lines(lines, skip_invalid=True))
    assert [(i.lineno, i.empty, i.invalid is not None) for i in items] == [
        (1, False, False),
        (2, True, False),
        (3, True, False),
        (4, True, True),
    ]
    assert split_lines('{"text": "a\u2028b"}') == ['{"text": "a\u2028b"}']
