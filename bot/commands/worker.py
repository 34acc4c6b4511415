"""``chatmod worker`` (the Redis scorer worker) and ``chatmod bench`` (its benchmark)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from typing import Annotated, Any

import typer

log = logging.getLogger("chatmod.worker")

ConfigPath = Annotated[str | None, typer.Option("--config", "-c", help="Settings TOML file.")]


def _settings(config: str | None) -> Any:
    from bot.settings import load_settings

    return load_settings(config)


def build_scorer(
    backend: str,
    path: str,
    device: str,
    int8: bool,
    threads: int,
    max_batch: int,
    engine: str = "torch",
    serial_tokens: int = 0,
) -> Any:
    """The model backend from settings: ``fake`` (tests) or ``torch`` (the real model, on the torch or
    ONNX Runtime engine)."""
    if backend == "fake":
        from moderation.fakes import FakeScorer

        return FakeScorer()
    from moderation.scoring.backend import TorchScorer

    return TorchScorer.load(
        path or None,
        device=device,  # type: ignore[arg-type]
        quantize=int8,
        threads=threads or None,
        batch_size=max(max_batch, 32),
        engine=engine,  # type: ignore[arg-type]
        serial_tokens=serial_tokens,
    )


async def _serve(
    url: str,
    names: Any,
    policy: Any,
    scorer: Any,
    loader: Any,
    metrics_port: int,
    consumer: str | None,
    claim_idle: float,
    drain_timeout: float,
    socket_timeout: float,
) -> dict[str, Any]:
    from prometheus_client import start_http_server

    from moderation.scoring.metrics import ScoringMetrics
    from moderation.scoring.redis_transport import connect
    from moderation.scoring.redis_worker import ScoreWorker

    metrics = ScoringMetrics()
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
    redis = connect(url, socket_timeout=socket_timeout)
    worker = ScoreWorker(
        redis,
        scorer,
        names=names,
        policy=policy,
        consumer=consumer,
        claim_idle=claim_idle,
        drain_timeout=drain_timeout,
        loader=loader,
        metrics=metrics,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        summary = await worker.run()
    finally:
        await redis.aclose()
    return {
        "consumer": summary.consumer,
        "batches": summary.batches,
        "answered": summary.answered,
        "expired": summary.expired,
        "failed": summary.failed,
        "dead_lettered": summary.dead_lettered,
        "reclaimed": summary.reclaimed,
        "reloads": summary.reloads,
        "model_s": round(summary.model_seconds, 3),
        "loop_cpu_s": round(summary.loop_cpu_seconds, 3),
        "left_pending": summary.left_pending,
        "padding_waste": round(worker.batcher.stats.padding_waste, 4),
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        config: ConfigPath = None,
        redis_url: Annotated[str | None, typer.Option(help="Default: redis.url from settings.")] = None,
        model: Annotated[
            str | None, typer.Option(help="Artifact directory (default: models/default).")
        ] = None,
        backend: Annotated[str | None, typer.Option(help="torch or fake.")] = None,
        device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
        int8: Annotated[
            bool | None, typer.Option("--int8/--fp32", help="CPU int8 dynamic quantisation.")
        ] = None,
        threads: Annotated[int | None, typer.Option(help="torch intra-op threads (0 = default).")] = None,
        engine: Annotated[
            str | None,
            typer.Option(help="CPU engine: torch or onnx (ONNX Runtime; with --int8 quantised by ORT)."),
        ] = None,
        serial_tokens: Annotated[
            int | None,
            typer.Option(help="CPU: model calls of at most this many tokens run on one thread (0 = off)."),
        ] = None,
        max_batch: Annotated[int | None, typer.Option()] = None,
        max_wait_ms: Annotated[
            float | None,
            typer.Option(help="Longest a request waits for a batch to fill (default: 0 on CPU, 2 on CUDA)."),
        ] = None,
        token_budget: Annotated[int | None, typer.Option()] = None,
        metrics_port: Annotated[int, typer.Option(help="Serve Prometheus /metrics here (0 = off).")] = 0,
        consumer: Annotated[str | None, typer.Option(help="Consumer name (default host-pid-random).")] = None,
        claim_idle_s: Annotated[float, typer.Option(help="Reclaim entries pending this long.")] = 10.0,
        summary_json: Annotated[bool, typer.Option(help="Print the shutdown summary as JSON.")] = False,
    ) -> None:
        """Run a scorer worker: read scoring requests from Redis in batches, answer them; SIGTERM drains.

        Hot reload: `redis-cli publish chatmod:model:reload /path/to/artifact` swaps the model between
        batches without dropping requests.
        """
        from bot.compose import batch_policy
        from moderation.scoring.redis_transport import StreamNames

        s = _settings(config)
        w, m, r = s.worker, s.model, s.redis
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # composition root: one tokenizer thread
        max_batch = max_batch or w.max_batch
        backend_name = backend or m.backend
        engine_name = engine or m.engine
        if engine_name not in ("torch", "onnx"):
            raise typer.BadParameter("engine must be torch or onnx", param_hint="--engine")
        dev, q, t, st = (
            device or m.device,
            m.int8 if int8 is None else int8,
            m.threads if threads is None else threads,
            m.serial_tokens if serial_tokens is None else serial_tokens,
        )

        def loader(path: str) -> Any:
            return build_scorer(backend_name, path, dev, q, t, max_batch, engine_name, st)

        scorer = loader(model if model is not None else m.path)
        policy = batch_policy(
            w.model_copy(
                update={
                    "max_batch": max_batch,
                    "max_wait_ms": w.max_wait_ms if max_wait_ms is None else max_wait_ms,
                    "token_budget": token_budget or w.token_budget,
                }
            ),
            scorer,
        )
        names = StreamNames(stream=r.stream, group=r.group)
        summary = asyncio.run(
            _serve(
                redis_url or r.url,
                names,
                policy,
                scorer,
                loader,
                metrics_port,
                consumer,
                claim_idle_s,
                w.drain_timeout_s,
                r.socket_timeout_s,
            )
        )
        if summary_json:
            typer.echo(json.dumps(summary))

    @app.command()
    def bench(
        redis_url: Annotated[
            str, typer.Option(help="Redis for the worker under test.")
        ] = "redis://127.0.0.1:6379/0",
        model: Annotated[
            str | None, typer.Option(help="Artifact (default models/default, else the base model).")
        ] = None,
        data_dir: Annotated[str, typer.Option(help="Real messages (../shared/data).")] = "../shared/data",
        threads: Annotated[
            int,
            typer.Option(
                help="torch threads for every contender (0 = all cores, as a worker on its own "
                "machine would use them; the event loop, Redis and the load generator share them)."
            ),
        ] = 0,
        modes: Annotated[
            str,
            typer.Option(
                help="Worker modes to load-test: fp32 (torch), onnx (fp32 on ONNX Runtime), int8 (torch), "
                "onnx-int8 (ONNX Runtime int8)."
            ),
        ] = "fp32,onnx,int8,onnx-int8",
        step_seconds: Annotated[float, typer.Option(help="Length of each arrival-rate step.")] = 4.0,
        min_samples: Annotated[
            int, typer.Option(help="Stretch a step to about this many requests (p99 from enough samples).")
        ] = 200,
        slo_ms: Annotated[float | None, typer.Option(help="p99 target (default 50 CPU / 20 GPU).")] = None,
        max_batch: Annotated[int, typer.Option()] = 64,
        max_wait_ms: Annotated[
            float | None,
            typer.Option(help="The workers' batch wait (default: theirs, 0 on CPU / 2 on CUDA)."),
        ] = None,
        serial_tokens: Annotated[
            int, typer.Option(help="Workers run calls of at most this many tokens on one thread (0 = off).")
        ] = 0,
        workers: Annotated[
            int,
            typer.Option(
                help="Worker processes under test, sharing one stream (on one GPU they share the device)."
            ),
        ] = 1,
        client_procs: Annotated[
            int,
            typer.Option(
                help="Load-generator processes, each its own Redis client (one Python client tops out at "
                "a few thousand msgs/s: a GPU fleet needs several)."
            ),
        ] = 1,
        transport_only: Annotated[
            bool,
            typer.Option(
                help="Only the Redis transport alone (workers with the fake backend), about a minute."
            ),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        quick: Annotated[bool, typer.Option(help="Smaller samples (smoke test).")] = False,
    ) -> None:
        """Benchmark the worker through real Redis against a naive per-message pipeline."""
        from bot.bench import BenchConfig, run_bench

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        cfg = BenchConfig(
            redis_url=redis_url,
            model=model,
            data_dir=data_dir,
            threads=threads or (os.cpu_count() or 1),
            modes=tuple(x.strip() for x in modes.split(",") if x.strip()),
            step_seconds=step_seconds,
            min_samples=0 if quick else min_samples,
            slo_ms=slo_ms,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            serial_tokens=serial_tokens,
            workers=max(1, workers),
            client_procs=max(1, client_procs),
            transport_only=transport_only,
            quick=quick,
        )
        from bot.bench import MODES

        unknown = [m for m in cfg.modes if m not in MODES]
        if unknown or not cfg.modes:
            raise typer.BadParameter(f"modes must be among {', '.join(MODES)}", param_hint="--modes")
        report = run_bench(cfg, progress=None if as_json else typer.echo)
        typer.echo(json.dumps(report, indent=None if as_json else 2))
