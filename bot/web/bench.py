"""``chatmod bench-api``: /predict latency over real HTTP against a `chatmod api` process.

The server runs in its own process (as in production: uvicorn, the real model behind the in-process
batcher, SQLite prediction log); the client sends distinct texts (no cache hits) one request at a time
(or ``concurrency`` at once) after a warm-up, and reports p50/p90/p99 of the client-side latency.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bot.web.charts import percentile

SENTENCES = (
    "thanks for the help yesterday, the build works now",
    "you are such an idiot, nobody wants you here",
    "can someone review my pull request when they have a minute?",
    "shut up and go away, loser",
    "the meeting moved to 3pm, see you there",
    "I will find you and hurt you",
    "this game is so much fun with friends",
    "what a stupid question, read the docs",
    "happy birthday! hope you have a great day",
    "people like you should not be allowed to post",
)


def _tag(i: int) -> str:
    # letters, not digits: normalisation maps leetspeak digits to letters, which would collide
    out = ""
    i += 26 * 27
    while i:
        i, r = divmod(i, 26)
        out += "abcdefghijklmnopqrstuvwxyz"[r]
    return out


def texts(n: int, offset: int = 0) -> list[str]:
    """Distinct texts of realistic chat length (the tag keeps every one a cache miss)."""
    return [f"{SENTENCES[i % len(SENTENCES)]}, ref {_tag(offset + i)}" for i in range(n)]


def wait_for_printed(proc: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    """Read ``proc``'s output until a line matches ``pattern``; return its first group.

    Kills ``proc`` and raises RuntimeError (with the last lines seen) if it exits or times out first.
    """
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None

    def pump() -> None:
        for line in iter(stdout.readline, ""):
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    proc.kill()
    raise RuntimeError("".join(seen[-40:]))


def _start_server(db_url: str, config: str | None) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CHATMOD_DATABASE__URL": db_url}
    cmd = [sys.executable, "-c", "from bot.cli import main; main()", "api", "--port", "0"]
    if config:
        cmd += ["--config", config]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        return proc, wait_for_printed(proc, r"API:\s+(http://\S+?)/v1/moderate", timeout=120)
    except RuntimeError as exc:
        raise RuntimeError(f"chatmod api did not start:\n{exc}") from None


def measure(base: str, n: int, concurrency: int, warmup: int = 50) -> dict[str, float]:
    with httpx.Client(base_url=base, timeout=30) as client:
        for t in texts(warmup, offset=1_000_000):
            client.post("/predict", json={"text": t}).raise_for_status()

        def one(text: str) -> float:
            started = time.perf_counter()
            r = client.post("/predict", json={"text": text})
            elapsed = (time.perf_counter() - started) * 1000
            r.raise_for_status()
            if r.headers.get("x-cache") != "miss":
                raise RuntimeError("benchmark text hit the cache")
            return elapsed

        started = time.perf_counter()
        if concurrency <= 1:
            lat = [one(t) for t in texts(n)]
        else:
            with ThreadPoolExecutor(concurrency) as pool:
                lat = list(pool.map(one, texts(n)))
        wall = time.perf_counter() - started
    return {
        "requests": n,
        "concurrency": concurrency,
        "p50_ms": round(percentile(lat, 50), 2),
        "p90_ms": round(percentile(lat, 90), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "mean_ms": round(sum(lat) / len(lat), 2),
        "max_ms": round(max(lat), 2),
        "throughput_rps": round(n / wall, 1),
    }


def run_bench(*, requests: int, concurrency: int, db: str | None, config: str | None) -> dict[str, float]:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(db) if db else Path(tmp) / "bench.db"
        proc, base = _start_server(f"sqlite+aiosqlite:///{path.resolve()}", config)
        try:
            with httpx.Client(base_url=base, timeout=10) as c:
                # the server listens before the model has loaded; measure the model, not the load
                deadline = time.monotonic() + 300
                while c.get("/health").status_code != 200 and time.monotonic() < deadline:
                    time.sleep(0.25)
                health = c.get("/health").json()
            result = measure(base, requests, concurrency)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    model = health.get("checks", {}).get("model", {})
    result_out = {
        **result,
        "model_version": model.get("version"),
        "device": model.get("device"),
        "cpus": os.cpu_count(),
    }
    print(
        f"/predict over HTTP, {requests} distinct texts, concurrency {concurrency}, "
        f"model {model.get('version')} "
        f"on {model.get('device')} ({os.cpu_count()} CPUs):\n"
        f"  p50 {result['p50_ms']} ms   p90 {result['p90_ms']} ms   p99 {result['p99_ms']} ms   "
        f"mean {result['mean_ms']} ms   max {result['max_ms']} ms   {result['throughput_rps']} req/s"
    )
    print(json.dumps(result_out))
    return result_out
