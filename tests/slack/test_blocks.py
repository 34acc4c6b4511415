"""Block Kit payloads stay within Slack's limits (an oversized block is rejected as invalid_blocks)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.adapters.slack import blocks
from moderation.domain import Action, Case, Decision, LabelHit, Member, MessageKey, Platform, Verdict
from moderation.ports import Notice

LONG_TEXTS = {
    "many-short-lines": "\n".join(["a"] * 3000),
    "entities": "<&>" * 2000,
    "one-long-line": "idiot " * 800,
    "erased": None,
}


def _case(text: str | None) -> Case:
    decision = Decision(
        Action.HOLD,
        "over_review_threshold",
        hits=(LabelHit("insult", 0.88, "review", 0.8),),
        thresholds={"toxic": (0.8, 0.95), "insult": (0.8, 0.95)},
        model_version="minilm-2026-01",
        degraded_from=Action.DELETE,
    )
    return Case(
        id=7,
        key=MessageKey(Platform.SLACK, "C0GENERAL", "1.2", "ab" * 32),
        server_id="T0CHATMOD",
        author=Member(Platform.SLACK, "U0MEMBER"),
        text=text,
        decision=decision,
        scores={"toxic": 0.91, "insult": 0.88},
        decided_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _check_limits(payload: list[dict]) -> None:
    assert len(payload) <= 50
    for block in payload:
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
            for f in block.get("fields", []):
                assert len(f["text"]) <= 2000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25


@pytest.mark.parametrize("text", LONG_TEXTS.values(), ids=LONG_TEXTS.keys())
def test_payloads_within_limits(text):
    case = _case(text)
    evidence = {"insult": tuple(f"idiot{i}" for i in range(500))}
    for _, payload in (
        blocks.review_card(case, evidence=evidence),
        blocks.review_card(case, resolved=(Verdict.DELETE, "U0MOD"), can_remove=False, note="x"),
        blocks.notice(case, Notice(7, Action.HOLD, "insult", "r" * 200, text or ""), degraded=False),
        blocks.repost(case),
    ):
        _check_limits(payload)


def test_review_card_shows_what_moderators_need():
    _, payload = blocks.review_card(_case("you <!channel> idiot"), evidence={"insult": ("idiot",)})
    text = str(payload)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text  # quoted text cannot ping
    assert "minilm-2026-01" in text and "`hold` (wanted `delete`)" in text
    assert "insult         0.88  review ≥0.80 act ≥0.95  ◀ review" in text
    assert "`idiot` (insult)" in text


def test_clip_never_splits_an_entity():
    assert blocks.clip("ab&amp;cd", 5) == "ab…"
    assert blocks.clip("abcdef", 10) == "abcdef"
