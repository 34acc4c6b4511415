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
