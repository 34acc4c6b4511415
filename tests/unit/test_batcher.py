from __future__ import annotations

import pytest

from moderation.errors import ScoringOverloaded, ValidationError
from moderation.scoring.batcher import Batcher, BatchPolicy, split_by_length


def make(**kw: object) -> Batcher[str]:
    return Batcher(BatchPolicy(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "adds", "now", "ready"),
    [
        ({"max_batch": 4, "max_wait": 0.01}, [(10, 0.0)], 0.0, False),  # one item, not waited yet
        ({"max_batch": 4, "max_wait": 0.01}, [(10, 0.0)], 0.0099, False),
        ({"max_batch": 4, "max_wait": 0.01}, [(10, 0.0)], 0.01, True),  # oldest waited max_wait
        ({"max_batch": 2, "max_wait": 1.0}, [(10, 0.0), (10, 0.0)], 0.0, True),  # full by count
        ({"max_tokens": 100, "max_wait": 1.0}, [(60, 0.0), (50, 0.0)], 0.0, True),  # full by tokens
        ({"max_wait": 0.0}, [(10, 5.0)], 5.0, True),  # no waiting at all
        ({}, [], 100.0, False),  # empty never flushes
    ],
)
def test_ready_table(
    policy: dict[str, object], adds: list[tuple[int, float]], now: float, ready: bool
) -> None:
    b = make(**policy)
    for i, (tokens, at) in enumerate(adds):
        b.add(f"r{i}", tokens, at)
    assert b.ready(now) is ready


def test_close_deadline_triggers_flush_before_max_wait() -> None:
    b = make(max_wait=1.0, deadline_margin=0.005)
    b.add("a", 10, now=0.0, deadline=0.02)
    assert not b.ready(0.010)
    assert b.ready(0.015)
    assert b.next_flush_at() == pytest.approx(0.015)


def test_take_drops_expired_and_keeps_fifo_within_budget() -> None:
    b = make(max_batch=3, max_tokens=1000)
    b.add("dead", 5, now=0.0, deadline=0.5)
    for name in ("a", "b", "c", "d"):
        b.add(name, 10, now=0.1)
    batch = b.take(now=1.0)
    assert [p.item for p in batch.expired] == ["dead"]
    assert sorted(batch.items()) == ["a", "b", "c"]
    assert b.depth == 1 and b.queued_tokens == 10
    assert b.stats.expired == 1 and b.stats.items == 3


def test_take_respects_token_budget_but_always_takes_one() -> None:
    b = make(max_tokens=100)
    b.add("huge", 500, now=0.0)
    b.add("small", 10, now=0.0)
    assert b.take(1.0).items() == ["huge"]
    assert b.take(1.0).items() == ["small"]


def test_length_sorting_splits_into_low_padding_micro_batches() -> None:
    b = make(max_batch=64, call_overhead_tokens=16)
    lengths = [8] * 20 + [120] * 4 + [30] * 20
    for i, n in enumerate(lengths):
        b.add(f"m{i}", n, now=0.0)
    batch = b.take(0.0)
    assert batch.size == len(lengths)
    for micro in batch.micro:
        toks = [p.tokens for p in micro]
        assert toks == sorted(toks)
    assert len(batch.micro) == 3
    assert batch.padding_waste == 0.0
    # One padded batch of 44 x 120 tokens would waste most of its compute.
    assert batch.padded_tokens < 44 * 120 * 0.4


@pytest.mark.parametrize(
    ("lengths", "overhead", "max_tokens", "ends"),
    [
        ([], 10, 100, []),
        ([5], 10, 100, [1]),
        ([10, 10, 10], 10, 1000, [3]),  # equal lengths: one call
        ([1, 1, 100], 10, 1000, [2, 3]),  # the long one alone
        ([1, 1, 100], 1000, 1000, [3]),  # calls expensive: pad rather than split
        ([50, 50, 50, 50], 0, 100, [2, 4]),  # token cap forces a split
        ([500], 0, 100, [1]),  # over-long item still gets a group
    ],
)
def test_split_by_length(lengths: list[int], overhead: int, max_tokens: int, ends: list[int]) -> None:
    assert split_by_length(lengths, overhead, max_tokens) == ends


def test_bounded_queue_raises_overloaded_and_counts() -> None:
    b = make(max_queue=2)
    b.add("a", 1, 0.0)
    b.add("b", 1, 0.0)
    with pytest.raises(ScoringOverloaded):
        b.add("c", 1, 0.0)
    assert b.depth == 2 and b.stats.rejected == 1


def test_drain_expired_anywhere_in_queue() -> None:
    b = make()
    b.add("keep", 3, 0.0, deadline=10.0)
    b.add("gone", 4, 0.0, deadline=1.0)
    b.add("nodeadline", 5, 0.0)
    gone = b.drain_expired(2.0)
    assert [p.item for p in gone] == ["gone"]
    assert b.depth == 2 and b.queued_tokens == 8


def test_stats_padding_waste_accumulates() -> None:
    b = make(call_overhead_tokens=10_000)  # never split: everything padded to the longest
    b.add("a", 10, 0.0)
    b.add("b", 30, 0.0)
    b.take(0.0)
    assert b.stats.padded_tokens == 60 and b.stats.real_tokens == 40
    assert b.stats.padding_waste == pytest.approx(1 / 3)
    assert b.stats.sizes == [2]


@pytest.mark.parametrize("field", ["max_batch", "max_tokens", "max_queue"])
def test_policy_validation(field: str) -> None:
    with pytest.raises(ValidationError):
        BatchPolicy(**{field: 0})
