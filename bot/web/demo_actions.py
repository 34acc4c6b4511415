"""``PlatformActions`` for the demo chat: the browser is the platform, with every capability.

hold = hide from others (author and moderators still see it, greyed); delete = remove for everyone;
timeout = mute the member for N seconds; restore = unhide; notify = a websocket message to the author.
Each action is idempotent (the service also applies each at most once per case).
"""

from __future__ import annotations

import logging
import time

from bot.web.hub import ChatHub
from moderation.domain import Appeal, AppealOutcome, Capabilities, Case, Member, Verdict
from moderation.ports import Notice
from moderation.service import rule_text

log = logging.getLogger(__name__)


class DemoActions:
    def __init__(self, hub: ChatHub) -> None:
        self._hub = hub

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def _message(self, case: Case):  # type: ignore[no-untyped-def]
        return self._hub.find(case.key.channel_id, case.key.message_id)

    async def _set_state(self, case: Case, state: str) -> None:
        msg = self._message(case)
        if msg is None:
            log.info("demo message for case %s is gone; %s skipped", case.id, state)
            return
        msg.case_id = case.id
        if state != "visible":
            msg.reason = rule_text(case.decision) or case.decision.reason
        if msg.state == state:
            return
        was_pending = msg.state == "pending"
        msg.state = state
        if not was_pending:  # a pending message is published once the decision is complete
            await self._hub.publish(msg)

    async def hold(self, case: Case) -> None:
        await self._set_state(case, "held")

    async def delete(self, case: Case) -> None:
        await self._set_state(case, "deleted")

    async def restore(self, case: Case) -> None:
        await self._set_state(case, "visible")

    async def timeout(self, case: Case, seconds: int) -> None:
        member = self._hub.members.get(case.author.user_id)
        if member is None:
            return
        member.muted_until = max(member.muted_until, time.monotonic() + seconds)
        await self._hub.send_to(
            member,
            {
                "type": "notice",
                "kind": "timeout",
                "seconds": seconds,
                "message": f"You are timed out for {seconds} seconds.",
            },
        )
        await self._hub.broadcast({"type": "members", "members": self._hub.online()})

    async def escalate(self, case: Case) -> None:
        await self._hub.queue_changed()

    async def notify_member(self, case: Case, notice: Notice) -> None:
        member = self._hub.members.get(case.author.user_id)
        if member is None:
            return
        verb = {"hold": "is held for review", "delete": "was removed", "timeout": "was removed"}.get(
            notice.action.value, f"was actioned ({notice.action.value})"
        )
        await self._hub.send_to(
            member,
            {
                "type": "notice",
                "kind": notice.action.value,
                "case_id": notice.case_id,
                "message_id": case.key.message_id,
                "channel": case.key.channel_id,
                "category": notice.category,
                "rule": notice.rule,
                "text": notice.text,
                "appealable": notice.appealable,
                "message": f"Your message in #{case.key.channel_id} {verb}: {notice.rule}",
            },
        )

    async def send_appeal_outcome(self, case: Case, appeal: Appeal) -> None:
        member = self._hub.members.get(appeal.member.user_id)
        if member is None:
            return
        granted = appeal.outcome is AppealOutcome.GRANTED
        text = "granted: your message is restored" if granted else "denied: the decision stands"
        await self._hub.send_to(
            member,
            {
                "type": "notice",
                "kind": "appeal_outcome",
                "case_id": case.id,
                "granted": granted,
                "message": f"Your appeal on case #{case.id} was {text}."
                + (f" Moderator: {appeal.message}" if appeal.message else ""),
            },
        )
        await self._hub.queue_changed()

    async def resolve_review(self, case: Case, verdict: Verdict, moderator: Member) -> None:
        await self._hub.queue_changed()

    async def alert_admins(self, server_id: str, message: str) -> None:
        await self._hub.to_moderators({"type": "alert", "message": message})
