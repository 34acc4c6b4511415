"""Deterministic fakes for the heavy edges, so the whole moderation loop runs fast in tests.

Selected by config (``[model] backend = "fake"``); never the default for users.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from moderation.domain import (
    Appeal,
    AppealOutcome,
    AppealStatus,
    AuditEntry,
    Capabilities,
    Case,
    Decision,
    Member,
    MessageKey,
    MessageVersion,
    Override,
    Platform,
    ScoreResult,
    Strike,
    Verdict,
)
from moderation.errors import InvalidTransition, NotFound, ScoringOverloaded, ScoringTimeout
from moderation.labels import LABELS
from moderation.normalize import normalize_for_scoring
from moderation.policy import DEFAULT_TIERS, ServerPolicy, Tiers
from moderation.ports import Notice

#: word -> label scores the FakeScorer assigns when the (normalised) word appears.
FAKE_LEXICON: Mapping[str, Mapping[str, float]] = {
    "idiot": {"toxic": 0.91, "insult": 0.88},
    "stupid": {"toxic": 0.84, "insult": 0.70},
    "moron": {"toxic": 0.93, "insult": 0.90},
    "fuck": {"toxic": 0.97, "obscene": 0.95, "severe_toxic": 0.40},
    "shit": {"toxic": 0.88, "obscene": 0.86},
    "kill": {"toxic": 0.90, "threat": 0.90},
    "hate": {"toxic": 0.82, "identity_hate": 0.30},
    "vermin": {"toxic": 0.95, "identity_hate": 0.92, "insult": 0.80},
}


class FakeScorer:
    """A deterministic ``TextScorer``: scores from a small lexicon over the normalised text.

    Every label gets a low base score; each lexicon word present raises labels to its value.
    """

    def __init__(
        self,
        lexicon: Mapping[str, Mapping[str, float]] = FAKE_LEXICON,
        version: str = "fake-1",
        call_seconds: float = 0.0,
    ):
        self._lexicon = lexicon
        self._version = version
        #: Each ``score_batch`` call blocks this long first, like a model holding the inference thread
        #: (tests use it to land a SIGKILL mid-batch or to make batches fill).
        self.call_seconds = call_seconds
        self.calls: list[list[str]] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    @property
    def version(self) -> str:
        return self._version

    def score_one(self, text: str) -> dict[str, float]:
        norm = normalize_for_scoring(text)
        scores = dict.fromkeys(LABELS, 0.01)
        words = set(re.findall(r"\w+", norm))
        for word, label_scores in self._lexicon.items():
            if word in words or any(w.startswith(word) for w in words):
                for label, value in label_scores.items():
                    scores[label] = max(scores[label], value)
        return scores

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if self.call_seconds:
            time.sleep(self.call_seconds)
        self.calls.append(list(texts))
        if len(self.calls) > 10_000:  # a long-running fake worker (bench) keeps only recent calls
            del self.calls[:5_000]
        return [self.score_one(t) for t in texts]

    def evidence(self, text: str) -> dict[str, tuple[str, ...]]:
        norm = normalize_for_scoring(text)
        out: dict[str, list[str]] = {}
        for word in re.findall(r"\w+", norm):
            for key, label_scores in self._lexicon.items():
                if word.startswith(key):
                    for label in label_scores:
                        out.setdefault(label, []).append(word)
        return {k: tuple(v) for k, v in out.items()}


class FakeScoreClient:
    """``ScoreClient`` over a ``TextScorer`` with no queue; can simulate overload/timeouts."""

    def __init__(self, scorer: FakeScorer | None = None) -> None:
        self.scorer = scorer or FakeScorer()
        self.fail_with: type[Exception] | None = None
        self.requests: list[str] = []

    async def score(self, text: str, *, timeout: float | None = None) -> ScoreResult:
        self.requests.append(text)
        if self.fail_with is ScoringTimeout:
            raise ScoringTimeout("fake timeout", after=1.0)
        if self.fail_with is ScoringOverloaded:
            raise ScoringOverloaded("fake overload", after=1.0)
        if self.fail_with is not None:
            raise self.fail_with("fake failure")
        await asyncio.sleep(0)
        empty = not normalize_for_scoring(text).strip()
        scores = dict.fromkeys(LABELS, 0.0) if empty else self.scorer.score_batch([text])[0]
        return ScoreResult(scores, self.scorer.version, empty=empty, evidence=self.scorer.evidence(text))


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


@dataclass
class RecordingActions:
    """``PlatformActions`` that records every call; can be told to fail."""

    caps: Capabilities = field(default_factory=Capabilities)
    calls: list[tuple[str, object]] = field(default_factory=list)

    @property
    def capabilities(self) -> Capabilities:
        return self.caps

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    async def delete(self, case: Case) -> None:
        self.calls.append(("delete", case.id))

    async def hold(self, case: Case) -> None:
        self.calls.append(("hold", case.id))

    async def timeout(self, case: Case, seconds: int) -> None:
        self.calls.append(("timeout", (case.id, seconds)))

    async def restore(self, case: Case) -> None:
        self.calls.append(("restore", case.id))

    async def escalate(self, case: Case) -> None:
        self.calls.append(("escalate", case.id))

    async def notify_member(self, case: Case, notice: Notice) -> None:
        self.calls.append(("notify", notice))

    async def send_appeal_outcome(self, case: Case, appeal: Appeal) -> None:
        self.calls.append(("appeal_outcome", appeal.outcome))

    async def resolve_review(self, case: Case, verdict: Verdict, moderator: Member) -> None:
        self.calls.append(("resolve_review", (case.id, verdict)))

    async def alert_admins(self, server_id: str, message: str) -> None:
        self.calls.append(("alert", message))


class MemoryStore:
    """In-memory ``Store`` with the same idempotency and state rules as the SQL store."""

    def __init__(self) -> None:
        self.policies: dict[tuple[Platform, str], ServerPolicy] = {}
        self.cases: dict[int, Case] = {}
        self.by_key: dict[MessageKey, int] = {}
        self.overrides: list[Override] = []
        self.actions: dict[tuple[int, str], None] = {}  # insertion-ordered
        self.strikes: list[Strike] = []
        self.appeals: dict[int, Appeal] = {}
        self.audit: list[AuditEntry] = []
        self.default_thresholds: Mapping[str, Tiers] | None = None
        self._ids = itertools.count(1)
        self._appeal_ids = itertools.count(1)

    async def get_policy(self, platform: Platform, server_id: str) -> ServerPolicy:
        if (platform, server_id) not in self.policies:
            thresholds = dict(self.default_thresholds or DEFAULT_TIERS)
            self.policies[(platform, server_id)] = ServerPolicy(server_id, thresholds=thresholds)
        return self.policies[(platform, server_id)]

    async def save_policy(self, platform: Platform, policy: ServerPolicy) -> None:
        self.policies[(platform, policy.server_id)] = policy

    async def record_decision(
        self, msg: MessageVersion, result: ScoreResult | None, decision: Decision, now: datetime
    ) -> tuple[Case, bool]:
        key = msg.key
        if key in self.by_key:
            return self.cases[self.by_key[key]], False
        case = Case(
            id=next(self._ids),
            key=key,
            server_id=msg.server_id,
            author=msg.author,
            text=msg.text,
            decision=decision,
            scores=dict(result.scores) if result else {},
            decided_at=now,
            status="open" if decision.action.value != "allow" else "closed",
            channel_name=msg.channel_name,
        )
        self.cases[case.id] = case
        self.by_key[key] = case.id
        return case, True

    async def get_case(self, case_id: int) -> Case:
        try:
            return self.cases[case_id]
        except KeyError:
            raise NotFound("case", case_id) from None

    async def get_case_by_key(self, key: MessageKey) -> Case | None:
        cid = self.by_key.get(key)
        return self.cases[cid] if cid is not None else None

    async def cases_for_message(self, platform: Platform, channel_id: str, message_id: str) -> list[Case]:
        return [
            c
            for c in self.cases.values()
            if (c.key.platform, c.key.channel_id, c.key.message_id) == (platform, channel_id, message_id)
        ]

    async def list_cases(
        self,
        platform: Platform | None = None,
        server_id: str | None = None,
        *,
        status: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
    ) -> list[Case]:
        out = [
            c
            for c in self.cases.values()
            if (platform is None or c.key.platform == platform)
            and (server_id is None or c.server_id == server_id)
            and (status is None or c.status == status)
            and (user_id is None or c.author.user_id == user_id)
        ]
        return sorted(out, key=lambda c: c.id, reverse=True)[:limit]

    async def resolve_case(self, case_id: int, verdict: Verdict) -> Case:
        case = replace(await self.get_case(case_id), status="resolved", verdict=verdict)
        self.cases[case_id] = case
        return case

    async def record_override(self, override: Override) -> None:
        self.overrides.append(override)

    async def mark_action(self, case_id: int, action: str) -> bool:
        if (case_id, action) in self.actions:
            return False
        self.actions[(case_id, action)] = None
        return True

    async def unmark_action(self, case_id: int, action: str) -> None:
        self.actions.pop((case_id, action), None)

    async def applied_actions_for(self, case_id: int) -> list[str]:
        return [action for cid, action in self.actions if cid == case_id]

    async def add_strike(self, strike: Strike) -> None:
        self.strikes.append(strike)

    async def strikes_for(self, platform: Platform, server_id: str, user_id: str) -> list[Strike]:
        return [
            s for s in self.strikes if (s.platform, s.server_id, s.user_id) == (platform, server_id, user_id)
        ]

    async def reverse_strikes(self, case_id: int) -> int:
        n = 0
        for i, s in enumerate(self.strikes):
            if s.case_id == case_id and not s.reversed:
                self.strikes[i] = replace(s, reversed=True)
                n += 1
        return n

    async def create_appeal(self, case_id: int, member: Member, text: str, now: datetime) -> Appeal:
        await self.get_case(case_id)
        appeal = Appeal(next(self._appeal_ids), case_id, member, text, now)
        self.appeals[appeal.id] = appeal
        return appeal

    async def get_appeal(self, appeal_id: int) -> Appeal:
        try:
            return self.appeals[appeal_id]
        except KeyError:
            raise NotFound("appeal", appeal_id) from None

    async def list_appeals(
        self, platform: Platform | None = None, server_id: str | None = None, *, status: str | None = None
    ) -> list[Appeal]:
        out = []
        for a in self.appeals.values():
            case = self.cases[a.case_id]
            if platform is not None and case.key.platform != platform:
                continue
            if server_id is not None and case.server_id != server_id:
                continue
            if status is not None and a.status != status:
                continue
            out.append(a)
        return out

    async def decide_appeal(
        self, appeal_id: int, outcome: AppealOutcome, moderator: Member, message: str, now: datetime
    ) -> Appeal:
        appeal = await self.get_appeal(appeal_id)
        if appeal.status is AppealStatus.DECIDED:
            raise InvalidTransition(f"appeal {appeal_id} is already decided")
        appeal = replace(
            appeal,
            status=AppealStatus.DECIDED,
            outcome=outcome,
            decided_by=f"{moderator.platform}:{moderator.user_id}",
            decided_at=now,
            message=message,
        )
        self.appeals[appeal_id] = appeal
        return appeal

    async def append(self, entry: AuditEntry) -> None:
        self.audit.append(entry)

    async def entries(self, server_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        out = [e for e in self.audit if server_id is None or e.server_id == server_id]
        return out[-limit:]
