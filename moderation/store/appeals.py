"""Strikes and appeals over SQL."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from moderation.domain import Appeal, AppealOutcome, AppealStatus, Member, Platform, Strike
from moderation.errors import InvalidTransition, NotFound
from moderation.store._base import SqlBase, clean_text, new_id, rowcount
from moderation.store.schema import appeals, cases, strikes


def _appeal_from_row(r: Mapping[Any, Any]) -> Appeal:
    return Appeal(
        id=r["id"],
        case_id=r["case_id"],
        member=Member(Platform(r["platform"]), r["user_id"], r["user_name"]),
        text=r["text"] or "",
        submitted_at=r["submitted_at"],
        status=AppealStatus(r["status"]),
        outcome=AppealOutcome(r["outcome"]) if r["outcome"] else None,
        decided_by=r["decided_by"],
        decided_at=r["decided_at"],
        message=r["message"],
    )


class AppealMixin(SqlBase):
    async def add_strike(self, strike: Strike) -> None:
        try:
            async with self._write() as s:
                await s.execute(
                    insert(strikes).values(
                        platform=strike.platform.value,
                        server_id=strike.server_id,
                        user_id=strike.user_id,
                        at=strike.at,
                        case_id=strike.case_id,
                        reversed=strike.reversed,
                    )
                )
        except IntegrityError as exc:
            raise NotFound("case", strike.case_id) from exc

    async def strikes_for(self, platform: Platform, server_id: str, user_id: str) -> list[Strike]:
        """All of a member's strikes in a server, reversed ones included, oldest first."""
        stmt = (
            select(strikes)
            .where(
                strikes.c.platform == platform.value,
                strikes.c.server_id == server_id,
                strikes.c.user_id == user_id,
            )
            .order_by(strikes.c.at, strikes.c.id)
        )
        async with self._read() as s:
            rows = (await s.execute(stmt)).mappings().all()
        return [
            Strike(
                Platform(r["platform"]),
                r["server_id"],
                r["user_id"],
                r["at"],
                r["case_id"],
                bool(r["reversed"]),
            )
            for r in rows
        ]

    async def reverse_strikes(self, case_id: int) -> int:
        """Reverse the live strikes a case caused; returns how many were reversed."""
        async with self._write() as s:
            res = await s.execute(
                update(strikes)
                .where(strikes.c.case_id == case_id, strikes.c.reversed.is_(False))
                .values(reversed=True, reversed_at=self._clock())
            )
            return rowcount(res)

    async def create_appeal(self, case_id: int, member: Member, text: str, now: datetime) -> Appeal:
        try:
            async with self._write() as s:
                res = await s.execute(
                    insert(appeals).values(
                        case_id=case_id,
                        platform=member.platform.value,
                        user_id=member.user_id,
                        user_name=clean_text(member.display_name),
                        text=clean_text(text),
                        submitted_at=now,
                        status=AppealStatus.SUBMITTED.value,
                        message="",
                    )
                )
                appeal_id = new_id(res)
        except IntegrityError as exc:
            raise NotFound("case", case_id) from exc
        return await self.get_appeal(appeal_id)

    async def get_appeal(self, appeal_id: int) -> Appeal:
        async with self._read() as s:
            row = (await s.execute(select(appeals).where(appeals.c.id == appeal_id))).mappings().one_or_none()
        if row is None:
            raise NotFound("appeal", appeal_id)
        return _appeal_from_row(row)

    async def list_appeals(
        self, platform: Platform | None = None, server_id: str | None = None, *, status: str | None = None
    ) -> list[Appeal]:
        """Matching appeals, oldest first (a queue)."""
        stmt = select(appeals).join(cases, appeals.c.case_id == cases.c.id).order_by(appeals.c.id)
        if platform is not None:
            stmt = stmt.where(cases.c.platform == platform.value)
        if server_id is not None:
            stmt = stmt.where(cases.c.server_id == server_id)
        if status is not None:
            stmt = stmt.where(appeals.c.status == status)
        async with self._read() as s:
            return [_appeal_from_row(r) for r in (await s.execute(stmt)).mappings()]

    async def decide_appeal(
        self, appeal_id: int, outcome: AppealOutcome, moderator: Member, message: str, now: datetime
    ) -> Appeal:
        """Decide a submitted appeal. Raises InvalidTransition if it was already decided.

        The update is conditional on the status, so of two moderators deciding at once exactly one wins.
        """
        async with self._write() as s:
            res = await s.execute(
                update(appeals)
                .where(appeals.c.id == appeal_id, appeals.c.status == AppealStatus.SUBMITTED.value)
                .values(
                    status=AppealStatus.DECIDED.value,
                    outcome=outcome.value,
                    decided_by=f"{moderator.platform.value}:{moderator.user_id}",
                    decided_at=now,
                    message=clean_text(message),
                )
            )
            updated = rowcount(res)
        if updated == 0:
            current = await self.get_appeal(appeal_id)  # raises NotFound
            raise InvalidTransition(f"appeal {appeal_id} is already {current.status.value}")
        return await self.get_appeal(appeal_id)
