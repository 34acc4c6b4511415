"""Prometheus metrics of the scoring pipeline (queue depth, batch sizes, padding, per-stage latency).

One ``ScoringMetrics`` per process, registered on the registry it is given (the API's ``/metrics`` and
the worker's HTTP exporter pass theirs; tests use a fresh ``CollectorRegistry``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256)


class ScoringMetrics:
    """Counters and histograms shared by the local batcher, the Redis worker and the Redis client."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "chatmod") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        ns, reg = namespace, self.registry
        self.queue_depth = Gauge(f"{ns}_score_queue_depth", "Requests waiting to be batched", registry=reg)
        self.backlog = Gauge(
            f"{ns}_score_stream_backlog", "Unprocessed entries in the Redis request stream", registry=reg
        )
        self.batch_size = Histogram(
            f"{ns}_score_batch_size", "Requests per flushed batch", buckets=_SIZE_BUCKETS, registry=reg
        )
        self.micro_batches = Counter(f"{ns}_score_model_calls", "Model calls (micro-batches)", registry=reg)
        self.real_tokens = Counter(f"{ns}_score_real_tokens", "Unpadded tokens scored", registry=reg)
        self.padded_tokens = Counter(f"{ns}_score_padded_tokens", "Padded tokens computed", registry=reg)
        self.stage_seconds = Histogram(
            f"{ns}_score_stage_seconds",
            "Latency per stage: queue (enqueue→batch), model, write (result delivery), total",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.requests = Counter(
            f"{ns}_score_requests",
            "Requests by outcome (ok, expired, failed, malformed)",
            ["outcome"],
            registry=reg,
        )
        self.errors = Counter(f"{ns}_score_errors", "Errors by kind", ["kind"], registry=reg)
        self.reclaimed = Counter(
            f"{ns}_score_reclaimed", "Pending entries reclaimed from dead workers", registry=reg
        )
        self.model_info = Gauge(
            f"{ns}_score_model_loaded", "1 for the loaded model version", ["version"], registry=reg
        )

    def observe_batch(self, size: int, real_tokens: int, padded_tokens: int, calls: int) -> None:
        self.batch_size.observe(size)
        self.real_tokens.inc(real_tokens)
        self.padded_tokens.inc(padded_tokens)
        self.micro_batches.inc(calls)

    def set_model(self, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version).set(1)
