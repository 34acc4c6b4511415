"""The inference side shared by the local batcher and the Redis worker.

One dedicated thread runs the model (torch releases the GIL inside its kernels, so the asyncio loop
keeps reading and writing while a batch computes). The scorer can be swapped between batches for hot
reload. A batch that raises is retried item by item, so one poisonous text fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from moderation.ports import TextScorer

log = logging.getLogger(__name__)

TokenCounter = Callable[[Sequence[str]], list[int]]


def estimate_tokens(texts: Sequence[str]) -> list[int]:
    """Cheap WordPiece-length estimate (words x 1.3 + specials) when the scorer exposes no tokenizer."""
    return [min(512, int(len(t.split()) * 1.3 + len(t) / 40) + 2) for t in texts]


def token_counter_for(scorer: TextScorer) -> TokenCounter:
    """The scorer's own token counter when it has one (``token_lengths``), else the estimate."""
    fn = getattr(scorer, "token_lengths", None)
    if callable(fn):
        return fn  # type: ignore[no-any-return]
    return estimate_tokens


@dataclass(frozen=True, slots=True)
class Outcome:
    """Scores for one text, or the error that prevented them."""

    scores: dict[str, float] | None
    error: str | None = None


class InferenceRunner:
    """Runs micro-batches on one inference thread; ``swap`` replaces the model between batches."""

    def __init__(self, scorer: TextScorer) -> None:
        self._scorer = scorer
        self._count_tokens = token_counter_for(scorer)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatmod-infer")
        self.model_seconds = 0.0
        self.calls = 0

    @property
    def scorer(self) -> TextScorer:
        return self._scorer

    @property
    def version(self) -> str:
        return self._scorer.version

    def swap(self, scorer: TextScorer) -> str:
        """Use ``scorer`` from the next batch on; returns the previous version."""
        old = self._scorer.version
        self._scorer = scorer
        self._count_tokens = token_counter_for(scorer)
        return old

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._count_tokens(texts)

    async def run(self, micro: Sequence[Sequence[str]]) -> tuple[list[list[Outcome]], str, float]:
        """Score each micro-batch in the inference thread; returns outcomes, model version, seconds."""
        loop = asyncio.get_running_loop()
        scorer = self._scorer  # one version for the whole batch, even if a swap lands meanwhile
        return await loop.run_in_executor(self._executor, self._run_sync, scorer, micro)

    def _run_sync(
        self, scorer: TextScorer, micro: Sequence[Sequence[str]]
    ) -> tuple[list[list[Outcome]], str, float]:
        start = time.perf_counter()
        out = [self._score_group(scorer, list(texts)) for texts in micro]
        elapsed = time.perf_counter() - start
        self.model_seconds += elapsed
        self.calls += len(micro)
        return out, scorer.version, elapsed

    @staticmethod
    def _score_group(scorer: TextScorer, texts: list[str]) -> list[Outcome]:
        try:
            scores = scorer.score_batch(texts)
            if len(scores) != len(texts):
                raise RuntimeError(f"scorer returned {len(scores)} results for {len(texts)} texts")
            return [Outcome(dict(s)) for s in scores]
        except Exception:
            if len(texts) == 1:
                log.exception("scoring failed for one text (%d chars)", len(texts[0]))
                return [Outcome(None, "failed")]
            log.warning("batch of %d failed; retrying item by item to isolate the bad input", len(texts))
        results: list[Outcome] = []
        for text in texts:
            results.extend(InferenceRunner._score_group(scorer, [text]))
        return results

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
