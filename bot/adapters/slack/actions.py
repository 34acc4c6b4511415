"""SlackActions: the moderation service's ``PlatformActions`` on Slack, with honest capabilities.

- A bot token can delete only the bot's own messages. Removing a member's message (hold or delete)
  needs a workspace admin's *user* token (``chat:write`` user scope); without one, ``can_delete`` and
  ``can_hold`` are False and the policy degrades those actions to escalate + notice (recorded on the
  decision as ``degraded_from``).
- Slack has no member timeout: ``can_timeout`` is False (the ladder's timeout step degrades).
- "Hold" on Slack = remove the message (kept in the store for review); Restore reposts it as the bot,
  attributed to the member.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.adapters.slack import blocks
from bot.adapters.slack.webapi import SlackApi
from moderation.domain import Action, Appeal, Capabilities, Case, Member, Platform, Verdict
from moderation.errors import PlatformActionFailed
from moderation.ports import Notice, PolicyStore

log = logging.getLogger(__name__)


@dataclass
class ReviewPost:
    channel: str
    ts: str
    evidence: Mapping[str, Sequence[str]] = field(default_factory=dict)


class ReviewPosts:
    """Where each case's review card is (bounded; a card not found is re-posted, not lost)."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._posts: OrderedDict[int, ReviewPost] = OrderedDict()
        self._maxsize = maxsize

    def get(self, case_id: int) -> ReviewPost | None:
        return self._posts.get(case_id)

    def put(self, case_id: int, post: ReviewPost) -> None:
        self._posts[case_id] = post
        self._posts.move_to_end(case_id)
        while len(self._posts) > self._maxsize:
            self._posts.popitem(last=False)


class SlackActions:
    def __init__(
        self,
        api: SlackApi,
        policies: PolicyStore,
        *,
        admin_user_ids: Sequence[str] = (),
        posts: ReviewPosts | None = None,
    ) -> None:
        self._api = api
        self._policies = policies
        self._admins = tuple(admin_user_ids)
        self.posts = posts or ReviewPosts()

    @property
    def capabilities(self) -> Capabilities:
        removable = self._api.admin is not None
        return Capabilities(
            can_delete=removable, can_hold=removable, can_timeout=False, can_repost=True, can_notify=True
        )

    # ------------------------------------------------------------------ member's message

    async def delete(self, case: Case) -> None:
        await self._remove(case, "delete")

    async def hold(self, case: Case) -> None:
        await self._remove(case, "hold")

    async def _remove(self, case: Case, action: str) -> None:
        if self._api.admin is None:
            raise PlatformActionFailed(
                action,
                "a Slack bot token can delete only its own messages; configure an admin user token "
                "(CHATMOD_SLACK__ADMIN_USER_TOKEN) to remove members' messages",
                status=403,
            )
        try:
            await self._api.call(
                action,
                "chat.delete",
                client=self._api.admin,
                channel=case.key.channel_id,
                ts=case.key.message_id,
            )
        except PlatformActionFailed as exc:
            if exc.status == 404:  # already gone (the member or another admin deleted it): nothing to do
                log.info("case %s: message already deleted", case.id)
                return
            raise

    async def timeout(self, case: Case, seconds: int) -> None:
        # Not reached through decide() (can_timeout=False); a moderator's explicit Timeout verdict lands here.
        await self._post_review_note(
            case.server_id,
            f"Case #{case.id}: Slack has no member timeout, so the requested {seconds // 60} min timeout of "
            f"<@{case.author.user_id}> was not applied. A workspace admin can restrict the member instead.",
        )

    async def restore(self, case: Case) -> None:
        if case.text is None:
            raise PlatformActionFailed(
                "restore", "the text is past the retention window and cannot be reposted"
            )
        text, body = blocks.repost(case)
        await self._api.call(
            "restore", "chat.postMessage", channel=case.key.channel_id, text=text, blocks=body
        )

    # ------------------------------------------------------------------ moderators

    async def escalate(self, case: Case) -> None:
        text, body = blocks.review_card(case, can_remove=self.capabilities.can_delete)
        channel = await self._review_channel(case.server_id)
        if channel is None:
            if not self._admins:
                raise PlatformActionFailed(
                    "escalate", "no review channel configured (/chatmod config review-channel #channel)"
                )
            await self._to_admins("escalate", text, body)  # a DM to each admin rather than nowhere
            return
        try:
            resp = await self._api.call(
                "escalate", "chat.postMessage", channel=channel, text=text, blocks=body
            )
        except PlatformActionFailed as exc:
            # e.g. not_in_channel: the bot was never invited to the review channel. The case still
            # reaches the admins; the failure is raised so that the service audits and alerts it.
            if exc.status == 403 and self._admins:
                await self._to_admins("escalate", text, body)
            raise
        self.posts.put(case.id, ReviewPost(resp.get("channel") or channel, str(resp["ts"])))

    async def _to_admins(self, action: str, text: str, body: list[dict[str, object]] | None = None) -> None:
        for admin in self._admins:
            await self._api.call(action, "chat.postMessage", channel=admin, text=text, blocks=body)

    async def attach_evidence(self, case: Case, evidence: Mapping[str, Sequence[str]]) -> None:
        """Add the words that drove the scores to a case's review card (known once scoring returned)."""
        post = self.posts.get(case.id)
        if post is None or not evidence:
            return
        post.evidence = dict(evidence)
        text, body = blocks.review_card(case, evidence=post.evidence, can_remove=self.capabilities.can_delete)
        await self._api.call(
            "review", "chat.update", channel=post.channel, ts=post.ts, text=text, blocks=body
        )

    async def resolve_review(self, case: Case, verdict: Verdict, moderator: Member) -> None:
        post = self.posts.get(case.id)
        note = ""
        removal_wanted = verdict in (Verdict.DELETE, Verdict.UPHOLD, Verdict.TIMEOUT)
        already_removed = case.decision.action in (Action.DELETE, Action.HOLD, Action.TIMEOUT)
        if removal_wanted and not already_removed and not self.capabilities.can_delete:
            note = "Not removed: chatmod has no admin user token here. Remove the message by hand."
        text, body = blocks.review_card(
            case,
            evidence=post.evidence if post else None,
            can_remove=self.capabilities.can_delete,
            resolved=(verdict, moderator.user_id),
            note=note,
        )
        if post is not None:
            await self._api.call(
                "review", "chat.update", channel=post.channel, ts=post.ts, text=text, blocks=body
            )
            return
        channel = await self._review_channel(case.server_id)
        if channel is not None:
            await self._api.call("review", "chat.postMessage", channel=channel, text=text, blocks=body)

    async def alert_admins(self, server_id: str, message: str) -> None:
        channel = await self._review_channel(server_id)
        if channel is None and not self._admins:
            raise PlatformActionFailed("alert", "no review channel and no admin user ids configured")
        text = f":warning: {message}"
        if channel is not None:
            try:
                await self._api.call("alert", "chat.postMessage", channel=channel, text=text)
                return
            except PlatformActionFailed:
                if not self._admins:
                    raise
                log.warning("review channel %s unreachable: alerting admins by DM", channel)
        await self._to_admins("alert", text)

    async def _post_review_note(self, server_id: str, text: str) -> None:
        channel = await self._review_channel(server_id)
        for target in [channel] if channel else list(self._admins):
            await self._api.call("note", "chat.postMessage", channel=target, text=text)

    async def _review_channel(self, server_id: str) -> str | None:
        policy = await self._policies.get_policy(Platform.SLACK, server_id)
        return policy.review_channel_id

    # ------------------------------------------------------------------ members

    async def notify_member(self, case: Case, notice: Notice) -> None:
        """An ephemeral notice in the channel, and the same as a DM (ephemerals vanish on reload)."""
        degraded = case.decision.degraded_from is not None
        text, body = blocks.notice(case, notice, degraded=degraded)
        user = case.author.user_id
        failures: list[PlatformActionFailed] = []
        try:
            await self._api.call(
                "notify", "chat.postEphemeral", channel=case.key.channel_id, user=user, text=text, blocks=body
            )
        except PlatformActionFailed as exc:
            log.warning("case %s: ephemeral notice failed: %s", case.id, exc)
            failures.append(exc)
        try:
            # Posting to a user id lands in the app's DM with that user (the Messages tab).
            await self._api.call("notify", "chat.postMessage", channel=user, text=text, blocks=body)
        except PlatformActionFailed as exc:
            log.warning("case %s: DM notice failed: %s", case.id, exc)
            failures.append(exc)
        if len(failures) == 2:
            raise failures[-1]

    async def send_appeal_outcome(self, case: Case, appeal: Appeal) -> None:
        await self._api.call(
            "appeal_outcome",
            "chat.postMessage",
            channel=appeal.member.user_id,
            text=blocks.appeal_outcome(case, appeal),
        )
