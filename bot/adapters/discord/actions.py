"""DiscordActions: carries out the service's decisions on Discord (``moderation.ports.PlatformActions``).

At-most-once per case and action is the service's job (``CaseStore.mark_action``, persisted by the SQL
store); rate limits are discord.py's (see ``errors.py``). This module adds what Discord needs on top:
bursts of deletions in one channel become one bulk-delete, a message that is already gone counts as
deleted, and a "hold" (Discord cannot hide a message) removes it and keeps it in the review queue so a
moderator can restore it through a channel webhook under the author's name and avatar.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from contextvars import ContextVar
from datetime import timedelta

import discord

from bot.adapters.discord import render
from bot.adapters.discord.deletes import DeleteBatcher
from bot.adapters.discord.errors import call
from bot.adapters.discord.views import appeal_decision_view, appeal_view, review_view
from moderation.domain import Appeal, Capabilities, Case, Member, Platform, Verdict
from moderation.errors import PlatformActionFailed
from moderation.ports import Notice, PolicyStore

log = logging.getLogger(__name__)

#: The guild whose event is being handled, so ``capabilities`` reflects that guild's permissions.
current_guild: ContextVar[int | None] = ContextVar("chatmod_discord_guild", default=None)

_WEBHOOK_NAME = "chatmod"
_NO_REVIEW_CHANNEL = (
    "flagged messages are waiting in /mod queue, but no review channel is set: "
    "run /config review-channel to get review posts with buttons"
)
_CONTENT_LIMIT = 2000


class DiscordActions:
    """``PlatformActions`` for Discord, bound to one logged-in ``discord.Client``."""

    def __init__(
        self,
        client: discord.Client,
        policies: PolicyStore,
        *,
        notice_delete_after_s: float = 30.0,
        bulk_window_s: float = 0.25,
    ) -> None:
        self._client = client
        self._policies = policies
        self._notice_delete_after = notice_delete_after_s
        self._deletes = DeleteBatcher(client, bulk_window_s)
        self._webhooks: dict[int, discord.Webhook] = {}
        #: case id -> (channel id, message id) of its review post; rebuilt from the channel after restarts.
        self._review_posts: dict[int, tuple[int, int]] = {}
        self._expiring: set[asyncio.Task[None]] = set()
        self._webhook_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._told_no_review: set[str] = set()

    # ------------------------------------------------------------------ capabilities

    @property
    def capabilities(self) -> Capabilities:
        guild_id = current_guild.get()
        guild = self._client.get_guild(guild_id) if guild_id is not None else None
        if guild is None or guild.me is None:
            return Capabilities()
        perms = guild.me.guild_permissions
        return Capabilities(
            can_delete=perms.manage_messages,
            can_hold=perms.manage_messages,
            can_timeout=perms.moderate_members,
            can_repost=perms.manage_webhooks,
            can_notify=True,
        )

    # ------------------------------------------------------------------ member actions

    async def delete(self, case: Case) -> None:
        await self._deletes.delete(int(case.key.channel_id), int(case.key.message_id))

    async def hold(self, case: Case) -> None:
        # Discord cannot hide a message: remove it; the case stays open in the review queue with its text.
        await self.delete(case)

    async def timeout(self, case: Case, seconds: int) -> None:
        until = discord.utils.utcnow() + timedelta(seconds=seconds)
        await call(
            "timeout",
            self._client.http.edit_member(
                int(case.server_id),
                int(case.author.user_id),
                reason=f"chatmod case {case.id}",
                communication_disabled_until=until.isoformat(),
            ),
        )

    async def restore(self, case: Case) -> None:
        """Repost a removed message through a channel webhook, as its author, with a marker."""
        if case.text is None:
            raise PlatformActionFailed("restore", "text erased after the retention window", retryable=False)
        channel_id = int(case.key.channel_id)
        webhook = await self._webhook(channel_id)
        text = discord.utils.escape_mentions(case.text)
        chunks = [text[i : i + 1900] for i in range(0, len(text), 1900)] or [""]
        chunks[-1] = f"{chunks[-1]}\n{render.RESTORED_MARKER}"
        for chunk in chunks:
            await call(
                "restore",
                webhook.send(
                    chunk,
                    username=render.clip(case.author.display_name or case.author.user_id, 80),
                    avatar_url=case.author.avatar_url,
                    allowed_mentions=discord.AllowedMentions.none(),
                    wait=True,
                ),
            )

    async def _webhook(self, channel_id: int) -> discord.Webhook:
        async with self._webhook_locks[channel_id]:  # two restores at once must not make two webhooks
            cached = self._webhooks.get(channel_id)
            if cached is not None:
                return cached
            channel = self._client.get_channel(channel_id)
            if not isinstance(channel, discord.TextChannel | discord.VoiceChannel | discord.StageChannel):
                raise PlatformActionFailed(
                    "restore", f"channel {channel_id} cannot host webhooks", retryable=False
                )
            me = self._client.user.id if self._client.user else None
            existing = await call("restore", channel.webhooks())
            webhook = next(
                (w for w in existing if w.name == _WEBHOOK_NAME and w.token and w.user and w.user.id == me),
                None,
            )
            if webhook is None:
                webhook = await call(
                    "restore", channel.create_webhook(name=_WEBHOOK_NAME, reason="chatmod restores")
                )
            self._webhooks[channel_id] = webhook
            return webhook

    # ------------------------------------------------------------------ moderators

    async def escalate(self, case: Case) -> None:
        """Post the case to the server's review channel with persistent verdict buttons."""
        channel = await self._review_channel(case.server_id)
        if channel is None:
            log.warning("case %s: no review channel set for guild %s", case.id, case.server_id)
            if case.server_id not in self._told_no_review:
                self._told_no_review.add(case.server_id)
                try:
                    await self.alert_admins(case.server_id, _NO_REVIEW_CHANNEL)
                except PlatformActionFailed as exc:
                    log.error("could not tell guild %s to set a review channel: %s", case.server_id, exc)
            return
        message = await call(
            "escalate",
            channel.send(
                embed=render.review_embed(case),
                view=review_view(case.id),
                allowed_mentions=discord.AllowedMentions.none(),
            ),
        )
        self._review_posts[case.id] = (channel.id, message.id)

    async def add_evidence(self, case: Case, evidence: dict[str, tuple[str, ...]]) -> None:
        """Add the words that drove the scores to a case's review post (known once scoring returned)."""
        known = self._review_posts.get(case.id)  # only a post made by this process moments ago
        if known is None or not evidence:
            return
        post = self._client.get_partial_messageable(known[0]).get_partial_message(known[1])
        await call("escalate", post.edit(embed=render.review_embed(case, evidence)))

    async def resolve_review(self, case: Case, verdict: Verdict, moderator: Member) -> None:
        post = await self._find_review_post(case)
        if post is None:
            return
        base = None
        if isinstance(post, discord.Message) and post.embeds:
            base = post.embeds[0]
        await call(
            "resolve_review",
            post.edit(embed=render.resolved_embed(case, verdict, moderator, base), view=None),
        )

    def remember_review_post(self, case_id: int, channel_id: int, message_id: int) -> None:
        self._review_posts[case_id] = (channel_id, message_id)

    async def _find_review_post(self, case: Case) -> discord.PartialMessage | discord.Message | None:
        known = self._review_posts.get(case.id)
        if known is not None:
            return self._client.get_partial_messageable(known[0]).get_partial_message(known[1])
        # After a restart: look for our post in the review channel's recent history (bounded).
        channel = await self._review_channel(case.server_id)
        if channel is None:
            return None
        footer = f"{render.FOOTER_PREFIX}{case.id}"
        try:
            async for message in channel.history(limit=100):
                if message.author == self._client.user and any(
                    e.footer and e.footer.text == footer for e in message.embeds
                ):
                    self._review_posts[case.id] = (channel.id, message.id)
                    return message
        except discord.HTTPException as exc:
            log.warning("could not search review channel for case %s: %s", case.id, exc)
        return None

    async def _review_channel(
        self, server_id: str
    ) -> discord.TextChannel | discord.PartialMessageable | None:
        policy = await self._policies.get_policy(Platform.DISCORD, server_id)
        if policy.review_channel_id is None:
            return None
        channel = self._client.get_channel(int(policy.review_channel_id))
        if isinstance(channel, discord.TextChannel):
            return channel
        return self._client.get_partial_messageable(int(policy.review_channel_id), guild_id=int(server_id))

    async def alert_admins(self, server_id: str, message: str) -> None:
        channel: discord.TextChannel | discord.PartialMessageable | None = await self._review_channel(
            server_id
        )
        if channel is None:
            guild = self._client.get_guild(int(server_id))
            channel = guild.system_channel if guild is not None else None
        if channel is None:
            log.error("admin alert for guild %s has nowhere to go: %s", server_id, message)
            return
        await call(
            "alert",
            channel.send(f"⚠️ **chatmod**: {message}", allowed_mentions=discord.AllowedMentions.none()),
        )

    async def post_appeal(self, case: Case, appeal: Appeal) -> None:
        """Tell moderators about a new appeal, with Grant / Deny buttons."""
        channel = await self._review_channel(case.server_id)
        if channel is None:
            return
        embed = discord.Embed(
            title=f"Appeal {appeal.id} on case {case.id}",
            description=render.quote(appeal.text),
            colour=discord.Colour.blurple(),
        )
        embed.add_field(name="Member", value=f"<@{appeal.member.user_id}>")
        embed.add_field(name="Original action", value=case.decision.action.value)
        embed.add_field(name="Their message", value=render.quote(case.text, 500), inline=False)
        await call(
            "appeal",
            channel.send(
                embed=embed,
                view=appeal_decision_view(appeal.id),
                allowed_mentions=discord.AllowedMentions.none(),
            ),
        )

    # ------------------------------------------------------------------ members

    async def notify_member(self, case: Case, notice: Notice) -> None:
        """DM the member; with DMs closed, a short self-deleting mention in the channel instead."""
        guild = self._client.get_guild(int(case.server_id))
        embed = render.notice_embed(case, notice, guild.name if guild else "the server")
        view = appeal_view(case.id) if notice.appealable else discord.utils.MISSING
        try:
            dm = await self._client.create_dm(discord.Object(int(case.author.user_id)))
            await dm.send(embed=embed, view=view)
            return
        except discord.Forbidden as exc:
            log.info("DM to %s refused (%s): channel notice instead", case.author.user_id, exc.code)
        except discord.HTTPException as exc:
            log.warning("DM to %s failed (%s): channel notice instead", case.author.user_id, exc)
        channel = self._client.get_partial_messageable(int(case.key.channel_id), guild_id=int(case.server_id))
        sent = await call(
            "notify",
            channel.send(
                render.channel_notice(case, notice),
                allowed_mentions=discord.AllowedMentions(users=True, roles=False, everyone=False),
            ),
        )
        if self._notice_delete_after > 0:
            task = asyncio.create_task(self._expire(sent), name=f"chatmod-expire-{sent.id}")
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

    async def _expire(self, message: discord.Message) -> None:
        await asyncio.sleep(self._notice_delete_after)
        try:
            await message.delete()
        except discord.HTTPException as exc:
            log.info("channel notice %s not deleted: %s", message.id, exc)

    async def close(self) -> None:
        """Cancel pending notice expiries (a notice outliving a shutdown stays until deleted by hand)."""
        for task in list(self._expiring):
            task.cancel()
        await asyncio.gather(*self._expiring, return_exceptions=True)

    async def send_appeal_outcome(self, case: Case, appeal: Appeal) -> None:
        try:
            dm = await self._client.create_dm(discord.Object(int(appeal.member.user_id)))
            await dm.send(render.appeal_outcome_text(case, appeal))
        except discord.HTTPException as exc:
            log.info("could not DM appeal outcome to %s: %s", appeal.member.user_id, exc)
