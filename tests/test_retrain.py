"""The retraining loop on the real SQLite store and the real shared data, with scorers standing in for
trained models (training itself is covered by the training tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from moderation.domain import Member, Platform, Role, Verdict
from moderation.fakes import FakeScoreClient, FakeScorer, FixedClock, RecordingActions
from moderation.labels import LABELS
from moderation.service import ModerationService
from tests.store.fixtures import open_test_store
from training.retrain import collect_verdicts, retrain

MOD = Member(Platform.DEMO, "mod", roles=frozenset({Role.MODERATOR}))


class ConstantScorer:
    """A useless model: the same scores for every text."""

    labels = LABELS
    version = "constant-0"

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [dict.fromkeys(LABELS, 0.5) for _ in texts]


async def seed_verdicts(store, n: int) -> None:
    from moderation.domain import MessageVersion

    clock = FixedClock()
    service = ModerationService(
        scorer=FakeScoreClient(), store=store, actions={Platform.DEMO: RecordingActions()}, clock=clock
    )
    author = Member(Platform.DEMO, "alice")
    for i in range(n):
        text = f"you are an idiot number {i}" if i % 2 else f"kill the boss in level {i}"
        out = await service.handle_message(
            MessageVersion(Platform.DEMO, "s", "c", f"m{i}", author, text, clock.now())
        )
        verdict = Verdict.UPHOLD if i % 2 else Verdict.RESTORE
        await service.apply_override(out.case.id, MOD, verdict)


@pytest.fixture
async def sql(tmp_path: Path):
    async with open_test_store("sqlite", tmp_path) as store:
        yield store


async def test_collect_verdicts_labels_and_points(sql) -> None:
    await seed_verdicts(sql, 6)
    examples, points = await collect_verdicts(sql)
    assert len(examples) == 6
    upheld = [e for e in examples if "idiot" in e.text]
    restored = [e for e in examples if "kill" in e.text]
    assert all(e.value("toxic") == 1.0 and not e.known("threat") for e in upheld)
    assert all(all(e.known(lab) and e.value(lab) == 0.0 for lab in LABELS) for e in restored)
    assert any(p.violating for p in points) and any(not p.violating for p in points)


@pytest.mark.parametrize(
    ("current", "candidate", "status"),
    [
        (ConstantScorer(), FakeScorer(version="fake-2"), "promoted"),
        (FakeScorer(), ConstantScorer(), "rejected"),
    ],
)
async def test_retrain_promotes_only_if_not_worse(
    sql, tmp_path: Path, shared_data: Path, current, candidate, status: str
) -> None:
    await seed_verdicts(sql, 4)
    trained: list[int] = []
    published: list[str] = []

    def train_candidate(run_dir: Path, out_dir: Path, extra) -> Path:
        trained.append(len(extra))
        out_dir.mkdir(parents=True)
        (out_dir / "card.json").write_text("{}")
        return out_dir

    def load_scorer(path: Path | None):
        return current if path is None else candidate

    async def publish(path: str) -> None:
        published.append(path)

    report = await retrain(
        store=sql,
        data_dir=shared_data,
        run_dir=tmp_path / "run",
        models_root=tmp_path / "models",
        current_model=None,
        load_scorer=load_scorer,
        train_candidate=train_candidate,
        min_new_verdicts=4,
        eval_size=300,
        eval_limit=400,
        publish_reload=publish,
        now=datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert trained == [4]
    assert report.status == status, report.reasons
    assert "mean_auc" in report.current and "mean_auc" in report.candidate
    if status == "promoted":
        current_link = tmp_path / "models" / "current"
        assert current_link.resolve() == (tmp_path / "models" / "fake-2").resolve()
        assert (current_link / "card.json").exists()
        assert published == [str(current_link)]
        assert await sql.active_model_version() == "fake-2"
    else:
        assert not (tmp_path / "models" / "current").exists() and published == []


async def test_retrain_skips_with_too_few_verdicts(sql, tmp_path: Path, shared_data: Path) -> None:
    await seed_verdicts(sql, 2)

    def never(*args):
        raise AssertionError("must not train")

    report = await retrain(
        store=sql,
        data_dir=shared_data,
        run_dir=tmp_path / "run",
        models_root=tmp_path / "models",
        current_model=None,
        load_scorer=lambda p: FakeScorer(),
        train_candidate=never,
        min_new_verdicts=50,
        now=datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert report.status == "skipped" and report.verdicts == 2
    assert set(report.recommended_thresholds) == set(LABELS)
