"""``chatmod bench``'s transport-alone step: a real worker subprocess (fake backend) on the real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.bench import BenchConfig, load_messages, transport_glue

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


async def test_transport_step_fills_batches_and_reports_glue(redis: Redis, shared_data: Path) -> None:
    cfg = BenchConfig(data_dir=str(shared_data), quick=True)
    texts = load_messages(shared_data, 600, 7)
    seen: list[str] = []
    out = await transport_glue(cfg, Path("models/default"), texts, seen.append)
    steps = out["steps"]
    assert [s["rate"] for s in steps][:1] == [250.0] and len(seen) == len(steps)
    assert all(s["errors"] == 0 and s["ok"] == s["sent"] for s in steps)
    top = out["at_saturation"]
    assert out["saturation_rps"] >= 200  # a fake model leaves only the transport: hundreds of msgs/s
    assert top["mean_batch"] > 1.0  # arrivals coalesce into batches at this rate
    assert top["worker_loop_ms"] > 0 and top["client_ms"] > 0
    assert top["total_ms"] == pytest.approx(top["worker_loop_ms"] + top["client_ms"], abs=1e-3)
    # The client's figure is its event-loop thread's CPU net of the load generator's own, which a
    # shadow thread measured on the same schedule: real (non-zero) and taken out exactly.
    for s in steps:
        assert s["load_generator_cpu_ms_per_msg"] > 0
        net = max(0.0, s["client_thread_cpu_ms_per_msg"] - s["load_generator_cpu_ms_per_msg"])
        assert s["client_cpu_ms_per_msg"] == pytest.approx(net, abs=2e-4)
    assert top["load_generator_ms"] == next(
        s["load_generator_cpu_ms_per_msg"] for s in steps if s["achieved_rps"] == out["saturation_rps"]
    )


async def test_transport_scales_out_to_several_workers_and_client_processes(
    redis: Redis, shared_data: Path
) -> None:
    """``--workers 2 --client-procs 2``: two worker processes share the stream, two load-generator
    processes each drive half the rate with their own client; the step merges both clients' records
    and sums both workers' loop CPU. Every request is answered, and both workers did real work."""
    cfg = BenchConfig(data_dir=str(shared_data), quick=True, workers=2, client_procs=2)
    texts = load_messages(shared_data, 600, 7)
    out = await transport_glue(cfg, Path("models/default"), texts, None)
    assert (out["workers"], out["client_procs"]) == (2, 2)
    steps = out["steps"]
    assert steps[0]["rate"] == 250.0
    for s in steps:
        assert s["errors"] == 0 and s["ok"] == s["sent"]
        assert (s["workers"], s["client_procs"]) == (2, 2)
        # Two Poisson halves of the rate over the step: the merged count is near rate x length.
        length = max(2.0, 1500 / s["rate"])
        assert 0.8 * s["rate"] * length < s["sent"] < 1.2 * s["rate"] * length
        assert s["worker_loop_cpu_ms_per_msg"] > 0 and s["load_generator_cpu_ms_per_msg"] > 0
        assert s["redis_cpu_ms_per_msg"] > 0  # the server's own CPU, from INFO cpu
    assert out["saturation_rps"] >= 200
    summary = out["worker_summary"]
    assert summary["workers"] == 2 and len(set(summary["consumers"])) == 2
    assert all(n > 0 for n in summary["answered_by_worker"])  # the stream really was shared
    assert summary["answered"] >= sum(s["sent"] for s in steps)  # + warm-up and readiness requests


def test_bench_cli_transport_only_with_client_processes(redis: Redis, shared_data: Path) -> None:
    """``chatmod bench --transport-only --workers 2 --client-procs 2 --json`` as a user runs it: one
    JSON object on stdout, the transport figures from spawned client processes, no model section."""
    import json
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from bot.cli import main; main()", "bench", "--transport-only"]
    cmd += ["--quick", "--json", "--workers", "2", "--client-procs", "2", "--data-dir", str(shared_data)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=110, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["bench"] == "chatmod bench --transport-only"
    assert (report["machine"]["workers"], report["machine"]["client_procs"]) == (2, 2)
    assert "goodput_rps" not in report and "naive_pipeline" not in report
    transport = report["transport"]
    assert transport["saturation_rps"] >= 200
    assert all(s["errors"] == 0 and s["client_procs"] == 2 for s in transport["steps"])
    assert transport["at_saturation"]["redis_ms"] > 0
