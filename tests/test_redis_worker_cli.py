"""``chatmod worker`` as deployed: a subprocess on the real Redis, answering, then draining on SIGTERM."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from moderation.fakes import FakeScorer
from moderation.scoring.redis_client import RedisScoreClient
from moderation.scoring.redis_transport import StreamNames
from tests.redis_helpers import delete_keys, unique_names

pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]
REPO = Path(__file__).resolve().parents[1]


async def test_worker_command_answers_and_drains_on_sigterm(redis: Redis) -> None:
    test_names = unique_names()
    names = StreamNames(stream=test_names.stream, group=test_names.group)  # default results prefix
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CHATMOD_REDIS__STREAM": names.stream,
        "CHATMOD_REDIS__GROUP": names.group,
    }
    cmd = [
        sys.executable,
        "-c",
        "from bot.cli import main; main()",
        "worker",
        "--backend",
        "fake",
        "--redis-url",
        "redis://127.0.0.1:6379/0",
        "--max-wait-ms",
        "1",
        "--summary-json",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        async with RedisScoreClient(redis, names=names) as client:
            texts = [f"message {i} idiot" if i % 2 else f"message {i}" for i in range(40)]
            results = await asyncio.gather(*(client.score(t, timeout=30) for t in texts))
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["answered"] == 40 and summary["left_pending"] == 0
        assert [dict(r.scores) for r in results] == FakeScorer().score_batch(texts)
        assert (await redis.xpending(names.stream, names.group))["pending"] == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        await delete_keys(redis, test_names)


@pytest.mark.parametrize("precision", ["--fp32", "--int8"])
async def test_worker_command_on_the_real_model_with_the_onnx_engine(redis: Redis, precision: str) -> None:
    """`chatmod worker --engine onnx`: the shipped model on ONNX Runtime answers through real Redis with
    the same scores as the in-process scorer of the same engine and precision (`--int8`: ORT int8)."""
    from moderation.scoring.backend import TorchScorer

    test_names = unique_names()
    names = StreamNames(stream=test_names.stream, group=test_names.group)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "CHATMOD_REDIS__STREAM": names.stream,
        "CHATMOD_REDIS__GROUP": names.group,
    }
    cmd = [sys.executable, "-c", "from bot.cli import main; main()", "worker", "--engine", "onnx"]
    cmd += [precision, "--device", "cpu", "--threads", "1", "--redis-url", "redis://127.0.0.1:6379/0"]
    cmd += ["--summary-json"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        texts = ["you are a pathetic moron", "see you at the meetup tonight", "I will hurt you", ""]
        async with RedisScoreClient(redis, names=names) as client:
            results = await asyncio.gather(*(client.score(t, timeout=60) for t in texts))
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0
        assert json.loads(out.strip().splitlines()[-1])["answered"] == len(texts)
        int8 = precision == "--int8"
        reference = TorchScorer.load(None, device="cpu", threads=1, engine="onnx", quantize=int8)
        assert reference.version.endswith("+int8") == int8
        for got, text in zip(results, texts, strict=True):
            assert got.model_version == reference.version
            # int8 activations are quantised per model call, so an int8 score depends a little on the
            # texts batched with it (docs/MODEL.md): compare with every batch the worker could have
            # cut from these texts that holds this one. fp32 does not depend on companions.
            others = [t for t in texts if t and t != text]
            companions = [c for n in range(len(others) + 1) for c in itertools.combinations(others, n)]
            if not int8:
                companions = companions[:1]
            diffs = []
            for c in companions:
                want = reference.score_batch([text, *c])[0]
                diffs.append(max(abs(got.scores[k] - want[k]) for k in want))
            assert min(diffs) < 1e-4, diffs
        assert results[0].scores["toxic"] > 0.5 > results[1].scores["toxic"]
    finally:
        if proc.poll() is None:
            proc.kill()
        await delete_keys(redis, test_names)
