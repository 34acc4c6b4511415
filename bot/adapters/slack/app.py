"""The Slack adapter: a slack-bolt ``AsyncApp`` whose listeners acknowledge at once and hand the work
to the moderation service in supervised background tasks.

Delivery guarantees, layer by layer:
- ``verify.SlackSignatureCheck`` (bolt's verification middleware, stricter) checks
  ``X-Slack-Signature`` (HMAC-SHA256 over ``v0:{ts}:{body}``, 5-minute window,
  ``hmac.compare_digest``) and answers 401 before any listener or store is touched;
- ``process_before_response=True`` keeps bolt from firing its own untracked futures: our listeners only
  parse, spawn a task on ``TaskRunner`` and return, so the 200 goes out in milliseconds;
- a redelivery (``X-Slack-Retry-Num``, same ``event_id``) is dropped by ``RecentIds``; one that slips
  past it (e.g. after a restart) is a duplicate for the service (unique message-version key, per-case
  action marks), so it never produces a second action.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack import blocks, convert
from bot.adapters.slack.actions import SlackActions
from bot.adapters.slack.dedupe import RecentIds
from bot.adapters.slack.directory import SlackDirectory
from bot.adapters.slack.executor import Executor
from bot.adapters.slack.interactions import Interactions
from bot.adapters.slack.tasks import Overloaded, TaskRunner
from bot.adapters.slack.verify import SlackSignatureCheck
from bot.adapters.slack.webapi import Pacer, SlackApi, web_client
from bot.settings import SlackSettings
from moderation.domain import Platform
from moderation.errors import PlatformActionFailed
from moderation.service import ModerationService

log = logging.getLogger(__name__)

_REVIEW_ACTIONS = re.compile(r"^chatmod_(restore|delete|dismiss)$")


class SlackConfigError(ValueError):
    """The [slack] settings cannot run an app (missing token or signing secret)."""


class SlackAdapter:
    """Owns the bolt app, the Web API access, the background tasks and (optionally) Socket Mode."""

    def __init__(
        self,
        service: ModerationService,
        settings: SlackSettings,
        *,
        client: AsyncWebClient | None = None,
        admin_client: AsyncWebClient | None = None,
        pacer: Pacer | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_concurrency: int = 16,
        max_pending: int = 512,
        inline_reply_s: float = 2.0,
        recent_ids: RecentIds | None = None,
    ) -> None:
        signing_secret = settings.signing_secret.get_secret_value()
        if not settings.socket_mode and not signing_secret:
            raise SlackConfigError(
                "slack.signing_secret is empty: set CHATMOD_SLACK__SIGNING_SECRET (or enable socket_mode)"
            )
        if settings.socket_mode and not settings.app_token.get_secret_value():
            raise SlackConfigError("slack.socket_mode needs an app-level token: set CHATMOD_SLACK__APP_TOKEN")
        if client is None:
            token = settings.bot_token.get_secret_value()
            if not token:
                raise SlackConfigError("slack.bot_token is empty: set CHATMOD_SLACK__BOT_TOKEN (xoxb-…)")
            client = web_client(token)
        admin_token = settings.admin_user_token.get_secret_value()
        if admin_client is None and admin_token:
            admin_client = web_client(admin_token, base_url=client.base_url)

        self.service = service
        self.settings = settings
        self.api = SlackApi(client, admin_client, pacer)
        self.roles = convert.RoleConfig(
            moderator_user_ids=frozenset(settings.moderator_user_ids),
            admin_user_ids=frozenset(settings.admin_user_ids),
            moderator_usergroup=settings.moderator_usergroup,
        )
        self.directory = SlackDirectory(self.api, self.roles)
        self.actions = SlackActions(self.api, service.store, admin_user_ids=settings.admin_user_ids)
        service.register_actions(Platform.SLACK, self.actions)
        self.tasks = TaskRunner(max_concurrency=max_concurrency, max_pending=max_pending)
        self.recent = recent_ids or RecentIds()
        self.interactions = Interactions(
            service,
            self.api,
            self.directory,
            self.actions,
            self.tasks,
            Executor(service, now),
            inline_reply_s=inline_reply_s,
        )
        self._own_ids: set[str] = set()
        self._socket: Any = None
        self._stopped: asyncio.Event | None = None
        self.app = AsyncApp(
            name="chatmod",
            client=client,
            signing_secret=signing_secret,
            # Our verification runs in bolt's slot (before authorization), but never answers 500.
            request_verification_enabled=False,
            before_authorize=SlackSignatureCheck(signing_secret),
            process_before_response=True,
            logger=logging.getLogger("chatmod.slack.bolt"),
        )
        self._register()
        log.info(
            "slack adapter ready: mode=%s capabilities=%s",
            "socket" if settings.socket_mode else "http",
            self.actions.capabilities,
        )

    # ------------------------------------------------------------------ wiring

    def _register(self) -> None:
        app = self.app
        app.middleware(self._drop_redeliveries)
        app.event("message")(self._on_message)
        app.action(_REVIEW_ACTIONS)(self.interactions.on_review_click)
        app.action(blocks.APPEAL)(self.interactions.on_appeal_click)
        app.view(blocks.APPEAL_MODAL)(self.interactions.on_appeal_submit)
        app.command("/chatmod")(self.interactions.on_command)
        app.error(self._on_error)

    async def _drop_redeliveries(self, req: Any, body: dict[str, Any], next: Callable[[], Any]) -> Any:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not self.recent.first_time(event_id):
            retry = req.headers.get("x-slack-retry-num", ["-"])[0]
            reason = req.headers.get("x-slack-retry-reason", ["-"])[0]
            log.info("slack redelivery dropped: event_id=%s retry=%s reason=%s", event_id, retry, reason)
            return BoltResponse(status=200, body="")
        return await next()

    # ------------------------------------------------------------------ messages

    async def _on_message(self, body: dict[str, Any], context: Any) -> BoltResponse | None:
        inbound = convert.inbound_message(body)
        if inbound is None:
            return None
        bot_user_id = context.get("bot_user_id")
        if bot_user_id and bot_user_id not in self._own_ids:
            self._own_ids.add(bot_user_id)
            self.service.add_own_user_id(bot_user_id)
        try:
            self.tasks.spawn(f"slack-message-{inbound.event_id or inbound.ts}", self._moderate(inbound))
        except Overloaded as exc:
            # Refuse (non-200) so that Slack redelivers later, and let that redelivery through.
            log.error("slack overloaded (%s): event %s refused for redelivery", exc, inbound.event_id)
            if inbound.event_id:
                self.recent.forget(inbound.event_id)
            return BoltResponse(status=503, body="overloaded")
        return None

    async def _moderate(self, inbound: convert.InboundMessage) -> None:
        author = await self.directory.member(
            inbound.team_id,
            inbound.user_id,
            is_bot=inbound.is_bot,
            display_name=inbound.display_name,
            avatar_url=inbound.avatar_url,
        )
        outcome = await self.service.handle_message(convert.message_version(inbound, author))
        decision, case, score = outcome.decision, outcome.case, outcome.score
        if decision is None or case is None or outcome.duplicate or score is None:
            return
        if decision.alert_moderators and score.evidence:
            fired = {h.label for h in decision.hits}
            evidence = {k: v for k, v in score.evidence.items() if not fired or k in fired}
            try:
                await self.actions.attach_evidence(case, evidence)
            except PlatformActionFailed as exc:
                log.warning("case %s: could not add evidence to the review card: %s", case.id, exc)

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("slack listener error (%s): %s", body.get("type"), error, exc_info=error)

    # ------------------------------------------------------------------ lifecycle

    async def start_socket_mode(self) -> None:
        """Serve over Socket Mode (no public URL needed) until ``close()``: connects, then waits.

        slack_sdk's client reconnects on its own when the WebSocket drops; Socket Mode envelopes skip
        the signature check (the app-level token authenticated the connection instead).
        """
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        self._stopped = asyncio.Event()
        self._socket = AsyncSocketModeHandler(
            self.app, self.settings.app_token.get_secret_value(), web_client=self.api.bot
        )
        await self._socket.connect_async()
        log.info("slack socket mode connected")
        await self._stopped.wait()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop intake, drain in-flight work within ``timeout``, disconnect. Idempotent."""
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close_async()
        if self._stopped is not None:
            self._stopped.set()
        await self.tasks.close(timeout)


_ADAPTERS: WeakKeyDictionary[AsyncApp, SlackAdapter] = WeakKeyDictionary()


def build_slack_app(
    service: ModerationService,
    settings: SlackSettings,
    client: AsyncWebClient | None = None,
    **options: Any,
) -> AsyncApp:
    """The bolt app for ``settings`` over ``service``; its adapter (lifecycle) via ``adapter_for(app)``."""
    adapter = SlackAdapter(service, settings, client=client, **options)
    _ADAPTERS[adapter.app] = adapter
    return adapter.app


def adapter_for(app: AsyncApp) -> SlackAdapter:
    try:
        return _ADAPTERS[app]
    except KeyError:
        raise LookupError("this AsyncApp was not built by build_slack_app") from None
