"""Interactivity listeners: review-card buttons, the Appeal button and modal, and ``/chatmod``.

Each listener acknowledges within Slack's 3 seconds. Work runs in supervised tasks; where Slack lets
the acknowledgement carry an answer (a slash-command reply, modal validation errors), the listener
waits for it up to ``inline_reply_s`` and otherwise answers later (``response_url`` or a DM).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bot.adapters.slack import blocks, commands, convert
from bot.adapters.slack.actions import ReviewPost, SlackActions
from bot.adapters.slack.directory import SlackDirectory
from bot.adapters.slack.executor import Executor
from bot.adapters.slack.tasks import Overloaded, TaskRunner
from bot.adapters.slack.webapi import SlackApi
from moderation.domain import Case, Platform
from moderation.errors import InvalidTransition, NotFound, PermissionDenied, PlatformActionFailed
from moderation.service import ModerationService

log = logging.getLogger(__name__)

#: How fresh a clicker's user-group membership must be for a privileged action.
PRIVILEGED_MAX_AGE_S = 30.0


class Interactions:
    def __init__(
        self,
        service: ModerationService,
        api: SlackApi,
        directory: SlackDirectory,
        actions: SlackActions,
        tasks: TaskRunner,
        executor: Executor,
        *,
        inline_reply_s: float = 2.0,
    ) -> None:
        self._service = service
        self._api = api
        self._directory = directory
        self._actions = actions
        self._tasks = tasks
        self._executor = executor
        self._inline_reply_s = inline_reply_s

    # ------------------------------------------------------------------ review buttons

    async def on_review_click(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self._spawn("slack-review-click", self._review_click(body))

    async def _review_click(self, body: dict[str, Any]) -> None:
        click = convert.button_click(body)
        if click is None:
            return
        actor = convert.actor_from_interaction(body)
        verdict = blocks.REVIEW_BUTTONS[click.action_id]
        # Re-check the clicker now: the buttons are visible to everyone in the review channel.
        moderator = await self._directory.member(actor.team_id, actor.user_id, max_age=PRIVILEGED_MAX_AGE_S)
        case = await self._case_in_team(convert.parse_case_id(click.value), actor.team_id)
        if case is None:
            await self.tell(click.channel_id, actor.user_id, f"Case {click.value} not found.")
            return
        if click.channel_id and click.message_ts:  # where the card is, even if this process did not post it
            known = self._actions.posts.get(case.id)
            evidence = known.evidence if known else {}
            self._actions.posts.put(case.id, ReviewPost(click.channel_id, click.message_ts, evidence))
        if case.status == "resolved":
            await self.tell(
                click.channel_id,
                actor.user_id,
                f"Case #{case.id} is already resolved ({case.verdict.value if case.verdict else '?'}); "
                f"use `/chatmod override {case.id} …` to change the verdict.",
            )
            return
        try:
            await self._service.apply_override(case.id, moderator, verdict)
        except PermissionDenied:  # the service has audited the refusal
            await self.tell(click.channel_id, actor.user_id, "Only chatmod moderators can review cases.")
        else:
            log.info("case %s: %s by slack:%s via button", case.id, verdict.value, actor.user_id)

    async def _case_in_team(self, case_id: int | None, team_id: str) -> Case | None:
        if case_id is None:
            return None
        try:
            case = await self._service.store.get_case(case_id)
        except NotFound:
            return None
        if case.key.platform is not Platform.SLACK or case.server_id != team_id:
            return None  # another workspace's case is not this clicker's business
        return case

    async def tell(self, channel: str | None, user_id: str, text: str) -> None:
        """A private reply: ephemeral in ``channel``, or a DM when there is no channel."""
        try:
            if channel:
                await self._api.call("reply", "chat.postEphemeral", channel=channel, user=user_id, text=text)
            else:
                await self._api.call("reply", "chat.postMessage", channel=user_id, text=text)
        except PlatformActionFailed as exc:
            log.warning("could not tell %s: %s", user_id, exc)

    # ------------------------------------------------------------------ appeals

    async def on_appeal_click(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        click = convert.button_click(body)
        case_id = convert.parse_case_id(click.value) if click else None
        if click is None or case_id is None or not click.trigger_id:
            return
        # trigger_id expires 3 s after the click: open the modal right away (still off the ack path).
        modal = blocks.appeal_modal(case_id)
        self._spawn(
            "slack-appeal-open",
            self._api.call("appeal", "views.open", trigger_id=click.trigger_id, view=modal),
        )

    async def on_appeal_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = convert.actor_from_interaction(body)
        case_id = convert.parse_case_id(view.get("private_metadata", ""))
        values = view.get("state", {}).get("values", {})
        field = (values.get(blocks.APPEAL_INPUT_BLOCK) or {}).get(blocks.APPEAL_INPUT_ACTION) or {}
        text = (field.get("value") or "").strip()
        if case_id is None or not text:
            await ack(response_action="errors", errors={blocks.APPEAL_INPUT_BLOCK: "Say why, please."})
            return

        async def submit() -> str:
            """'' when submitted, else the reason it was refused."""
            member = await self._directory.member(actor.team_id, actor.user_id)
            case = await self._case_in_team(case_id, actor.team_id)
            if case is None:
                return f"Case {case_id} not found."
            try:
                appeal = await self._service.submit_appeal(case.id, member, text)
            except PermissionDenied:
                return "Only the author of the message can appeal it."
            except InvalidTransition as exc:
                return str(exc)
            await self.tell(None, actor.user_id, f"Appeal #{appeal.id} on case #{case.id} submitted.")
            return ""

        async def late(error: str) -> None:
            if error:
                await self.tell(
                    None, actor.user_id, f"Your appeal on case #{case_id} was not accepted: {error}"
                )

        try:
            error = await self._answer_within("slack-appeal-submit", submit, late)
        except Overloaded:
            error = "chatmod is busy; try again in a minute."
        if error:
            await ack(response_action="errors", errors={blocks.APPEAL_INPUT_BLOCK: error[:150]})
        else:
            await ack()  # closes the modal (answered later by DM if it took longer)

    # ------------------------------------------------------------------ /chatmod

    async def on_command(self, ack: Any, body: dict[str, Any], respond: Any) -> None:
        actor = convert.actor_from_interaction(body)
        try:
            command = commands.parse(body.get("text", ""))
        except commands.UsageError as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return

        async def run() -> str:
            member = await self._directory.member(actor.team_id, actor.user_id, max_age=PRIVILEGED_MAX_AGE_S)
            return await self._executor.run(command, member, actor.team_id)

        async def late(text: str) -> None:
            await respond(response_type="ephemeral", text=text)

        try:
            text = await self._answer_within(f"slack-command-{command.name}", run, late)
        except Overloaded:
            text = "chatmod is busy; try again in a minute."
        await ack(response_type="ephemeral", text=text if text is not None else "Working on it…")

    # ------------------------------------------------------------------ plumbing

    async def _answer_within(
        self, name: str, work: Callable[[], Awaitable[str]], late: Callable[[str], Awaitable[None]]
    ) -> str | None:
        """Run ``work`` as a supervised task; its answer if ready within the inline budget, else None
        (and ``late`` receives the answer when it comes). Raises Overloaded if no task can start."""
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def supervised() -> None:
            try:
                text = await work()
            except Exception:
                log.exception("%s failed", name)
                text = ":x: Something went wrong; the error is in chatmod's log."
            if not answer.done():
                answer.set_result(text)
            else:
                await late(text)

        self._tasks.spawn(name, supervised())
        try:
            return await asyncio.wait_for(asyncio.shield(answer), self._inline_reply_s)
        except TimeoutError:
            # Single-threaded: either the answer landed just now, or cancelling hands it to ``late``.
            return answer.result() if not answer.cancel() else None

    def _spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            self._tasks.spawn(name, coro)
        except Overloaded as exc:
            log.error("slack overloaded: %s dropped (%s)", name, exc)
