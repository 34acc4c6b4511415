"""Dynamic batching: when to flush, what to take, and how to split it to cut padding.

Pure logic with the clock injected (``now`` is passed in), in the spirit of michaelfeil/infinity's
batch handler: requests wait in a bounded queue; a batch is flushed when it is full (count or token
budget), when the oldest request has waited ``max_wait`` seconds, or when a deadline is close.
Requests whose deadline has passed are dropped (their caller already gave up). The batch taken is
sorted by token length and split into *micro-batches* of similar lengths, so padding stays small
while each model call still covers enough tokens to keep the matrix multiplications efficient.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from moderation.errors import ScoringOverloaded, ValidationError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Tuning knobs. ``call_overhead_tokens``: the fixed cost of one model call, in token units."""

    max_batch: int = 64
    max_tokens: int = 8192
    max_wait: float = 0.002
    max_queue: int = 2048
    #: Flush early when the earliest deadline is this close (seconds), so the result can still arrive.
    deadline_margin: float = 0.005
    call_overhead_tokens: int = 48
    #: A micro-batch never holds more padded tokens than this (bounds activation memory and latency).
    max_micro_tokens: int = 4096

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_tokens", "max_queue", "max_micro_tokens"):
            if getattr(self, name) < 1:
                raise ValidationError(name, "must be at least 1")
        if self.max_wait < 0 or self.deadline_margin < 0 or self.call_overhead_tokens < 0:
            raise ValidationError("max_wait", "times and overheads must not be negative")


@dataclass(slots=True)
class Pending(Generic[T]):
    item: T
    tokens: int
    enqueued_at: float
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """What one flush yields: micro-batches (each sorted by length) and the expired requests."""

    micro: tuple[tuple[Pending[T], ...], ...]
    expired: tuple[Pending[T], ...]
    taken_at: float

    @property
    def size(self) -> int:
        return sum(len(m) for m in self.micro)

    @property
    def real_tokens(self) -> int:
        return sum(p.tokens for m in self.micro for p in m)

    @property
    def padded_tokens(self) -> int:
        return sum(len(m) * max(p.tokens for p in m) for m in self.micro if m)

    @property
    def padding_waste(self) -> float:
        padded = self.padded_tokens
        return 0.0 if padded == 0 else 1.0 - self.real_tokens / padded

    def items(self) -> list[T]:
        return [p.item for m in self.micro for p in m]


def split_by_length(lengths: Sequence[int], overhead: int, max_tokens: int) -> list[int]:
    """Optimal split of *sorted* lengths into contiguous groups; returns the group end indices.

    Minimises ``sum(group_size * max_len_in_group + overhead)`` subject to each group's padded size
    staying within ``max_tokens`` (a lone over-long item still gets a group of its own). O(n²) with
    n ≤ max_batch, a few hundred microseconds at most.
    """
    n = len(lengths)
    best = [0] + [-1] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        top = lengths[j - 1]
        best_cost, best_i = -1, j - 1
        for i in range(j - 1, -1, -1):
            if (j - i) * top > max_tokens and i < j - 1:
                break
            cost = best[i] + overhead + (j - i) * top
            if best_cost < 0 or cost <= best_cost:  # ties: fewer, larger calls
                best_cost, best_i = cost, i
        best[j], cut[j] = best_cost, best_i
    ends: list[int] = []
    j = n
    while j > 0:
        ends.append(j)
        j = cut[j]
    return ends[::-1]


@dataclass(slots=True)
class BatcherStats:
    batches: int = 0
    items: int = 0
    expired: int = 0
    rejected: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    sizes: list[int] = field(default_factory=list)

    @property
    def padding_waste(self) -> float:
        return 0.0 if not self.padded_tokens else 1.0 - self.real_tokens / self.padded_tokens


class Batcher(Generic[T]):
    """A bounded FIFO of pending requests plus the flush decision. Not thread-safe: one owner."""

    def __init__(self, policy: BatchPolicy | None = None) -> None:
        self.policy = policy or BatchPolicy()
        self._queue: deque[Pending[T]] = deque()
        self._tokens = 0
        self.stats = BatcherStats()

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def queued_tokens(self) -> int:
        return self._tokens

    def add(self, item: T, tokens: int, now: float, deadline: float | None = None) -> None:
        """Queue one request; raises ``ScoringOverloaded`` when the queue is full (never drops silently)."""
        if len(self._queue) >= self.policy.max_queue:
            self.stats.rejected += 1
            limit = self.policy.max_queue
            raise ScoringOverloaded(f"scoring queue full ({limit})", after=self.policy.max_wait)
        self._queue.append(Pending(item, max(1, tokens), now, deadline))
        self._tokens += max(1, tokens)

    def next_flush_at(self) -> float | None:
        """The time at which ``ready`` turns true if nothing else arrives (None: queue empty)."""
        if not self._queue:
            return None
        if len(self._queue) >= self.policy.max_batch or self._tokens >= self.policy.max_tokens:
            return self._queue[0].enqueued_at
        at = self._queue[0].enqueued_at + self.policy.max_wait
        deadlines = [p.deadline for p in self._queue if p.deadline is not None]
        if deadlines:
            at = min(at, min(deadlines) - self.policy.deadline_margin)
        return at

    def ready(self, now: float) -> bool:
        """Flush now? Full by count or tokens, oldest waited ``max_wait``, or a deadline is close."""
        at = self.next_flush_at()
        return at is not None and now >= at

    def take(self, now: float) -> Batch[T]:
        """Pop up to ``max_batch`` live requests (FIFO, within the token budget) as micro-batches."""
        chosen: list[Pending[T]] = []
        expired: list[Pending[T]] = []
        tokens = 0
        policy = self.policy
        while self._queue and len(chosen) < policy.max_batch:
            head = self._queue[0]
            if head.deadline is not None and head.deadline <= now:
                expired.append(self._queue.popleft())
                self._tokens -= head.tokens
                continue
            if chosen and tokens + head.tokens > policy.max_tokens:
                break
            chosen.append(self._queue.popleft())
            self._tokens -= head.tokens
            tokens += head.tokens
        chosen.sort(key=lambda p: p.tokens)
        lengths = [p.tokens for p in chosen]
        ends = split_by_length(lengths, policy.call_overhead_tokens, policy.max_micro_tokens)
        micro: list[tuple[Pending[T], ...]] = []
        start = 0
        for end in ends:
            micro.append(tuple(chosen[start:end]))
            start = end
        batch = Batch(tuple(micro), tuple(expired), now)
        st = self.stats
        st.expired += len(expired)
        if chosen:
            st.batches += 1
            st.items += len(chosen)
            st.real_tokens += batch.real_tokens
            st.padded_tokens += batch.padded_tokens
            st.sizes.append(len(chosen))
            if len(st.sizes) > 10_000:
                del st.sizes[:5_000]
        return batch

    def drain_expired(self, now: float) -> list[Pending[T]]:
        """Remove every expired request wherever it sits in the queue (used while the model is busy)."""
        keep: deque[Pending[T]] = deque()
        gone: list[Pending[T]] = []
        for p in self._queue:
            (gone if p.deadline is not None and p.deadline <= now else keep).append(p)
        if gone:
            self._queue = keep
            self._tokens -= sum(p.tokens for p in gone)
            self.stats.expired += len(gone)
        return gone

    def clear(self) -> list[Pending[T]]:
        items = list(self._queue)
        self._queue.clear()
        self._tokens = 0
        return items
