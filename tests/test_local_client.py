from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from moderation.errors import ScoringOverloaded, ScoringTimeout
from moderation.fakes import FakeScorer
from moderation.labels import LABELS
from moderation.scoring.batcher import BatchPolicy
from moderation.scoring.local import LocalScoreClient

TEXTS = ["hello there", "you are an idiot", "I will kill you", "nice picture!", "shut up moron", ""]


class GatedScorer(FakeScorer):
    """A FakeScorer whose batches wait for a gate, to hold the inference thread busy on purpose."""

    def __init__(self) -> None:
        super().__init__(version="gated-1")
        self.gate = threading.Event()

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.gate.wait(5)
        return super().score_batch(texts)


class ExplodingScorer(FakeScorer):
    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if any("boom" in t for t in texts):
            raise ValueError("poison")
        return super().score_batch(texts)


async def test_results_match_direct_scoring_and_requests_are_batched() -> None:
    scorer = FakeScorer()
    async with LocalScoreClient(scorer, BatchPolicy(max_wait=0.01)) as client:
        results = await asyncio.gather(*(client.score(t) for t in TEXTS * 5))
    direct = FakeScorer().score_batch(TEXTS * 5)
    assert [dict(r.scores) for r in results] == direct
    assert all(r.model_version == "fake-1" for r in results)
    assert set(results[0].scores) == set(LABELS)
    assert results[5].empty and not results[0].empty
    assert max(len(call) for call in scorer.calls) > 1  # concurrent requests shared model calls
    assert sum(len(call) for call in scorer.calls) == len(TEXTS) * 5


async def test_overload_is_typed_and_nothing_silently_dropped() -> None:
    scorer = GatedScorer()
    client = LocalScoreClient(scorer, BatchPolicy(max_queue=4, max_batch=1, max_wait=0))
    await client.start()
    first = asyncio.create_task(client.score("a"))
    await asyncio.sleep(0.05)  # "a" is now in the (blocked) model
    queued = [asyncio.create_task(client.score(f"q{i}")) for i in range(4)]
    await asyncio.sleep(0)
    with pytest.raises(ScoringOverloaded):
        await client.score("one too many")
    scorer.gate.set()
    done = await asyncio.gather(first, *queued)
    assert len(done) == 5
    await client.close()


async def test_timeout_raises_and_late_request_never_reaches_model() -> None:
    scorer = GatedScorer()
    async with LocalScoreClient(scorer, BatchPolicy(max_batch=1, max_wait=0)) as client:
        blocker = asyncio.create_task(client.score("first"))
        await asyncio.sleep(0.05)
        with pytest.raises(ScoringTimeout):
            await client.score("late", timeout=0.05)
        scorer.gate.set()
        await blocker
        ok = await client.score("after")
    scored = [t for call in scorer.calls for t in call]
    assert "late" not in scored and scored == ["first", "after"]
    assert ok.model_version == "gated-1"


async def test_close_drains_queued_requests() -> None:
    scorer = GatedScorer()
    client = LocalScoreClient(scorer, BatchPolicy(max_batch=2, max_wait=0), drain_timeout=5)
    await client.start()
    tasks = [asyncio.create_task(client.score(f"t{i}")) for i in range(7)]
    await asyncio.sleep(0.02)
    closing = asyncio.create_task(client.close())
    await asyncio.sleep(0.02)
    with pytest.raises(ScoringOverloaded):
        await client.score("after close")  # intake stopped
    scorer.gate.set()
    await closing
    results = await asyncio.gather(*tasks)
    assert len(results) == 7 and all(r.model_version == "gated-1" for r in results)
    await client.close()  # idempotent


async def test_poison_text_fails_alone() -> None:
    async with LocalScoreClient(ExplodingScorer(), BatchPolicy(max_wait=0.01)) as client:
        results = await asyncio.gather(
            *(client.score(t) for t in ["ok", "boom", "fine"]), return_exceptions=True
        )
    assert isinstance(results[1], Exception) and "failed" in str(results[1])
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)


async def test_hot_swap_changes_version_without_dropping() -> None:
    async with LocalScoreClient(FakeScorer(), BatchPolicy(max_wait=0)) as client:
        before = await client.score("hi")
        client.swap_scorer(FakeScorer(version="fake-2"))
        after = await client.score("hi")
    assert (before.model_version, after.model_version) == ("fake-1", "fake-2")
    assert before.scores == after.scores


@pytest.mark.slow
async def test_torch_fast_path_matches_direct_scoring() -> None:
    """The worker tokenises once at intake; its scores must equal TorchScorer.score_batch exactly."""
    from moderation.scoring.backend import TorchScorer

    scorer = TorchScorer.load(device="cpu", threads=1)
    long_text = "you are a complete idiot and " * 80  # several windows
    texts = [*TEXTS, long_text, "ｙｏｕ ａｒｅ ａｎ ｉｄｉｏｔ", "\u200b\u200b"]
    async with LocalScoreClient(scorer, BatchPolicy(max_wait=0.01)) as client:
        results = await asyncio.gather(*(client.score(t) for t in texts))
    direct = scorer.score_batch(texts)
    for got, want in zip(results, direct, strict=True):
        assert got.scores.keys() == want.keys()
        assert all(abs(got.scores[k] - want[k]) < 1e-5 for k in want)
    assert results[0].model_version == scorer.version


@pytest.mark.slow
def test_torch_fast_path_tokenises_like_the_scorer(shared_data) -> None:  # type: ignore[no-untyped-def]
    """The intake tokeniser (Rust ``encode_batch_fast``, no offsets) gives the scorer's own windows on
    real tweets, including long, empty and obfuscated ones."""
    import csv

    from moderation.scoring.backend import TorchScorer
    from moderation.scoring.runner import _TorchFastPath

    with (shared_data / "davidson2017_labeled_data.csv").open(encoding="utf-8") as f:
        tweets = [row["tweet"] for _, row in zip(range(300), csv.DictReader(f), strict=False)]
    texts = [*tweets, "", "   ", "y0u 4re 4n 1d10t", "word " * 400]
    scorer = TorchScorer.load(device="cpu", threads=1)
    prepared = _TorchFastPath(scorer).prepare(texts)
    ids = scorer._encode([scorer.prepare(t) for t in texts])
    for prep, seq in zip(prepared, ids, strict=True):
        want = tuple(tuple(w) for w in scorer._windows(seq)) if seq else ()
        assert prep.windows == want
        assert prep.tokens == max(1, sum(len(w) for w in want))
    assert len(prepared[-1].windows or ()) > 3  # the long text really was windowed
