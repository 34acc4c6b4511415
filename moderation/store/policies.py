"""PolicyStore over SQL: server settings as JSON, one row per channel override."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from moderation.domain import Platform
from moderation.policy import DEFAULT_TIERS, ServerPolicy
from moderation.store import codec
from moderation.store._base import SqlBase, new_id
from moderation.store.schema import channel_policies, servers


class PolicyMixin(SqlBase):
    async def get_policy(self, platform: Platform, server_id: str) -> ServerPolicy:
        """The server's policy; an unknown server gets the defaults, which are stored."""
        async with self._snapshot() as s:
            policy = await self._load_policy(s, platform, server_id)
        if policy is not None:
            return policy
        default = ServerPolicy(server_id, thresholds=dict(self.default_thresholds or DEFAULT_TIERS))
        now = self._clock()
        try:
            async with self._write() as s:
                await s.execute(
                    insert(servers).values(
                        platform=platform.value,
                        server_id=server_id,
                        policy=codec.server_policy_to_json(default),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            pass  # created concurrently: read theirs
        async with self._snapshot() as s:
            policy = await self._load_policy(s, platform, server_id)
        assert policy is not None
        return policy

    async def save_policy(self, platform: Platform, policy: ServerPolicy) -> None:
        """Replace the server's settings and its whole set of channel overrides."""
        for attempt in range(3):
            try:
                async with self._write() as s:
                    await self._save(s, platform, policy)
                return
            except IntegrityError:
                if attempt == 2:
                    raise  # a concurrent first save of the same server: retry as an update

    async def _save(self, s: AsyncSession, platform: Platform, policy: ServerPolicy) -> None:
        now = self._clock()
        doc = codec.server_policy_to_json(policy)
        pk = (
            await s.execute(
                select(servers.c.id).where(
                    servers.c.platform == platform.value, servers.c.server_id == policy.server_id
                )
            )
        ).scalar_one_or_none()
        if pk is None:
            result = await s.execute(
                insert(servers).values(
                    platform=platform.value,
                    server_id=policy.server_id,
                    policy=doc,
                    created_at=now,
                    updated_at=now,
                )
            )
            pk = new_id(result)
        else:
            await s.execute(update(servers).where(servers.c.id == pk).values(policy=doc, updated_at=now))
            await s.execute(delete(channel_policies).where(channel_policies.c.server_pk == pk))
        rows = [
            {"server_pk": pk, **codec.channel_policy_row(ch)} for _, ch in sorted(policy.channels.items())
        ]
        if rows:
            await s.execute(insert(channel_policies), rows)

    async def _load_policy(self, s: AsyncSession, platform: Platform, server_id: str) -> ServerPolicy | None:
        row = (
            await s.execute(
                select(servers.c.id, servers.c.policy).where(
                    servers.c.platform == platform.value, servers.c.server_id == server_id
                )
            )
        ).one_or_none()
        if row is None:
            return None
        channel_rows = (
            await s.execute(select(channel_policies).where(channel_policies.c.server_pk == row.id))
        ).mappings()
        channels = {r["channel_id"]: codec.channel_policy_from_row(r) for r in channel_rows}
        return codec.server_policy_from_json(server_id, row.policy, channels)
