"""Who is who in a Slack workspace: user-group membership (cached), turned into members by convert.

Moderator status comes from configured user ids or membership of one user group
(``usergroups.list`` with ``include_users``; scope ``usergroups:read``). Privileged actions ask for a
fresh view (``max_age``), so removing someone from the group takes effect within seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.adapters.slack import convert
from bot.adapters.slack.webapi import SlackApi, slack_error
from moderation.domain import Member
from moderation.errors import PlatformActionFailed

log = logging.getLogger(__name__)


@dataclass
class _Groups:
    fetched_at: float
    by_user: dict[str, frozenset[str]] = field(default_factory=dict)
    mod_group_id: str | None = None


class SlackDirectory:
    def __init__(
        self,
        api: SlackApi,
        config: convert.RoleConfig,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self.config = config
        self._ttl = ttl
        self._clock = clock
        self._groups: dict[str, _Groups] = {}
        self._disabled_until = 0.0
        self._refresh = asyncio.Lock()  # one usergroups.list at a time, not one per concurrent event

    async def member(
        self,
        team_id: str,
        user_id: str,
        *,
        is_bot: bool = False,
        display_name: str = "",
        avatar_url: str | None = None,
        max_age: float | None = None,
    ) -> Member:
        groups = await self._groups_for(team_id, max_age) if not is_bot else None
        return convert.member(
            user_id,
            config=self.config,
            usergroup_ids=groups.by_user.get(user_id, frozenset()) if groups else frozenset(),
            mod_group_id=groups.mod_group_id if groups else None,
            is_bot=is_bot,
            display_name=display_name,
            avatar_url=avatar_url,
        )

    async def _groups_for(self, team_id: str, max_age: float | None) -> _Groups | None:
        async with self._refresh:
            return await self._refresh_groups(team_id, max_age)

    async def _refresh_groups(self, team_id: str, max_age: float | None) -> _Groups | None:
        now = self._clock()
        cached = self._groups.get(team_id)
        limit = self._ttl if max_age is None else min(max_age, self._ttl)
        if cached is not None and now - cached.fetched_at < limit:
            return cached
        if now < self._disabled_until:
            return cached
        try:
            resp = await self._api.call(
                "usergroups", "usergroups.list", include_users=True, include_disabled=False
            )
        except PlatformActionFailed as exc:
            # Without usergroups:read, moderators come from configured user ids only; say so once per TTL.
            level = logging.WARNING if slack_error(exc) == "missing_scope" else logging.ERROR
            log.log(level, "cannot list Slack user groups (%s): moderators = configured user ids only", exc)
            self._disabled_until = now + self._ttl
            return cached
        groups = _Groups(fetched_at=now)
        by_user: dict[str, set[str]] = {}
        wanted = self.config.moderator_usergroup.lstrip("@")
        for group in resp.get("usergroups") or []:
            gid = group.get("id", "")
            if wanted and wanted in (gid, group.get("handle")):
                groups.mod_group_id = gid
            for uid in group.get("users") or []:
                by_user.setdefault(uid, set()).add(gid)
        groups.by_user = {uid: frozenset(g) for uid, g in by_user.items()}
        self._groups[team_id] = groups
        return groups
