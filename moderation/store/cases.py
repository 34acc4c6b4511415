"""Decisions (cases), overrides and applied actions over SQL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from moderation.domain import (
    Action,
    Case,
    Decision,
    Member,
    MessageKey,
    MessageVersion,
    Override,
    Platform,
    ScoreResult,
    Verdict,
)
from moderation.errors import NotFound
from moderation.store import codec
from moderation.store._base import SqlBase, clean_text, new_id, rowcount
from moderation.store.schema import applied_actions, cases, message_versions, overrides

mv = message_versions

_CASE_COLUMNS = (
    cases,
    mv.c.message_id,
    mv.c.content_hash,
    mv.c.author_id,
    mv.c.author_name,
    mv.c.author_roles,
    mv.c.author_role_ids,
    mv.c.author_is_bot,
    mv.c.author_avatar_url,
    mv.c.text,
    mv.c.channel_name,
)


def case_select() -> Select[Any]:
    return select(*_CASE_COLUMNS).join(mv, cases.c.message_version_id == mv.c.id)


def case_from_row(r: Mapping[Any, Any]) -> Case:
    platform = Platform(r["platform"])
    return Case(
        id=r["id"],
        key=MessageKey(platform, r["channel_id"], r["message_id"], r["content_hash"]),
        server_id=r["server_id"],
        author=Member(
            platform=platform,
            user_id=r["author_id"],
            display_name=r["author_name"],
            roles=codec.roles_from_json(r["author_roles"]),
            role_ids=frozenset(r["author_role_ids"]),
            is_bot=bool(r["author_is_bot"]),
            avatar_url=r["author_avatar_url"],
        ),
        text=r["text"],
        decision=codec.decision_from_row(r["action"], r["reason"], r["model_version"], r["decision"]),
        scores={k: float(v) for k, v in r["scores"].items()},
        decided_at=r["decided_at"],
        status=r["status"],
        verdict=Verdict(r["verdict"]) if r["verdict"] is not None else None,
        channel_name=r["channel_name"],
    )


@dataclass(frozen=True, slots=True)
class LabelledExample:
    """A moderator verdict on a case whose text is still retained: training material."""

    case_id: int
    text: str
    verdict: Verdict
    category: str | None
    scores: Mapping[str, float]
    at: datetime


class CaseMixin(SqlBase):
    async def record_decision(
        self, msg: MessageVersion, result: ScoreResult | None, decision: Decision, now: datetime
    ) -> tuple[Case, bool]:
        """Store a decision for a message version; idempotent on ``msg.key``.

        Returns ``(case, True)`` when stored, ``(existing_case, False)`` when this version was already
        decided — including when a concurrent call for the same key won the race.
        """
        key = msg.key
        scores = {k: float(v) for k, v in (result.scores if result is not None else {}).items()}
        model_version = decision.model_version or (result.model_version if result is not None else None)
        author = msg.author
        try:
            async with self._write() as s:
                res = await s.execute(
                    insert(mv).values(
                        platform=key.platform.value,
                        server_id=msg.server_id,
                        channel_id=key.channel_id,
                        message_id=key.message_id,
                        content_hash=key.content_hash,
                        author_id=author.user_id,
                        author_name=clean_text(author.display_name),
                        author_roles=codec.roles_to_json(author.roles),
                        author_role_ids=sorted(author.role_ids),
                        author_is_bot=author.is_bot,
                        author_avatar_url=author.avatar_url,
                        channel_name=clean_text(msg.channel_name),
                        text=clean_text(msg.text),
                        edited=msg.edited,
                        content_missing=msg.content_missing,
                        attachments=msg.attachments,
                        sent_at=msg.sent_at,
                        received_at=now,
                    )
                )
                res = await s.execute(
                    insert(cases).values(
                        message_version_id=new_id(res),
                        platform=key.platform.value,
                        server_id=msg.server_id,
                        channel_id=key.channel_id,
                        user_id=author.user_id,
                        action=decision.action.value,
                        reason=decision.reason,
                        category=decision.category,
                        model_version=model_version,
                        decision=codec.decision_to_json(decision),
                        scores=scores,
                        decided_at=now,
                        # Allowed messages need no review: they never enter the queue.
                        status="closed" if decision.action is Action.ALLOW else "open",
                    )
                )
                case_id = new_id(res)
        except IntegrityError:
            existing = await self.get_case_by_key(key)
            if existing is None:
                raise
            return existing, False
        return await self.get_case(case_id), True

    async def get_case(self, case_id: int) -> Case:
        async with self._read() as s:
            row = (await s.execute(case_select().where(cases.c.id == case_id))).mappings().one_or_none()
        if row is None:
            raise NotFound("case", case_id)
        return case_from_row(row)

    async def get_case_by_key(self, key: MessageKey) -> Case | None:
        stmt = case_select().where(
            mv.c.platform == key.platform.value,
            mv.c.channel_id == key.channel_id,
            mv.c.message_id == key.message_id,
            mv.c.content_hash == key.content_hash,
        )
        async with self._read() as s:
            row = (await s.execute(stmt)).mappings().one_or_none()
        return case_from_row(row) if row is not None else None

    async def cases_for_message(self, platform: Platform, channel_id: str, message_id: str) -> list[Case]:
        """Every decided version of one message, oldest first."""
        stmt = (
            case_select()
            .where(
                mv.c.platform == platform.value, mv.c.channel_id == channel_id, mv.c.message_id == message_id
            )
            .order_by(cases.c.decided_at, cases.c.id)
        )
        async with self._read() as s:
            return [case_from_row(r) for r in (await s.execute(stmt)).mappings()]

    async def list_cases(
        self,
        platform: Platform | None = None,
        server_id: str | None = None,
        *,
        status: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
    ) -> list[Case]:
        """Matching cases, newest first."""
        stmt = case_select()
        if platform is not None:
            stmt = stmt.where(cases.c.platform == platform.value)
        if server_id is not None:
            stmt = stmt.where(cases.c.server_id == server_id)
        if status is not None:
            stmt = stmt.where(cases.c.status == status)
        if user_id is not None:
            stmt = stmt.where(cases.c.user_id == user_id)
        stmt = stmt.order_by(cases.c.id.desc()).limit(limit)
        async with self._read() as s:
            return [case_from_row(r) for r in (await s.execute(stmt)).mappings()]

    async def resolve_case(self, case_id: int, verdict: Verdict) -> Case:
        async with self._write() as s:
            res = await s.execute(
                update(cases)
                .where(cases.c.id == case_id)
                .values(status="resolved", verdict=verdict.value, resolved_at=self._clock())
            )
            if rowcount(res) == 0:
                raise NotFound("case", case_id)
        return await self.get_case(case_id)

    async def record_override(self, override: Override) -> None:
        mod = override.moderator
        try:
            async with self._write() as s:
                await s.execute(
                    insert(overrides).values(
                        case_id=override.case_id,
                        moderator_platform=mod.platform.value,
                        moderator_id=mod.user_id,
                        moderator_name=clean_text(mod.display_name),
                        moderator_roles=codec.roles_to_json(mod.roles),
                        verdict=override.verdict.value,
                        previous_action=override.previous_action.value if override.previous_action else None,
                        note=clean_text(override.note),
                        at=override.at,
                    )
                )
        except IntegrityError as exc:
            raise NotFound("case", override.case_id) from exc

    async def list_overrides(
        self, case_id: int | None = None, *, since: datetime | None = None
    ) -> list[Override]:
        """Overrides, oldest first, optionally of one case or since a time."""
        stmt = select(overrides).order_by(overrides.c.at, overrides.c.id)
        if case_id is not None:
            stmt = stmt.where(overrides.c.case_id == case_id)
        if since is not None:
            stmt = stmt.where(overrides.c.at >= since)
        async with self._read() as s:
            rows = (await s.execute(stmt)).mappings().all()
        return [
            Override(
                case_id=r["case_id"],
                moderator=Member(
                    Platform(r["moderator_platform"]),
                    r["moderator_id"],
                    r["moderator_name"],
                    roles=codec.roles_from_json(r["moderator_roles"]),
                ),
                verdict=Verdict(r["verdict"]),
                at=r["at"],
                note=r["note"],
                previous_action=Action(r["previous_action"]) if r["previous_action"] else None,
            )
            for r in rows
        ]

    async def labelled_examples(self, since: datetime | None = None) -> list[LabelledExample]:
        """The latest override of each case whose text is still retained, oldest first."""
        stmt = (
            select(
                overrides.c.case_id,
                overrides.c.verdict,
                overrides.c.at,
                cases.c.category,
                cases.c.scores,
                mv.c.text,
            )
            .join(cases, overrides.c.case_id == cases.c.id)
            .join(mv, cases.c.message_version_id == mv.c.id)
            .where(mv.c.text.is_not(None))
            .order_by(overrides.c.at, overrides.c.id)
        )
        if since is not None:
            stmt = stmt.where(overrides.c.at >= since)
        async with self._read() as s:
            rows = (await s.execute(stmt)).mappings().all()
        latest: dict[int, LabelledExample] = {}
        for r in rows:
            latest.pop(r["case_id"], None)  # re-insert so dict order follows the latest verdict
            latest[r["case_id"]] = LabelledExample(
                r["case_id"], r["text"], Verdict(r["verdict"]), r["category"], r["scores"], r["at"]
            )
        return list(latest.values())

    async def mark_action(self, case_id: int, action: str) -> bool:
        """Record that ``action`` was applied to a case; False if it already was (apply at most once)."""
        try:
            async with self._write() as s:
                await s.execute(
                    insert(applied_actions).values(case_id=case_id, action=action, applied_at=self._clock())
                )
        except IntegrityError as exc:
            async with self._read() as s:
                seen = (
                    await s.execute(
                        select(applied_actions.c.id).where(
                            applied_actions.c.case_id == case_id, applied_actions.c.action == action
                        )
                    )
                ).first()
            if seen is None:
                raise NotFound("case", case_id) from exc
            return False
        return True

    async def unmark_action(self, case_id: int, action: str) -> None:
        """Forget a mark whose action failed (the platform refused it): ``applied`` stays true."""
        async with self._write() as s:
            await s.execute(
                delete(applied_actions).where(
                    applied_actions.c.case_id == case_id, applied_actions.c.action == action
                )
            )

    async def applied_actions_for(self, case_id: int) -> list[str]:
        async with self._read() as s:
            rows = await s.execute(
                select(applied_actions.c.action)
                .where(applied_actions.c.case_id == case_id)
                .order_by(applied_actions.c.id)
            )
            return list(rows.scalars())
