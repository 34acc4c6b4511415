"""Strikes and appeals on the SQL store."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from moderation.domain import AppealOutcome, AppealStatus, Platform, Strike
from moderation.errors import InvalidTransition, NotFound
from moderation.policy import live_strike_count
from moderation.store import SqlStore
from tests.store.helpers import ALICE, BOB, MOD, T0, P, delete, hold, msg, scores


async def test_strikes_add_list_and_reverse(sql_store: SqlStore) -> None:
    c1, _ = await sql_store.record_decision(msg("1"), scores(), delete(), T0)
    c2, _ = await sql_store.record_decision(msg("2"), scores(), delete(), T0)
    await sql_store.add_strike(Strike(P, "g1", "alice", T0 + timedelta(days=2), c2.id))
    await sql_store.add_strike(Strike(P, "g1", "alice", T0, c1.id))
    await sql_store.add_strike(Strike(P, "g1", "alice", T0 + timedelta(days=1), None))
    await sql_store.add_strike(Strike(P, "g2", "alice", T0, None))  # another server
    await sql_store.add_strike(Strike(P, "g1", "bob", T0, None))

    strikes = await sql_store.strikes_for(P, "g1", "alice")
    assert [s.at for s in strikes] == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert strikes[0] == Strike(P, "g1", "alice", T0, c1.id, False)
    assert live_strike_count(strikes, T0 + timedelta(days=3), timedelta(days=30)) == 3

    assert await sql_store.reverse_strikes(c1.id) == 1
    assert await sql_store.reverse_strikes(c1.id) == 0
    strikes = await sql_store.strikes_for(P, "g1", "alice")
    assert [s.reversed for s in strikes] == [True, False, False]
    assert live_strike_count(strikes, T0 + timedelta(days=3), timedelta(days=30)) == 2
    assert await sql_store.strikes_for(Platform.SLACK, "g1", "alice") == []


async def test_strike_for_missing_case_is_rejected(sql_store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await sql_store.add_strike(Strike(P, "g1", "alice", T0, 4242))


async def test_appeal_lifecycle(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(), hold(), T0)
    appeal = await sql_store.create_appeal(case.id, ALICE, "I was quoting someone", T0 + timedelta(minutes=1))
    assert appeal.status is AppealStatus.SUBMITTED and appeal.outcome is None
    assert appeal.member.user_id == "alice" and appeal.text == "I was quoting someone"
    assert await sql_store.get_appeal(appeal.id) == appeal

    decided = await sql_store.decide_appeal(
        appeal.id, AppealOutcome.GRANTED, MOD, "Restored, sorry.", T0 + timedelta(hours=1)
    )
    assert decided.status is AppealStatus.DECIDED and decided.outcome is AppealOutcome.GRANTED
    assert decided.decided_by == "discord:mod" and decided.decided_at == T0 + timedelta(hours=1)
    assert decided.message == "Restored, sorry."
    assert await sql_store.get_appeal(appeal.id) == decided

    with pytest.raises(InvalidTransition):
        await sql_store.decide_appeal(appeal.id, AppealOutcome.DENIED, MOD, "no", T0 + timedelta(hours=2))
    assert (await sql_store.get_appeal(appeal.id)).outcome is AppealOutcome.GRANTED


async def test_concurrent_decisions_on_one_appeal_have_one_winner(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(), hold(), T0)
    appeal = await sql_store.create_appeal(case.id, ALICE, "please", T0)
    outcomes = [AppealOutcome.GRANTED, AppealOutcome.DENIED] * 3
    results = await asyncio.gather(
        *(sql_store.decide_appeal(appeal.id, o, MOD, "", T0) for o in outcomes), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, InvalidTransition) for r in results if isinstance(r, BaseException))
    assert (await sql_store.get_appeal(appeal.id)).outcome is winners[0].outcome


async def test_list_appeals_filters(sql_store: SqlStore) -> None:
    c1, _ = await sql_store.record_decision(msg("1"), scores(), hold(), T0)
    c2, _ = await sql_store.record_decision(msg("2", server_id="g2", author=BOB), scores(), hold(), T0)
    c3, _ = await sql_store.record_decision(msg("3", platform=Platform.SLACK), scores(), hold(), T0)
    a1 = await sql_store.create_appeal(c1.id, ALICE, "a", T0)
    a2 = await sql_store.create_appeal(c2.id, BOB, "b", T0)
    a3 = await sql_store.create_appeal(c3.id, c3.author, "c", T0)
    await sql_store.decide_appeal(a2.id, AppealOutcome.DENIED, MOD, "no", T0)

    def ids(appeals):
        return [a.id for a in appeals]

    assert ids(await sql_store.list_appeals()) == [a1.id, a2.id, a3.id]
    assert ids(await sql_store.list_appeals(P)) == [a1.id, a2.id]
    assert ids(await sql_store.list_appeals(P, "g1")) == [a1.id]
    assert ids(await sql_store.list_appeals(status="submitted")) == [a1.id, a3.id]
    assert ids(await sql_store.list_appeals(status="decided")) == [a2.id]


async def test_appeal_errors(sql_store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await sql_store.create_appeal(777, ALICE, "x", T0)
    with pytest.raises(NotFound):
        await sql_store.get_appeal(777)
    with pytest.raises(NotFound):
        await sql_store.decide_appeal(777, AppealOutcome.DENIED, MOD, "", T0)
