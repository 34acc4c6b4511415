"""ChatmodDiscordBot: receives gateway events, hands domain objects to the service, runs the actions.

- Each inbound message (create, edit, backfill) is one supervised task; at most
  ``max_concurrent_events`` run at once, and ``close()`` drains them within a deadline.
- Edits: every version is rescored (the service keys versions by content hash and never punishes a
  message twice). An update whose content is missing is fetched over REST; if Discord still withholds
  it, that is recorded (audit entry) and raised to admins as a missing-intent alert, never scored clean.
- Gaps: ``on_ready`` fires for every new gateway session (startup, or re-identify after an invalid
  session; a RESUME replays missed events itself), and each readable channel is backfilled from the last
  message the store has a decision for, bounded by ``backfill_limit``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import discord
from discord import app_commands

from bot.adapters.discord import convert
from bot.adapters.discord.actions import DiscordActions, current_guild
from bot.adapters.discord.commands import appeal, mod
from bot.adapters.discord.config_commands import config
from bot.adapters.discord.views import DYNAMIC_ITEMS
from bot.settings import DiscordSettings
from moderation.domain import AuditEntry, MessageVersion, Platform
from moderation.errors import ModerationError
from moderation.service import ModerationService

log = logging.getLogger(__name__)

#: How many recent decisions per server are read to find each channel's last processed message.
_CHECKPOINT_SCAN = 1000


class Clock(Protocol):
    def now(self) -> datetime: ...


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class DiscordStartupError(ModerationError):
    """The bot cannot start: no token, or Discord refused the connection."""


class MissingIntents(DiscordStartupError):
    """Discord refused the gateway connection: a privileged intent is not enabled for the application."""


def required_intents() -> discord.Intents:
    """Guilds (channels, roles, the bot's own permissions), guild messages and their edits, and the
    privileged message-content intent (without it texts arrive empty and nothing can be moderated)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    return intents


class ChatmodDiscordBot(discord.Client):
    def __init__(
        self,
        service: ModerationService,
        settings: DiscordSettings,
        *,
        clock: Clock | None = None,
        intents: discord.Intents | None = None,
        bulk_window_s: float = 0.25,
        drain_timeout_s: float = 10.0,
        **client_options: Any,
    ) -> None:
        client_options.setdefault("chunk_guilds_at_startup", False)
        client_options.setdefault("max_messages", 1000)
        super().__init__(intents=intents or required_intents(), **client_options)
        self.service = service
        self.settings = settings
        self._clock: Clock = clock or _SystemClock()
        self._drain_timeout = drain_timeout_s
        self.tree: app_commands.CommandTree[ChatmodDiscordBot] = app_commands.CommandTree(self)
        commands: tuple[app_commands.Group | app_commands.Command[Any, ..., Any], ...] = (mod, config, appeal)
        for command in commands:
            self.tree.add_command(command)
        self.tree.on_error = self._on_command_error  # type: ignore[method-assign]
        self.actions = DiscordActions(
            self,
            service.store,
            notice_delete_after_s=settings.notice_delete_after_s,
            bulk_window_s=bulk_window_s,
        )
        service.register_actions(Platform.DISCORD, self.actions)
        self._slots = asyncio.Semaphore(settings.max_concurrent_events)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.stats: Counter[str] = Counter()

    def clock_now(self) -> datetime:
        return self._clock.now()

    # ------------------------------------------------------------------ lifecycle

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS)  # review/appeal buttons survive restarts
        if self.user is not None:
            self.service.add_own_user_id(str(self.user.id))
        if not self.intents.message_content:
            log.error("message-content intent is off: messages arrive without text and cannot be moderated")
        if self.settings.guild_ids:
            try:
                await self.sync_commands(self.settings.guild_ids)
            except discord.Forbidden as exc:  # invited without the applications.commands scope
                log.error(
                    "cannot register slash commands (%s): re-invite the bot with the "
                    "'applications.commands' scope (see docs/DISCORD.md)",
                    exc,
                )

    async def sync_commands(self, guild_ids: Sequence[int] | None = None) -> int:
        """Register slash commands: per guild (instant) or globally (propagates within the hour)."""
        if not guild_ids:
            return len(await self.tree.sync())
        count = 0
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            count = len(await self.tree.sync(guild=guild))
            log.info("synced %d commands to guild %s", count, guild_id)
        return count

    async def start(self, token: str, *, reconnect: bool = True) -> None:
        """Log in and stay connected until closed (what ``chatmod run`` awaits)."""
        if not token:
            raise DiscordStartupError("no Discord token: set CHATMOD_DISCORD__TOKEN in the environment")
        try:
            await super().start(token, reconnect=reconnect)
        except discord.PrivilegedIntentsRequired as exc:
            raise MissingIntents(
                "Discord refused the connection (close code 4014): enable the MESSAGE CONTENT intent for "
                "this application (Developer Portal → your application → Bot → Privileged Gateway Intents)"
            ) from exc

    async def serve(self) -> None:
        """``start`` with the token from settings, closing the client afterwards."""
        async with self:
            await self.start(self.settings.token.get_secret_value())

    async def close(self) -> None:
        if not self._closing:
            self._closing = True
            await self.drain(self._drain_timeout)
            await self.actions.close()
            log.info("discord adapter closed: %s", dict(self.stats))
        await super().close()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for in-flight event tasks (cancel what is left after ``timeout``)."""
        pending = set(self._tasks)
        if not pending:
            return
        _, not_done = await asyncio.wait(pending, timeout=timeout)
        for task in not_done:
            task.cancel()
        if not_done:
            await asyncio.gather(*not_done, return_exceptions=True)
            log.warning("cancelled %d event tasks still running at shutdown", len(not_done))

    def spawn(
        self, coro: Coroutine[Any, Any, None], guild_id: int | None, name: str
    ) -> asyncio.Task[None] | None:
        if self._closing:  # intake stopped: the next session's backfill picks the message up
            coro.close()
            self.stats["dropped_at_shutdown"] += 1
            return None
        task = asyncio.create_task(self._bounded(coro, guild_id), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if len(self._tasks) > 8 * self.settings.max_concurrent_events:
            log.warning("discord event backlog: %d tasks waiting", len(self._tasks))
        return task

    async def _bounded(self, coro: Coroutine[Any, Any, None], guild_id: int | None) -> None:
        async with self._slots:
            token = current_guild.set(guild_id)
            try:
                await coro
            except Exception:  # one bad event must never take the bot down
                self.stats["event_errors"] += 1
                log.exception("error while moderating a Discord event")
            finally:
                current_guild.reset(token)

    async def _on_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Answer every failed command (Discord otherwise shows "The application did not respond")."""
        if isinstance(error, app_commands.TransformerError):
            text = f"Invalid value {error.value!r} for this option."
        else:
            log.error("slash command failed", exc_info=error)
            text = "Something went wrong; it was logged for the bot's operator."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not report a command error: %s", exc)

    # ------------------------------------------------------------------ events

    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None:
            return
        self.spawn(self._moderate(message), message.guild.id, f"chatmod-msg-{message.id}")

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if payload.guild_id is None:
            return
        self.spawn(self._moderate_edit(payload), payload.guild_id, f"chatmod-edit-{payload.message_id}")

    async def on_ready(self) -> None:
        log.info("discord session ready as %s in %d guild(s)", self.user, len(self.guilds))
        cutoff = discord.utils.time_snowflake(discord.utils.utcnow())
        for guild in self.guilds:
            self.spawn(self.backfill_guild(guild, cutoff), guild.id, f"chatmod-backfill-{guild.id}")

    async def _moderate(self, message: discord.Message, *, edited: bool = False, **kw: Any) -> None:
        version = convert.message_version(message, **kw)
        if version is None:
            return
        if edited and not version.edited:
            version = replace(version, edited=True)
        await self._handle(version)

    async def _handle(self, version: MessageVersion) -> None:
        outcome = await self.service.handle_message(version)
        self.stats["duplicate" if outcome.duplicate else (outcome.action or "skipped")] += 1
        if (
            outcome.case is not None
            and not outcome.duplicate
            and outcome.score is not None
            and outcome.score.evidence
            and outcome.decision is not None
            and outcome.decision.alert_moderators
        ):
            try:
                await self.actions.add_evidence(outcome.case, dict(outcome.score.evidence))
            except ModerationError as exc:
                log.warning("could not add evidence to review post of case %s: %s", outcome.case.id, exc)

    async def _moderate_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        message = payload.message
        if "content" not in payload.data or convert.content_withheld(message):
            try:
                channel = self.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
                message = await channel.fetch_message(payload.message_id)
            except discord.HTTPException as exc:
                await self._record_skip(payload, f"fetch failed: HTTP {exc.status}")
                return
            if convert.content_withheld(message):
                await self._record_skip(payload, "content withheld by Discord after fetch")
                await self._moderate(message, edited=True, content_missing=True)
                return
        await self._moderate(message, edited=True)

    async def _record_skip(self, payload: discord.RawMessageUpdateEvent, why: str) -> None:
        self.stats["edit_skipped"] += 1
        log.warning("edit of message %s in %s not scored: %s", payload.message_id, payload.channel_id, why)
        await self.service.store.append(
            AuditEntry(
                self.clock_now(),
                "system",
                "discord.edit_skipped",
                str(payload.guild_id),
                f"{payload.channel_id}:{payload.message_id}",
                {"reason": why},
            )
        )

    # ------------------------------------------------------------------ backfill

    async def checkpoints(self, guild_id: int, before: int) -> dict[int, int]:
        """channel id → newest message id with a stored decision, among messages older than ``before``."""
        cases = await self.service.store.list_cases(Platform.DISCORD, str(guild_id), limit=_CHECKPOINT_SCAN)
        out: dict[int, int] = {}
        for case in cases:
            channel_id, message_id = int(case.key.channel_id), int(case.key.message_id)
            if message_id < before and message_id > out.get(channel_id, 0):
                out[channel_id] = message_id
        return out

    async def backfill_guild(self, guild: discord.Guild, before: int) -> None:
        """Score messages sent while the bot was away (after each channel's checkpoint, bounded)."""
        limit = self.settings.backfill_limit
        if limit <= 0:
            return
        marks = await self.checkpoints(guild.id, before)
        total = 0
        for channel in guild.text_channels:
            after = marks.get(channel.id)
            if after is None or guild.me is None:
                continue
            perms = channel.permissions_for(guild.me)
            if not (perms.view_channel and perms.read_message_history):
                continue
            try:
                async for message in channel.history(
                    limit=limit, after=discord.Object(after), oldest_first=True
                ):
                    if message.id >= before:
                        break
                    await self._moderate(message)
                    total += 1
            except discord.HTTPException as exc:
                log.warning("backfill of #%s failed: %s", channel.name, exc)
        self.stats["backfilled"] += total
        log.info("backfill of guild %s: %d message(s) scored", guild.id, total)


def build_discord_bot(
    service: ModerationService,
    settings: DiscordSettings,
    *,
    clock: Clock | None = None,
    **client_options: Any,
) -> ChatmodDiscordBot:
    """The composition root's entry point (``chatmod run``): a bot wired to ``service``."""
    return ChatmodDiscordBot(service, settings, clock=clock, **client_options)
