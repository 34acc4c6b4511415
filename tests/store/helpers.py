"""Builders for store tests."""

from __future__ import annotations

from datetime import UTC, datetime

from moderation.domain import Action, Decision, LabelHit, Member, MessageVersion, Platform, Role, ScoreResult

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
P = Platform.DISCORD

ALICE = Member(
    P,
    "alice",
    "Alice",
    roles=frozenset({Role.MEMBER}),
    role_ids=frozenset({"r1", "r2"}),
    avatar_url="https://a/x.png",
)
BOB = Member(P, "bob", "Bob")
MOD = Member(P, "mod", "Mod", roles=frozenset({Role.MODERATOR}))


def msg(
    message_id: str = "m1",
    text: str = "you are awful",
    *,
    author: Member = ALICE,
    channel_id: str = "c1",
    server_id: str = "g1",
    platform: Platform = P,
    sent_at: datetime = T0,
) -> MessageVersion:
    return MessageVersion(
        platform=platform,
        server_id=server_id,
        channel_id=channel_id,
        message_id=message_id,
        author=author
        if author.platform is platform
        else Member(platform, author.user_id, author.display_name),
        text=text,
        sent_at=sent_at,
        channel_name="#general",
    )


def hold(label: str = "insult", score: float = 0.8700000000000001) -> Decision:
    return Decision(
        action=Action.HOLD,
        reason="over_review_threshold",
        hits=(LabelHit(label, score, "review", 0.8),),
        thresholds={"toxic": (0.8, 0.95), label: (0.8, 0.95)},
        model_version="minilm-v1",
        notify_member=True,
        alert_moderators=True,
    )


def delete(label: str = "toxic") -> Decision:
    return Decision(
        action=Action.DELETE,
        reason="over_act_threshold",
        hits=(LabelHit(label, 0.99, "act", 0.95), LabelHit("insult", 0.85, "review", 0.8)),
        thresholds={"toxic": (0.8, 0.95), "insult": (0.8, 0.95)},
        model_version="minilm-v1",
        degraded_from=Action.TIMEOUT,
        strike=True,
        notify_member=True,
        alert_moderators=True,
    )


ALLOW = Decision(
    Action.ALLOW, "under_thresholds", thresholds={"toxic": (0.8, 0.95)}, model_version="minilm-v1"
)


def scores(**over: float) -> ScoreResult:
    base = {
        "toxic": 0.1,
        "severe_toxic": 0.01,
        "obscene": 0.02,
        "threat": 0.003,
        "insult": 0.87,
        "identity_hate": 0.0,
    }
    base.update(over)
    return ScoreResult(base, "minilm-v1")
