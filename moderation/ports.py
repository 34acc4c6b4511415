"""Ports: the interfaces the moderation service drives. Adapters and stores implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from moderation.domain import (
    Action,
    Appeal,
    AppealOutcome,
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
from moderation.policy import ServerPolicy


class Clock(Protocol):
    def now(self) -> datetime: ...


@runtime_checkable
class TextScorer(Protocol):
    """A synchronous model backend: scores a batch of (already normalised) texts.

    Implemented by ``moderation.scoring.backend.TorchScorer`` and by ``FakeScorer``.
    """

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def version(self) -> str: ...

    def score_batch(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


class ScoreClient(Protocol):
    """Async scoring as the service sees it: in-process batcher, Redis client, or a fake.

    Raises ``ScoringTimeout`` / ``ScoringOverloaded`` (both ``RetryLater``) when it cannot answer.
    """

    async def score(self, text: str, *, timeout: float | None = None) -> ScoreResult: ...


@dataclass(frozen=True, slots=True)
class Notice:
    """What a member is told privately when a message of theirs is held or removed."""

    case_id: int
    action: Action
    category: str | None
    rule: str  # human wording of the threshold that fired
    text: str  # their own text back
    appealable: bool = True


class PlatformActions(Protocol):
    """Carries out decisions on one platform. Implementations must be idempotent per case."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def delete(self, case: Case) -> None: ...

    async def hold(self, case: Case) -> None: ...

    async def timeout(self, case: Case, seconds: int) -> None: ...

    async def restore(self, case: Case) -> None: ...

    async def escalate(self, case: Case) -> None: ...

    async def notify_member(self, case: Case, notice: Notice) -> None: ...

    async def send_appeal_outcome(self, case: Case, appeal: Appeal) -> None: ...

    async def resolve_review(self, case: Case, verdict: Verdict, moderator: Member) -> None:
        """Update the review-queue post of a case with who decided what."""
        ...

    async def alert_admins(self, server_id: str, message: str) -> None: ...


class PolicyStore(Protocol):
    async def get_policy(self, platform: Platform, server_id: str) -> ServerPolicy:
        """The server's policy; an unknown server gets (and stores) the defaults."""
        ...

    async def save_policy(self, platform: Platform, policy: ServerPolicy) -> None: ...


class CaseStore(Protocol):
    async def record_decision(
        self, msg: MessageVersion, result: ScoreResult | None, decision: Decision, now: datetime
    ) -> tuple[Case, bool]:
        """Store a decision for a message version; idempotent on ``msg.key``.

        Returns the case and whether it was created (False: this version was already decided).
        """
        ...

    async def get_case(self, case_id: int) -> Case: ...

    async def get_case_by_key(self, key: MessageKey) -> Case | None: ...

    async def cases_for_message(self, platform: Platform, channel_id: str, message_id: str) -> list[Case]:
        """Every decided version of one message, oldest first."""
        ...

    async def list_cases(
        self,
        platform: Platform | None = None,
        server_id: str | None = None,
        *,
        status: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
    ) -> list[Case]: ...

    async def resolve_case(self, case_id: int, verdict: Verdict) -> Case: ...

    async def record_override(self, override: Override) -> None: ...

    async def mark_action(self, case_id: int, action: str) -> bool:
        """Record that ``action`` was applied to a case. False if it already was (apply at most once)."""
        ...

    async def unmark_action(self, case_id: int, action: str) -> None:
        """Forget a mark whose action failed, so the record stays true and a later attempt may apply it."""
        ...

    async def applied_actions_for(self, case_id: int) -> list[str]:
        """The actions applied to a case, oldest first."""
        ...

    async def add_strike(self, strike: Strike) -> None: ...

    async def strikes_for(self, platform: Platform, server_id: str, user_id: str) -> list[Strike]: ...

    async def reverse_strikes(self, case_id: int) -> int: ...

    async def create_appeal(self, case_id: int, member: Member, text: str, now: datetime) -> Appeal: ...

    async def get_appeal(self, appeal_id: int) -> Appeal: ...

    async def list_appeals(
        self, platform: Platform | None = None, server_id: str | None = None, *, status: str | None = None
    ) -> list[Appeal]: ...

    async def decide_appeal(
        self, appeal_id: int, outcome: AppealOutcome, moderator: Member, message: str, now: datetime
    ) -> Appeal: ...


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None:
        """Append-only; each stored row carries the hash of the previous one."""
        ...

    async def entries(self, server_id: str | None = None, limit: int = 100) -> Sequence[AuditEntry]: ...


class Store(PolicyStore, CaseStore, AuditLog, Protocol):
    """Everything the moderation service persists."""
