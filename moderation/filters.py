"""Pre-scoring filters and text hygiene: which messages are scored at all, and in what form."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from moderation.domain import MessageVersion
from moderation.policy import EffectivePolicy

#: Discord's limit for a message (Nitro). Longer texts are still scored, in windows, but logged.
MAX_MESSAGE_CHARS = 4000
#: Hard cap on what is sent to the scorer: beyond this a text is cut (and the decision says so).
MAX_SCORED_CHARS = 20_000


class Skip(StrEnum):
    OWN_MESSAGE = "own_message"
    BOT = "bot_author"
    EXEMPT_CHANNEL = "exempt_channel"
    EXEMPT_ROLE = "exempt_role"
    EMPTY = "empty_text"
    CONTENT_MISSING = "content_missing"


@dataclass(frozen=True, slots=True)
class FilterResult:
    skip: Skip | None
    #: An operator alert (not a member action): e.g. the bot cannot read message content.
    alert: str | None = None

    @property
    def scored(self) -> bool:
        return self.skip is None


SCORE = FilterResult(None)


def prefilter(msg: MessageVersion, policy: EffectivePolicy, own_user_ids: Collection[str]) -> FilterResult:
    """Decide whether ``msg`` is scored. Pure.

    An empty text because the platform withheld content (missing permission/intent) is an alert,
    never a clean score.
    """
    if msg.author.user_id in own_user_ids:
        return FilterResult(Skip.OWN_MESSAGE)
    if msg.author.is_bot:
        return FilterResult(Skip.BOT)
    if policy.channel_exempt:
        return FilterResult(Skip.EXEMPT_CHANNEL)
    if policy.exempt_role_ids and msg.author.role_ids & policy.exempt_role_ids:
        return FilterResult(Skip.EXEMPT_ROLE)
    if msg.content_missing:
        return FilterResult(
            Skip.CONTENT_MISSING,
            alert=(
                "chatmod cannot read message content in this server (missing message-content "
                "permission/intent): messages are not being moderated"
            ),
        )
    if not sanitize(msg.text).strip():
        return FilterResult(Skip.EMPTY)
    return SCORE


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def sanitize(text: str) -> str:
    """Remove NUL/control characters and lone surrogates (from invalid UTF-8 decoded with
    ``surrogateescape``) so the text can be stored and scored. Newlines and tabs are kept."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def strip_allow_terms(text: str, terms: Iterable[str]) -> str:
    """Remove allow-listed terms (case-insensitive, whole words) before scoring.

    Communities allow-list words the model over-flags in their context (a game's name, a slang term).
    """
    out = text
    for term in terms:
        term = term.strip()
        if term:
            out = re.sub(rf"(?<!\w){re.escape(term)}(?!\w)", " ", out, flags=re.IGNORECASE)
    return out


def clip_for_scoring(text: str) -> tuple[str, bool]:
    """Cap extremely long texts; returns (text, clipped)."""
    if len(text) <= MAX_SCORED_CHARS:
        return text, False
    return text[:MAX_SCORED_CHARS], True
