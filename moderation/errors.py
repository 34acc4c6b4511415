"""Exceptions of the moderation core: one root, specific subclasses carrying their data."""

from __future__ import annotations


class ModerationError(Exception):
    """Root of every error raised by the moderation core."""


class ValidationError(ModerationError):
    """A configuration or input value is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ThresholdError(ValidationError):
    """A threshold is outside [0, 1] or ``act_at < review_at``."""


class RetryLater(ModerationError):
    """A transient failure: the caller should retry after ``after`` seconds (if known)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class ScoringError(ModerationError):
    """The scorer failed to produce scores."""


class ScoringTimeout(ScoringError, RetryLater):
    """No score arrived within the caller's deadline."""


class ScoringOverloaded(ScoringError, RetryLater):
    """The scoring queue is full: the bot degrades to hold-and-escalate."""


class NotFound(ModerationError):
    """A case, appeal or other record does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class PermissionDenied(ModerationError):
    """The acting member lacks the role an operation requires."""

    def __init__(self, required: str, actor: str) -> None:
        super().__init__(f"{actor} lacks role {required}")
        self.required = required
        self.actor = actor


class InvalidTransition(ModerationError):
    """An operation is not allowed in the record's current state (e.g. deciding a decided appeal)."""


class PlatformActionFailed(ModerationError):
    """A platform action (delete, timeout, repost…) failed; ``retryable`` says whether to retry."""

    def __init__(self, action: str, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(f"{action}: {message}")
        self.action = action
        self.retryable = retryable
        self.status = status
