"""Domain types shared by the core, the stores and the adapters. Immutable, platform-neutral."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Platform(StrEnum):
    DISCORD = "discord"
    SLACK = "slack"
    DEMO = "demo"
    API = "api"


class Role(StrEnum):
    """Platform-neutral roles; adapters map platform permissions onto them."""

    MEMBER = "member"
    MODERATOR = "moderator"
    ADMIN = "admin"


class Action(StrEnum):
    """What the policy decided to do with a message version."""

    ALLOW = "allow"
    HOLD = "hold"  # hide pending review (Discord: remove and keep in the review queue)
    DELETE = "delete"
    TIMEOUT = "timeout"  # delete + member timeout
    ESCALATE = "escalate"  # leave the message, alert moderators


class Verdict(StrEnum):
    """A moderator's verdict on a case."""

    RESTORE = "restore"  # the message was fine: repost/unhide, reverse the strike
    UPHOLD = "uphold"  # the decision stands
    DELETE = "delete"  # remove it (whatever the automatic decision was)
    TIMEOUT = "timeout"  # remove it and time the member out
    DISMISS = "dismiss"  # close an escalation without action (message stays, counted as not toxic)


class AppealStatus(StrEnum):
    SUBMITTED = "submitted"
    DECIDED = "decided"


class AppealOutcome(StrEnum):
    GRANTED = "granted"  # decision reversed, message restored, strike removed
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the platform lets the bot do. An action it cannot do degrades to ESCALATE."""

    can_delete: bool = True
    can_hold: bool = True
    can_timeout: bool = True
    can_repost: bool = True
    can_notify: bool = True


@dataclass(frozen=True, slots=True)
class Member:
    platform: Platform
    user_id: str
    display_name: str = ""
    roles: frozenset[Role] = frozenset({Role.MEMBER})
    role_ids: frozenset[str] = frozenset()  # platform role ids, for exemptions
    is_bot: bool = False
    avatar_url: str | None = None

    def has(self, role: Role) -> bool:
        if role is Role.MEMBER:
            return True
        if role is Role.MODERATOR:
            return Role.MODERATOR in self.roles or Role.ADMIN in self.roles
        return role in self.roles


def content_hash(text: str) -> str:
    """Stable hash of a message's content: the identity of one version of a message."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class MessageKey:
    """Identifies one *version* of a message: an edit has a new content hash."""

    platform: Platform
    channel_id: str
    message_id: str
    content_hash: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.channel_id}:{self.message_id}:{self.content_hash[:12]}"


@dataclass(frozen=True, slots=True)
class MessageVersion:
    platform: Platform
    server_id: str
    channel_id: str
    message_id: str
    author: Member
    text: str
    sent_at: datetime
    edited: bool = False
    #: True when the platform withheld content (e.g. Discord without the message-content intent).
    content_missing: bool = False
    attachments: int = 0
    channel_name: str = ""
    #: Bot-side delivery id (Slack event_id, Discord gateway sequence) — for logs only.
    delivery_id: str | None = None

    @property
    def key(self) -> MessageKey:
        return MessageKey(self.platform, self.channel_id, self.message_id, content_hash(self.text))


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Per-label probabilities for one text, from one model version."""

    scores: Mapping[str, float]
    model_version: str
    #: True when the text was empty after normalisation (scores are then all zero).
    empty: bool = False
    #: label -> words that drove the score (optional, filled by explainers).
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LabelHit:
    """A label whose score crossed one of its thresholds."""

    label: str
    score: float
    tier: str  # "review" or "act"
    threshold: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the policy for one message version. A pure function of its inputs."""

    action: Action
    reason: str  # machine-readable reason code, e.g. "over_act_threshold", "exempt_role"
    hits: tuple[LabelHit, ...] = ()
    thresholds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    model_version: str | None = None
    #: The action the policy wanted before platform capabilities degraded it, if it was degraded.
    degraded_from: Action | None = None
    strike: bool = False
    timeout_seconds: int = 0
    #: An operator alert to raise (e.g. missing message-content permission), not a member action.
    alert: str | None = None
    notify_member: bool = False
    alert_moderators: bool = False

    @property
    def category(self) -> str | None:
        if not self.hits:
            return None
        return max(self.hits, key=lambda h: h.score).label


@dataclass(frozen=True, slots=True)
class Case:
    """A stored decision with its identity, as moderators see it."""

    id: int
    key: MessageKey
    server_id: str
    author: Member
    text: str | None  # None once the retention window has passed
    decision: Decision
    scores: Mapping[str, float]
    decided_at: datetime
    status: str = "open"  # open | resolved
    verdict: Verdict | None = None
    channel_name: str = ""


@dataclass(frozen=True, slots=True)
class Override:
    case_id: int
    moderator: Member
    verdict: Verdict
    at: datetime
    note: str = ""
    previous_action: Action | None = None


@dataclass(frozen=True, slots=True)
class Appeal:
    id: int
    case_id: int
    member: Member
    text: str
    submitted_at: datetime
    status: AppealStatus = AppealStatus.SUBMITTED
    outcome: AppealOutcome | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Strike:
    platform: Platform
    server_id: str
    user_id: str
    at: datetime
    case_id: int | None = None
    reversed: bool = False


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str  # "system" or "platform:user_id"
    action: str  # e.g. "decision", "override", "appeal.submit", "policy.threshold"
    server_id: str
    subject: str  # case id, channel id, ...
    detail: Mapping[str, object] = field(default_factory=dict)
