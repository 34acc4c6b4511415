"""CaseStore contract on the SQL store: decisions, idempotency, queries, overrides, actions."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from moderation.domain import (
    Action,
    Member,
    MessageKey,
    Override,
    Platform,
    ScoreResult,
    Verdict,
    content_hash,
)
from moderation.errors import NotFound
from moderation.store import SqlStore
from tests.store.helpers import ALICE, ALLOW, BOB, MOD, T0, P, delete, hold, msg, scores


async def test_record_decision_round_trips_the_case(sql_store: SqlStore) -> None:
    m = msg()
    decision = delete()
    case, created = await sql_store.record_decision(m, scores(toxic=0.99), decision, T0)
    assert created
    assert case.key == m.key
    assert case.server_id == "g1"
    assert case.author == ALICE
    assert case.text == m.text
    assert case.decision == decision
    assert case.scores == dict(scores(toxic=0.99).scores)
    assert case.decided_at == T0 and case.decided_at.tzinfo is not None
    assert case.status == "open" and case.verdict is None
    assert case.channel_name == "#general"
    assert await sql_store.get_case(case.id) == case
    assert await sql_store.get_case_by_key(m.key) == case


async def test_redelivery_returns_the_existing_case(sql_store: SqlStore) -> None:
    m = msg()
    first, created = await sql_store.record_decision(m, scores(), hold(), T0)
    again, created_again = await sql_store.record_decision(
        m, scores(insult=0.1), ALLOW, T0 + timedelta(seconds=5)
    )
    assert created and not created_again
    assert again == first
    assert len(await sql_store.list_cases()) == 1


async def test_concurrent_duplicates_yield_one_case(sql_store: SqlStore) -> None:
    m = msg("race")
    results = await asyncio.gather(*(sql_store.record_decision(m, scores(), hold(), T0) for _ in range(8)))
    assert sum(created for _, created in results) == 1
    assert len({case.id for case, _ in results}) == 1
    assert len(await sql_store.list_cases()) == 1


async def test_allowed_messages_do_not_enter_the_review_queue(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(insult=0.1), ALLOW, T0)
    assert case.status == "closed"
    assert await sql_store.list_cases(status="open") == []


async def test_decision_without_scores(sql_store: SqlStore) -> None:
    decision = replace(hold(), reason="scoring_overloaded", hits=(), alert="queue full")
    case, _ = await sql_store.record_decision(msg(), None, decision, T0)
    assert case.scores == {}
    assert case.decision == decision
    assert case.decision.model_version == "minilm-v1"


async def test_model_version_falls_back_to_the_score_result(sql_store: SqlStore) -> None:
    decision = replace(hold(), model_version=None)
    case, _ = await sql_store.record_decision(msg(), ScoreResult({"insult": 0.9}, "v7"), decision, T0)
    assert case.decision.model_version == "v7"


async def test_edits_are_new_versions_listed_oldest_first(sql_store: SqlStore) -> None:
    later, _ = await sql_store.record_decision(
        msg("m1", "edited text"), scores(), hold(), T0 + timedelta(minutes=2)
    )
    first, _ = await sql_store.record_decision(msg("m1", "original"), scores(), hold(), T0)
    third, _ = await sql_store.record_decision(msg("m1", "third"), scores(), ALLOW, T0 + timedelta(minutes=5))
    await sql_store.record_decision(msg("m2", "original"), scores(), hold(), T0)  # another message
    await sql_store.record_decision(msg("m1", "original", channel_id="c2"), scores(), hold(), T0)
    versions = await sql_store.cases_for_message(P, "c1", "m1")
    assert [c.id for c in versions] == [first.id, later.id, third.id]
    assert [c.text for c in versions] == ["original", "edited text", "third"]


async def test_list_cases_filters_and_orders_newest_first(sql_store: SqlStore) -> None:
    a1, _ = await sql_store.record_decision(msg("1"), scores(), hold(), T0)
    b1, _ = await sql_store.record_decision(msg("2", author=BOB), scores(), hold(), T0)
    a2, _ = await sql_store.record_decision(msg("3", server_id="g2"), scores(), delete(), T0)
    a3, _ = await sql_store.record_decision(msg("4", platform=Platform.SLACK), scores(), hold(), T0)
    await sql_store.record_decision(msg("5"), scores(), ALLOW, T0)
    await sql_store.resolve_case(a1.id, Verdict.UPHOLD)

    def ids(cases):
        return [c.id for c in cases]

    assert len(await sql_store.list_cases()) == 5
    assert ids(await sql_store.list_cases(limit=2)) == [5, a3.id]
    assert ids(await sql_store.list_cases(Platform.SLACK)) == [a3.id]
    assert ids(await sql_store.list_cases(P, "g1", status="open")) == [b1.id]
    assert ids(await sql_store.list_cases(server_id="g2")) == [a2.id]
    assert ids(await sql_store.list_cases(P, user_id="alice")) == [5, a2.id, a1.id]
    assert ids(await sql_store.list_cases(status="resolved")) == [a1.id]


async def test_missing_cases_raise_not_found(sql_store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await sql_store.get_case(999)
    with pytest.raises(NotFound):
        await sql_store.resolve_case(999, Verdict.RESTORE)
    assert await sql_store.get_case_by_key(MessageKey(P, "c1", "nope", content_hash("x"))) is None
    with pytest.raises(NotFound):
        await sql_store.record_override(Override(999, MOD, Verdict.RESTORE, T0))


async def test_resolve_case_records_the_verdict(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(), hold(), T0)
    resolved = await sql_store.resolve_case(case.id, Verdict.RESTORE)
    assert (resolved.status, resolved.verdict) == ("resolved", Verdict.RESTORE)
    assert await sql_store.get_case(case.id) == resolved


async def test_overrides_are_stored_and_become_labelled_examples(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(), hold(), T0)
    other, _ = await sql_store.record_decision(msg("m2", "fine words"), scores(), hold(), T0)
    first = Override(
        case.id, MOD, Verdict.UPHOLD, T0 + timedelta(minutes=1), note="rude", previous_action=Action.HOLD
    )
    second = Override(case.id, MOD, Verdict.RESTORE, T0 + timedelta(minutes=3), note="on reflection")
    await sql_store.record_override(first)
    await sql_store.record_override(Override(other.id, MOD, Verdict.DISMISS, T0 + timedelta(minutes=2)))
    await sql_store.record_override(second)
    assert await sql_store.list_overrides(case.id) == [first, second]
    assert len(await sql_store.list_overrides(since=T0 + timedelta(minutes=2))) == 2
    examples = await sql_store.labelled_examples()
    assert [(e.case_id, e.text, e.verdict) for e in examples] == [
        (other.id, "fine words", Verdict.DISMISS),
        (case.id, "you are awful", Verdict.RESTORE),
    ]
    assert examples[1].category == "insult"


async def test_mark_action_applies_at_most_once(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(), delete(), T0)
    assert await sql_store.mark_action(case.id, "delete") is True
    assert await sql_store.mark_action(case.id, "delete") is False
    assert await sql_store.mark_action(case.id, "notify") is True
    assert await sql_store.applied_actions_for(case.id) == ["delete", "notify"]
    with pytest.raises(NotFound):
        await sql_store.mark_action(12345, "delete")


async def test_unmark_action_forgets_a_failed_action_only(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(), delete(), T0)
    assert await sql_store.mark_action(case.id, "delete") and await sql_store.mark_action(case.id, "notify")
    await sql_store.unmark_action(case.id, "delete")
    assert await sql_store.applied_actions_for(case.id) == ["notify"]
    assert await sql_store.mark_action(case.id, "delete") is True  # a later attempt may apply it
    await sql_store.unmark_action(case.id, "timeout")  # never marked: nothing to forget, no error
    assert await sql_store.applied_actions_for(case.id) == ["notify", "delete"]


async def test_concurrent_mark_action_has_one_winner(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(), delete(), T0)
    results = await asyncio.gather(*(sql_store.mark_action(case.id, "timeout") for _ in range(8)))
    assert results.count(True) == 1


async def test_mark_action_survives_a_restart(sql_store: SqlStore) -> None:
    """A second store on the same database (a restarted bot) sees the applied action."""
    from moderation.store import open_store

    case, _ = await sql_store.record_decision(msg(), scores(), delete(), T0)
    assert await sql_store.mark_action(case.id, "delete")
    assert sql_store.engine is not None
    async with open_store(sql_store.engine.url) as restarted:
        assert await restarted.mark_action(case.id, "delete") is False
        assert await restarted.get_case(case.id) == case


async def test_datetimes_are_utc_on_read(sql_store: SqlStore) -> None:
    from datetime import timezone

    plus2 = T0.astimezone(timezone(timedelta(hours=2)))
    case, _ = await sql_store.record_decision(msg(), scores(), hold(), plus2)
    stored = await sql_store.get_case(case.id)
    assert stored.decided_at == T0 and stored.decided_at.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_rejected(sql_store: SqlStore) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        await sql_store.record_decision(msg(), scores(), hold(), datetime(2026, 1, 1))
    assert await sql_store.list_cases() == []


@pytest.mark.parametrize("text", ["nul\x00byte", "lone \udcff surrogate", "zalgo z̷̧̛a̶l̴g̵o̸ \u202etxet", ""])
async def test_unstorable_text_is_repaired_but_keeps_its_key(sql_store: SqlStore, text: str) -> None:
    m = msg(text=text)
    case, created = await sql_store.record_decision(m, scores(), hold(), T0)
    assert created
    assert case.key == m.key and case.key.content_hash == content_hash(text)
    assert "\x00" not in (case.text or "")
    case.text.encode("utf-8")  # storable and printable
    _, again = await sql_store.record_decision(m, scores(), hold(), T0)
    assert not again


async def test_member_fields_round_trip(sql_store: SqlStore) -> None:
    bot = Member(P, "b1", "Helper Bot", is_bot=True, role_ids=frozenset({"x"}))
    case, _ = await sql_store.record_decision(msg(author=bot), scores(), hold(), T0.astimezone(UTC))
    assert case.author == bot
