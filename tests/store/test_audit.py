"""The hash-chained audit log: order, filters, verification and tamper detection."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import delete, select, update

from moderation.domain import AuditEntry
from moderation.store import SqlStore
from moderation.store.chain import GENESIS, personal_digest
from moderation.store.schema import audit_log
from tests.store.helpers import T0


def entry(i: int, server: str = "g1") -> AuditEntry:
    return AuditEntry(
        at=T0 + timedelta(seconds=i),
        actor="discord:mod" if i % 2 else "system",
        action="override" if i % 2 else "decision",
        server_id=server,
        subject=f"case:{i}",
        detail={"verdict": "restore", "n": i, "nested": {"labels": ["toxic", "insult"]}},
    )


async def fill(store: SqlStore, n: int = 6) -> list[AuditEntry]:
    entries = [entry(i, "g1" if i % 3 else "g2") for i in range(n)]
    for e in entries:
        await store.append(e)
    return entries


async def execute(store: SqlStore, stmt) -> None:
    assert store.engine is not None
    async with store.engine.begin() as conn:
        await conn.execute(stmt)


async def test_entries_round_trip_in_order_with_filters(sql_store: SqlStore) -> None:
    entries = await fill(sql_store)
    assert list(await sql_store.entries()) == entries
    assert list(await sql_store.entries(limit=2)) == entries[-2:]
    assert list(await sql_store.entries("g2")) == [e for e in entries if e.server_id == "g2"]


async def test_intact_chain_verifies(sql_store: SqlStore) -> None:
    empty = await sql_store.verify_chain()
    assert empty.ok and empty.checked == 0 and empty.head == GENESIS
    await fill(sql_store)
    result = await sql_store.verify_chain()
    assert result and result.checked == 6
    assert await sql_store.verify_chain(expected_head=result.head)
    await sql_store.append(entry(99))
    stale = await sql_store.verify_chain(expected_head=result.head)
    assert not stale and stale.reason == "head differs from the expected head"


async def test_edited_detail_is_detected(sql_store: SqlStore) -> None:
    await fill(sql_store)
    await execute(
        sql_store, update(audit_log).where(audit_log.c.id == 3).values(detail='{"verdict":"uphold"}')
    )
    result = await sql_store.verify_chain()
    assert not result and result.bad_id == 3 and result.checked == 2


async def test_edited_actor_with_recomputed_digest_is_detected(sql_store: SqlStore) -> None:
    await fill(sql_store)
    assert sql_store.engine is not None
    async with sql_store.engine.connect() as conn:
        row = (await conn.execute(select(audit_log).where(audit_log.c.id == 2))).mappings().one()
    forged = personal_digest("discord:someone-else", row["subject"], row["detail"])
    await execute(
        sql_store,
        update(audit_log)
        .where(audit_log.c.id == 2)
        .values(actor="discord:someone-else", personal_digest=forged),
    )
    result = await sql_store.verify_chain()
    assert not result and result.bad_id == 2 and "hash" in (result.reason or "")


async def test_deleted_row_is_detected(sql_store: SqlStore) -> None:
    await fill(sql_store)
    await execute(sql_store, delete(audit_log).where(audit_log.c.id == 4))
    result = await sql_store.verify_chain()
    assert not result and result.bad_id == 5 and "prev_hash" in (result.reason or "")


async def test_changed_timestamp_is_detected(sql_store: SqlStore) -> None:
    await fill(sql_store)
    await execute(sql_store, update(audit_log).where(audit_log.c.id == 1).values(at=T0 - timedelta(days=1)))
    result = await sql_store.verify_chain()
    assert not result and result.bad_id == 1


async def test_concurrent_appends_keep_one_chain(sql_store: SqlStore) -> None:
    await asyncio.gather(*(sql_store.append(entry(i)) for i in range(12)))
    result = await sql_store.verify_chain()
    assert result and result.checked == 12
    assert len(await sql_store.entries(limit=100)) == 12
