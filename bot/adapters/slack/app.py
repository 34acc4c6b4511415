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

from bot.adapters.slack import blocks, commands, convert
from bot.adapters.slack.actions import ReviewPost, SlackActions
from bot.adapters.slack.dedupe import RecentIds
from bot.adapters.slack.directory import SlackDirectory
from bot.adapters.slack.tasks import Overloaded, TaskRunner
from bot.adapters.slack.verify import SlackSignatureCheck
from bot.adapters.slack.webapi import Pacer, SlackApi, web_client
from bot.settings import SlackSettings
from moderation.domain import Platform
from moderation.errors import InvalidTransition, NotFound, PermissionDenied, PlatformActionFailed
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
        self.executor = commands.Executor(service, now)
        self._inline_reply_s = inline_reply_s
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
        app.action(_REVIEW_ACTIONS)(self._on_review_click)
        app.action(blocks.APPEAL)(self._on_appeal_click)
        app.view(blocks.APPEAL_MODAL)(self._on_appeal_submit)
        app.command("/chatmod")(self._on_command)
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

    # ------------------------------------------------------------------ review buttons

    async def _on_review_click(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self._spawn("slack-review-click", self._review_click(body))

    async def _review_click(self, body: dict[str, Any]) -> None:
        click = convert.button_click(body)
        actor = convert.actor_from_interaction(body)
        if click is None:
            return
        verdict = blocks.REVIEW_BUTTONS[click.action_id]
        case_id = convert.parse_case_id(click.value)
        # Re-check the clicker now (fresh group membership): the button is visible to the whole channel.
        moderator = await self.directory.member(actor.team_id, actor.user_id, max_age=30)
        try:
            case = await self.service.store.get_case(case_id) if case_id is not None else None
        except NotFound:
            case = None
        if case is None or case.key.platform is not Platform.SLACK or case.server_id != actor.team_id:
            await self._tell(click.channel_id, actor.user_id, f"Case {click.value} not found.")
            return
        if click.channel_id and click.message_ts:
            known = self.actions.posts.get(case.id)
            self.actions.posts.put(
                case.id, ReviewPost(click.channel_id, click.message_ts, known.evidence if known else {})
            )
        if case.status == "resolved":
            await self._tell(
                click.channel_id,
                actor.user_id,
                f"Case #{case.id} is already resolved ({case.verdict.value if case.verdict else '?'}); "
                f"use `/chatmod override {case.id} …` to change the verdict.",
            )
            return
        try:
            await self.service.apply_override(case.id, moderator, verdict)
        except PermissionDenied:  # the service has audited the refusal
            await self._tell(click.channel_id, actor.user_id, "Only chatmod moderators can review cases.")
        else:
            log.info("case %s: %s by slack:%s via button", case.id, verdict.value, actor.user_id)

    async def _tell(self, channel: str | None, user_id: str, text: str) -> None:
        try:
            if channel:
                await self.api.call("reply", "chat.postEphemeral", channel=channel, user=user_id, text=text)
            else:
                await self.api.call("reply", "chat.postMessage", channel=user_id, text=text)
        except PlatformActionFailed as exc:
            log.warning("could not tell %s: %s", user_id, exc)

    # ------------------------------------------------------------------ appeals

    async def _on_appeal_click(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        click = convert.button_click(body)
        case_id = convert.parse_case_id(click.value) if click else None
        if click is None or case_id is None or not click.trigger_id:
            return
        trigger_id = click.trigger_id
        self._spawn(
            "slack-appeal-open",
            self.api.call("appeal", "views.open", trigger_id=trigger_id, view=blocks.appeal_modal(case_id)),
        )

    async def _on_appeal_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = convert.actor_from_interaction(body)
        case_id = convert.parse_case_id(view.get("private_metadata", ""))
        values = view.get("state", {}).get("values", {})
        text = ((values.get(blocks.APPEAL_INPUT_BLOCK) or {}).get(blocks.APPEAL_INPUT_ACTION) or {}).get(
            "value"
        )
        if case_id is None or not (text or "").strip():
            await ack(response_action="errors", errors={blocks.APPEAL_INPUT_BLOCK: "Say why, please."})
            return
        member = await self.directory.member(actor.team_id, actor.user_id)
        try:
            case = await self.service.store.get_case(case_id)
            if case.server_id != actor.team_id:
                raise NotFound("case", case_id)
            appeal = await self.service.submit_appeal(case_id, member, text or "")
        except PermissionDenied:
            await ack(
                response_action="errors",
                errors={blocks.APPEAL_INPUT_BLOCK: "Only the author of the message can appeal it."},
            )
            return
        except (InvalidTransition, NotFound) as exc:
            await ack(response_action="errors", errors={blocks.APPEAL_INPUT_BLOCK: str(exc)[:150]})
            return
        await ack()
        self._spawn(
            "slack-appeal-ack",
            self._tell(None, actor.user_id, f"Appeal #{appeal.id} on case #{case_id} submitted."),
        )

    # ------------------------------------------------------------------ /chatmod

    async def _on_command(self, ack: Any, body: dict[str, Any], respond: Any) -> None:
        actor = convert.actor_from_interaction(body)
        try:
            command = commands.parse(body.get("text", ""))
        except commands.UsageError as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def work() -> None:
            try:
                member = await self.directory.member(actor.team_id, actor.user_id, max_age=30)
                text = await self.executor.run(command, member, actor.team_id)
            except Exception:
                log.exception("/chatmod %s failed", command.name)
                text = ":x: Something went wrong; the error is in chatmod's log."
            if not answer.done():
                answer.set_result(text)
            else:  # took longer than the inline budget: reply through response_url
                await respond(response_type="ephemeral", text=text)

        try:
            self.tasks.spawn(f"slack-command-{command.name}", work())
        except Overloaded:
            await ack(response_type="ephemeral", text="chatmod is busy; try again in a minute.")
            return
        try:
            text = await asyncio.wait_for(asyncio.shield(answer), self._inline_reply_s)
        except TimeoutError:
            text = answer.result() if not answer.cancel() else "Working on it…"
        await ack(response_type="ephemeral", text=text)

    # ------------------------------------------------------------------ plumbing

    def _spawn(self, name: str, coro: Any) -> None:
        try:
            self.tasks.spawn(name, coro)
        except Overloaded as exc:
            log.error("slack overloaded: %s dropped (%s)", name, exc)

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
