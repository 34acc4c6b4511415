from __future__ import annotations

from datetime import UTC, datetime

import pytest

from moderation.domain import Member, MessageVersion, Platform
from moderation.filters import Skip, clip_for_scoring, prefilter, sanitize, strip_allow_terms
from moderation.policy import ServerPolicy

POLICY = ServerPolicy(
    "s", exempt_role_ids=frozenset({"r-staff"}), exempt_channel_ids=frozenset({"c-staff"})
).for_channel


def msg(
    text: str = "hello",
    *,
    user: str = "u1",
    bot: bool = False,
    roles: frozenset[str] = frozenset(),
    channel: str = "c1",
    missing: bool = False,
) -> MessageVersion:
    author = Member(Platform.DISCORD, user, "name", role_ids=roles, is_bot=bot)
    return MessageVersion(
        Platform.DISCORD,
        "s",
        channel,
        "m1",
        author,
        text,
        datetime(2026, 1, 1, tzinfo=UTC),
        content_missing=missing,
    )


@pytest.mark.parametrize(
    ("message", "skip", "alert"),
    [
        (msg("hello"), None, False),
        (msg("hello", user="me"), Skip.OWN_MESSAGE, False),
        (msg("hello", bot=True), Skip.BOT, False),
        (msg("hello", channel="c-staff"), Skip.EXEMPT_CHANNEL, False),
        (msg("hello", roles=frozenset({"r-staff", "r-x"})), Skip.EXEMPT_ROLE, False),
        (msg(""), Skip.EMPTY, False),
        (msg("   \n\t"), Skip.EMPTY, False),
        (msg("\x00\x00"), Skip.EMPTY, False),
        # empty because the platform withheld content: an alert, never a clean score
        (msg("", missing=True), Skip.CONTENT_MISSING, True),
    ],
)
def test_prefilter(message: MessageVersion, skip: Skip | None, alert: bool) -> None:
    result = prefilter(message, POLICY(message.channel_id), {"me"})
    assert result.skip == skip
    assert (result.alert is not None) == alert
    assert result.scored == (skip is None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("a\x00b", "ab"),
        ("keep\nnew\tlines", "keep\nnew\tlines"),
        ("bell\x07", "bell"),
        ("lone \udc80 surrogate", "lone \ufffd surrogate"),
    ],
)
def test_sanitize(raw: str, expected: str) -> None:
    assert sanitize(raw) == expected


@pytest.mark.parametrize(
    ("text", "terms", "expected"),
    [
        ("Kill the boss in Dark Souls", ["kill the boss"], "  in Dark Souls"),
        ("KILLSTREAK bonus", ["killstreak"], "  bonus"),
        ("skilled player", ["kill"], "skilled player"),  # whole words only
        ("no terms", [], "no terms"),
        ("a+b (c)", ["a+b"], "  (c)"),  # regex metacharacters are literal
    ],
)
def test_strip_allow_terms(text: str, terms: list[str], expected: str) -> None:
    assert strip_allow_terms(text, terms) == expected


def test_clip_for_scoring() -> None:
    assert clip_for_scoring("short") == ("short", False)
    text, clipped = clip_for_scoring("x" * 50_000)
    assert clipped and len(text) == 20_000
