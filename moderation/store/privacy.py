"""Text retention and per-member erasure.

Erasure replaces a member's ids with a salted pseudonym (stable within one salt, so strike counts
and "cases of this member" still group correctly, but not reversible without the salt) and
removes their texts, names and avatar. Case rows stay, with their label, action and time, so
decision counts per label/action/day are unchanged. Audit rows that mention the member get their
personal fields pseudonymised and are marked erased; the chain stays verifiable (see chain.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from moderation.domain import Platform
from moderation.store._base import SqlBase, rowcount
from moderation.store.chain import canonical_json
from moderation.store.schema import appeals, audit_log, cases, message_versions, overrides, strikes

#: Keys in audit details whose values are treated as a member's personal content.
PERSONAL_DETAIL_KEYS = frozenset({"text", "display_name", "author_name", "user_name", "avatar_url"})


@dataclass(frozen=True, slots=True)
class ErasureReport:
    pseudonym: str
    messages: int
    cases: int
    appeals: int
    strikes: int
    overrides: int
    audit_entries: int


def _scrub(value: Any, ids: frozenset[str], pseudonym: str) -> Any:
    if isinstance(value, str):
        return pseudonym if value in ids else value
    if isinstance(value, list):
        return [_scrub(v, ids, pseudonym) for v in value]
    if isinstance(value, dict):
        return {
            k: (None if k in PERSONAL_DETAIL_KEYS else _scrub(v, ids, pseudonym)) for k, v in value.items()
        }
    return value


def _mentions(value: Any, ids: frozenset[str]) -> bool:
    if isinstance(value, str):
        return value in ids
    if isinstance(value, list):
        return any(_mentions(v, ids) for v in value)
    if isinstance(value, dict):
        return any(_mentions(v, ids) for v in value.values())
    return False


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class PrivacyMixin(SqlBase):
    _erasure_salt: bytes

    def pseudonym(self, platform: Platform, user_id: str) -> str:
        """The id that replaces ``user_id`` after erasure."""
        mac = hmac.new(self._erasure_salt, f"{platform.value}:{user_id}".encode(), hashlib.sha256)
        return "erased:" + mac.hexdigest()[:32]

    async def purge_expired_text(self, now: datetime) -> int:
        """Null texts older than ``now - retention``; returns how many rows were purged.

        Message texts go once received before the cutoff; an appeal's text once it was decided
        before the cutoff (an open appeal keeps its text until a moderator has read it).
        """
        cutoff = now - self.retention
        async with self._write() as s:
            messages = await s.execute(
                update(message_versions)
                .where(message_versions.c.text.is_not(None), message_versions.c.received_at < cutoff)
                .values(text=None, text_purged_at=now)
            )
            appeal_texts = await s.execute(
                update(appeals)
                .where(appeals.c.text.is_not(None), appeals.c.decided_at < cutoff)
                .values(text=None)
            )
            return rowcount(messages) + rowcount(appeal_texts)

    async def delete_data_for_user(self, platform: Platform, user_id: str) -> ErasureReport:
        """Erase one member's texts and personal ids everywhere, keeping aggregate counts."""
        pseud = self.pseudonym(platform, user_id)
        qualified = f"{platform.value}:{user_id}"
        now = self._clock()
        mv = message_versions
        async with self._write() as s:
            n_msgs = rowcount(
                await s.execute(
                    update(mv)
                    .where(mv.c.platform == platform.value, mv.c.author_id == user_id)
                    .values(
                        author_id=pseud,
                        author_name="",
                        author_avatar_url=None,
                        author_role_ids=[],
                        text=None,
                        text_purged_at=now,
                    )
                )
            )
            n_cases = rowcount(
                await s.execute(
                    update(cases)
                    .where(cases.c.platform == platform.value, cases.c.user_id == user_id)
                    .values(user_id=pseud)
                )
            )
            n_appeals = rowcount(
                await s.execute(
                    update(appeals)
                    .where(appeals.c.platform == platform.value, appeals.c.user_id == user_id)
                    .values(user_id=pseud, user_name="", text=None)
                )
            )
            await s.execute(update(appeals).where(appeals.c.decided_by == qualified).values(decided_by=pseud))
            n_strikes = rowcount(
                await s.execute(
                    update(strikes)
                    .where(strikes.c.platform == platform.value, strikes.c.user_id == user_id)
                    .values(user_id=pseud)
                )
            )
            n_overrides = rowcount(
                await s.execute(
                    update(overrides)
                    .where(
                        overrides.c.moderator_platform == platform.value, overrides.c.moderator_id == user_id
                    )
                    .values(moderator_id=pseud, moderator_name="")
                )
            )
            n_audit = await self._erase_audit(s, frozenset({user_id, qualified}), pseud)
        return ErasureReport(pseud, n_msgs, n_cases, n_appeals, n_strikes, n_overrides, n_audit)

    async def _erase_audit(self, s: Any, ids: frozenset[str], pseud: str) -> int:
        """Pseudonymise audit rows naming the member (as actor, subject, or a string in the detail)."""
        al = audit_log
        patterns = [f"%{_like_escape(canonical_json(i))}%" for i in ids]
        candidates = (
            await s.execute(
                select(al.c.id, al.c.actor, al.c.subject, al.c.detail).where(
                    or_(
                        al.c.actor.in_(sorted(ids)),
                        al.c.subject.in_(sorted(ids)),
                        *(al.c.detail.like(p, escape="\\") for p in patterns),
                    )
                )
            )
        ).all()
        erased = 0
        for row in candidates:
            detail = json.loads(row.detail) if row.detail else {}
            if not (row.actor in ids or row.subject in ids or _mentions(detail, ids)):
                continue  # the LIKE matched the id as a key, not as a value
            scrubbed = _scrub(detail, ids, pseud)
            actor = pseud if row.actor in ids else row.actor
            subject = pseud if row.subject in ids else row.subject
            await s.execute(
                update(al)
                .where(al.c.id == row.id)
                .values(actor=actor, subject=subject, detail=canonical_json(scrubbed), erased=True)
            )
            erased += 1
        return erased
