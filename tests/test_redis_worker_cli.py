"""``chatmod worker`` as deployed: a subprocess on the real Redis, answering, then draining on SIGTERM."""

from __future__ import annotations

import asyncio
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


async def test_worker_command_on_the_real_model_with_the_onnx_engine(redis: Redis) -> None:
    """`chatmod worker --engine onnx`: the shipped model on ONNX Runtime answers through real Redis with
    the same scores as the in-process torch scorer."""
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
    cmd += ["--fp32", "--device", "cpu", "--threads", "1", "--redis-url", "redis://127.0.0.1:6379/0"]
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
        reference = TorchScorer.load(None, device="cpu", threads=1)
        direct = reference.score_batch(texts)
        for got, want in zip(results, direct, strict=True):
            assert got.model_version == reference.version
            assert max(abs(got.scores[k] - want[k]) for k in want) < 1e-4
        assert results[0].scores["toxic"] > 0.5 > results[1].scores["toxic"]
    finally:
        if proc.poll() is None:
            proc.kill()
        await delete_keys(redis, test_names)
