"""The append-only, hash-chained audit log over SQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from moderation.domain import AuditEntry
from moderation.errors import RetryLater
from moderation.store._base import SqlBase, clean_text
from moderation.store.chain import (
    GENESIS,
    ChainVerification,
    canonical_json,
    personal_digest,
    row_hash,
    verify_rows,
)
from moderation.store.schema import audit_log

_APPEND_ATTEMPTS = 20
#: Advisory lock key serialising audit appends on Postgres (any constant unique to this use).
_PG_AUDIT_LOCK = 0x63686D_0A0D17


class AuditMixin(SqlBase):
    async def append(self, entry: AuditEntry) -> None:
        """Append an entry, chained to the current head.

        Appends are serialised: SQLite by its write lock (BEGIN IMMEDIATE), Postgres by a
        transaction-scoped advisory lock. ``prev_hash`` is unique as well, so should two writers
        still race for the same head (another writer not taking the lock), one insert fails and is
        retried on the new head; the chain never forks.
        """
        actor = clean_text(entry.actor)
        subject = clean_text(entry.subject)
        detail = canonical_json(dict(entry.detail))
        digest = personal_digest(actor, subject, detail)
        for attempt in range(_APPEND_ATTEMPTS):
            try:
                async with self._write() as s:
                    if s.get_bind().dialect.name == "postgresql":
                        await s.execute(select(func.pg_advisory_xact_lock(_PG_AUDIT_LOCK)))
                    tip = (
                        await s.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1))
                    ).scalar_one_or_none() or GENESIS
                    await s.execute(
                        insert(audit_log).values(
                            at=entry.at,
                            action=entry.action,
                            server_id=entry.server_id,
                            actor=actor,
                            subject=subject,
                            detail=detail,
                            personal_digest=digest,
                            erased=False,
                            prev_hash=tip,
                            hash=row_hash(tip, entry.at, entry.action, entry.server_id, digest),
                        )
                    )
                return
            except IntegrityError:
                await asyncio.sleep(0.001 * (attempt + 1))
        raise RetryLater("audit log head kept moving; append not stored", after=0.1)

    async def entries(self, server_id: str | None = None, limit: int = 100) -> Sequence[AuditEntry]:
        """The latest ``limit`` entries, oldest first. Erased rows show pseudonymised personal fields."""
        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if server_id is not None:
            stmt = stmt.where(audit_log.c.server_id == server_id)
        async with self._read() as s:
            rows = list(reversed((await s.execute(stmt)).mappings().all()))
        return [
            AuditEntry(
                at=r["at"],
                actor=r["actor"] or "",
                action=r["action"],
                server_id=r["server_id"],
                subject=r["subject"] or "",
                detail=json.loads(r["detail"]) if r["detail"] else {},
            )
            for r in rows
        ]

    async def verify_chain(self, expected_head: str | None = None) -> ChainVerification:
        """Recompute the whole chain; falsy result with ``bad_id``/``reason`` if it was tampered with."""
        async with self._read() as s:
            rows = (await s.execute(select(audit_log).order_by(audit_log.c.id))).mappings().all()
        return verify_rows(rows, expected_head)
