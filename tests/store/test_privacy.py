"""Text retention and per-member erasure."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from moderation.domain import AppealOutcome, AuditEntry, Member, Override, Platform, Strike, Verdict
from moderation.store import SqlStore
from moderation.store.schema import appeals, audit_log, message_versions, overrides
from tests.store.helpers import ALICE, BOB, MOD, T0, P, delete, hold, msg, scores


async def rows(store: SqlStore, table) -> list[dict]:
    assert store.engine is not None
    async with store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(table))).mappings()]


async def test_purge_nulls_only_text_older_than_the_window(sql_store: SqlStore) -> None:
    assert sql_store.retention == timedelta(days=30)
    old, _ = await sql_store.record_decision(msg("old", "old words"), scores(), hold(), T0)
    new, _ = await sql_store.record_decision(
        msg("new", "new words"), scores(), hold(), T0 + timedelta(days=20)
    )
    now = T0 + timedelta(days=30, seconds=1)
    assert await sql_store.purge_expired_text(now) == 1
    assert (await sql_store.get_case(old.id)).text is None
    assert (await sql_store.get_case(new.id)).text == "new words"
    assert await sql_store.purge_expired_text(now) == 0
    # Everything else about the old case survives; redelivery is still recognised by its hash.
    purged = await sql_store.get_case(old.id)
    assert purged.decision == old.decision and purged.key == old.key
    _, created = await sql_store.record_decision(msg("old", "old words"), scores(), hold(), now)
    assert not created
    assert await sql_store.purge_expired_text(T0 + timedelta(days=51)) == 1


async def test_purge_removes_decided_appeal_texts_after_the_window(sql_store: SqlStore) -> None:
    case, _ = await sql_store.record_decision(msg(), scores(), hold(), T0)
    decided = await sql_store.create_appeal(case.id, ALICE, "decided appeal", T0)
    await sql_store.decide_appeal(decided.id, AppealOutcome.DENIED, MOD, "no", T0 + timedelta(days=1))
    pending = await sql_store.create_appeal(case.id, ALICE, "pending appeal", T0)
    assert await sql_store.purge_expired_text(T0 + timedelta(days=32)) == 2  # the message and one appeal
    assert (await sql_store.get_appeal(decided.id)).text == ""
    assert (await sql_store.get_appeal(pending.id)).text == "pending appeal"
    assert (await sql_store.get_appeal(decided.id)).message == "no"


async def populate(store: SqlStore) -> dict[str, int]:
    ids: dict[str, int] = {}
    for i, day in enumerate([0, 0, 1, 2]):
        at = T0 + timedelta(days=day, hours=i)
        decision = delete("toxic") if i % 2 else hold("insult")
        case, _ = await store.record_decision(msg(f"a{i}", f"alice text {i}"), scores(), decision, at)
        ids[f"a{i}"] = case.id
        bob_case, _ = await store.record_decision(
            msg(f"b{i}", f"bob text {i}", author=BOB), scores(), decision, at
        )
        ids[f"b{i}"] = bob_case.id
    await store.add_strike(Strike(P, "g1", "alice", T0, ids["a1"]))
    await store.add_strike(Strike(P, "g1", "alice", T0 + timedelta(days=1), ids["a3"]))
    await store.add_strike(Strike(P, "g1", "bob", T0, ids["b1"]))
    appeal = await store.create_appeal(ids["a1"], ALICE, "my private reasons", T0)
    await store.decide_appeal(appeal.id, AppealOutcome.DENIED, MOD, "no", T0)
    await store.create_appeal(ids["b1"], BOB, "bob's appeal", T0)
    alice_mod = Member(P, "alice", "Alice")
    await store.record_override(Override(ids["b0"], alice_mod, Verdict.UPHOLD, T0))
    await store.append(
        AuditEntry(
            T0, "system", "decision", "g1", str(ids["a0"]), {"user_id": "alice", "text": "alice text 0"}
        )
    )
    await store.append(
        AuditEntry(T0, "discord:alice", "appeal.submit", "g1", str(ids["a1"]), {"appeal": appeal.id})
    )
    await store.append(AuditEntry(T0, "discord:mod", "strike.add", "g1", "alice", {"count": 2}))
    await store.append(
        AuditEntry(T0, "system", "decision", "g1", str(ids["b0"]), {"user_id": "bob", "text": "bob text 0"})
    )
    await store.append(AuditEntry(T0, "system", "note", "g1", "x", {"alice": "a key, not an id"}))
    return ids


async def test_erasure_removes_personal_data_and_keeps_aggregates(sql_store: SqlStore) -> None:
    ids = await populate(sql_store)
    counts_before = await sql_store.decision_counts()
    head_before = await sql_store.verify_chain()
    assert head_before

    report = await sql_store.delete_data_for_user(P, "alice")
    pseudonym = sql_store.pseudonym(P, "alice")
    assert report.pseudonym == pseudonym and pseudonym.startswith("erased:") and "alice" not in pseudonym
    assert (report.messages, report.cases, report.appeals, report.strikes, report.overrides) == (
        4,
        4,
        1,
        2,
        1,
    )
    assert report.audit_entries == 3

    # Aggregates are untouched.
    assert await sql_store.decision_counts() == counts_before
    assert sum(counts_before.values()) == 8

    # Alice's texts and ids are gone everywhere.
    for key in ("a0", "a1", "a2", "a3"):
        case = await sql_store.get_case(ids[key])
        assert case.text is None and case.author.user_id == pseudonym and case.author.display_name == ""
        assert case.author.avatar_url is None and case.author.role_ids == frozenset()
    assert await sql_store.list_cases(P, user_id="alice") == []
    assert len(await sql_store.list_cases(P, user_id=pseudonym)) == 4
    assert await sql_store.strikes_for(P, "g1", "alice") == []
    assert len(await sql_store.strikes_for(P, "g1", pseudonym)) == 2
    dump = json.dumps(
        [await rows(sql_store, t) for t in (message_versions, appeals, overrides, audit_log)], default=str
    )
    assert '"alice"' not in dump and "discord:alice" not in dump
    assert "alice text" not in dump and "my private reasons" not in dump
    assert "a key, not an id" in dump  # a key named like the id is not personal data

    # Bob is untouched.
    bob = await sql_store.get_case(ids["b0"])
    assert bob.text == "bob text 0" and bob.author == BOB
    assert len(await sql_store.strikes_for(P, "g1", "bob")) == 1
    assert [a.text for a in await sql_store.list_appeals(status="submitted")] == ["bob's appeal"]

    # The audit chain still verifies, with the same head.
    after = await sql_store.verify_chain()
    assert after and after.head == head_before.head
    entries = list(await sql_store.entries())
    assert entries[0].detail == {"user_id": pseudonym, "text": None}
    assert entries[1].actor == pseudonym and entries[2].subject == pseudonym
    assert entries[3].detail == {"user_id": "bob", "text": "bob text 0"}


async def test_erasure_is_idempotent_and_scoped_to_the_platform(sql_store: SqlStore) -> None:
    await populate(sql_store)
    slack_case, _ = await sql_store.record_decision(
        msg("s1", "slack alice", platform=Platform.SLACK), scores(), hold(), T0
    )
    await sql_store.delete_data_for_user(P, "alice")
    again = await sql_store.delete_data_for_user(P, "alice")
    assert (
        again.messages,
        again.cases,
        again.appeals,
        again.strikes,
        again.overrides,
        again.audit_entries,
    ) == (0,) * 6
    assert (await sql_store.get_case(slack_case.id)).text == "slack alice"
    assert await sql_store.verify_chain()


async def test_tampering_with_an_erased_row_is_still_detected(sql_store: SqlStore) -> None:
    from sqlalchemy import update

    await populate(sql_store)
    await sql_store.delete_data_for_user(P, "alice")
    assert sql_store.engine is not None
    async with sql_store.engine.begin() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.id == 1).values(personal_digest="0" * 64))
    result = await sql_store.verify_chain()
    assert not result and result.bad_id == 1
