"""The demo chat: a page per member (browser tab), a websocket per tab, every message moderated live.

The moderation itself is the real loop: ``ModerationService.handle_message`` with ``DemoActions`` as
the platform. Moderators (a toggle on the page) get the review queue — per-label scores and the words
that drove them — and the appeal queue, and decide them over the same websocket.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse

from bot.web.context import WebContext
from bot.web.dashboard import templates
from bot.web.hub import DEMO_SERVER, ChatHub, ChatMessage, DemoMember
from moderation.domain import Action, Member, MessageVersion, Platform, Role, Verdict
from moderation.errors import InvalidTransition, ModerationError, NotFound, PermissionDenied
from moderation.filters import MAX_MESSAGE_CHARS
from moderation.labels import LABEL_DESCRIPTIONS, LABELS
from moderation.service import ModerationService, rule_text

log = logging.getLogger(__name__)

#: The #kids channel's strict thresholds (review_at, act_at) for every label.
KIDS_TIERS = (0.30, 0.50)


async def setup_demo_policy(service: ModerationService) -> None:
    """#general review-first (the default), #kids strict automatic delete. Audited, done once per DB."""
    policy = await service.store.get_policy(Platform.DEMO, DEMO_SERVER)
    if "kids" in policy.channels:
        return
    admin = Member(Platform.DEMO, "chatmod-demo-setup", "demo setup", roles=frozenset({Role.ADMIN}))
    await service.set_auto_action(Platform.DEMO, DEMO_SERVER, admin, False, channel_id="general")
    await service.set_channel_action(Platform.DEMO, DEMO_SERVER, admin, "kids", Action.DELETE)
    await service.set_auto_action(Platform.DEMO, DEMO_SERVER, admin, True, channel_id="kids")
    for label in LABELS:
        await service.set_threshold(
            Platform.DEMO,
            DEMO_SERVER,
            admin,
            label=label,
            channel_id="kids",
            review_at=KIDS_TIERS[0],
            act_at=KIDS_TIERS[1],
        )


def build_demo_router(ctx: WebContext, hub: ChatHub) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    service = ctx.service
    tpl = templates()

    async def mod_state() -> dict[str, Any]:
        queue = []
        for i, case in enumerate(await service.review_queue(Platform.DEMO, DEMO_SERVER, limit=50)):
            evidence: Any = {}
            if i < 10 and ctx.explanations is not None:
                evidence = await ctx.explanations.for_case(
                    case.id, case.text, [h.label for h in case.decision.hits]
                )
            queue.append(
                {
                    "case_id": case.id,
                    "channel": case.key.channel_id,
                    "message_id": case.key.message_id,
                    "author": case.author.display_name or case.author.user_id,
                    "author_id": case.author.user_id,
                    "text": case.text,
                    "action": case.decision.action.value,
                    "reason": case.decision.reason,
                    "rule": rule_text(case.decision),
                    "category": case.decision.category,
                    "scores": {k: round(float(case.scores.get(k, 0.0)), 4) for k in ctx.labels},
                    "hits": [
                        {
                            "label": h.label,
                            "score": round(h.score, 4),
                            "tier": h.tier,
                            "threshold": h.threshold,
                        }
                        for h in case.decision.hits
                    ],
                    "evidence": {k: [[w, round(d, 3)] for w, d in v] for k, v in evidence.items()},
                    "model_version": case.decision.model_version,
                    "at": case.decided_at.isoformat(),
                }
            )
        appeals = []
        for a in await service.open_appeals(Platform.DEMO, DEMO_SERVER):
            try:
                case = await service.store.get_case(a.case_id)
            except NotFound:
                continue
            appeals.append(
                {
                    "appeal_id": a.id,
                    "case_id": a.case_id,
                    "member": a.member.display_name or a.member.user_id,
                    "appeal_text": a.text,
                    "text": case.text,
                    "action": case.decision.action.value,
                    "rule": rule_text(case.decision),
                    "scores": {k: round(float(case.scores.get(k, 0.0)), 4) for k in ctx.labels},
                }
            )
        return {"type": "modstate", "queue": queue, "appeals": appeals, "labels": list(ctx.labels)}

    async def push_mod_state() -> None:
        if not any(m.moderator and m.sockets for m in hub.members.values()):
            return
        await hub.to_moderators(await mod_state())

    # Queue refreshes run off the message path (an explanation costs one model row per word) and
    # coalesce: many changes while one refresh runs cause one more refresh, not many.
    refresh: dict[str, Any] = {"task": None, "dirty": False}

    async def refresh_loop() -> None:
        while refresh["dirty"]:
            refresh["dirty"] = False
            try:
                await push_mod_state()
            except Exception:
                log.exception("could not refresh the moderators' queues")

    async def queue_changed() -> None:
        refresh["dirty"] = True
        task = refresh["task"]
        if task is None or task.done():
            refresh["task"] = asyncio.get_running_loop().create_task(refresh_loop())

    hub.on_queue_change = queue_changed

    def message_for_case(case_id: int) -> ChatMessage | None:
        return next((m for m in hub.by_id.values() if m.case_id == case_id), None)

    async def error(member: DemoMember, message: str) -> None:
        await hub.send_to(member, {"type": "error", "message": message})

    async def on_send(member: DemoMember, data: dict[str, Any]) -> None:
        channel = str(data.get("channel", ""))
        text = data.get("text")
        if channel not in hub.channels:
            return await error(member, f"unknown channel {channel[:40]!r}")
        if not isinstance(text, str) or not text.strip():
            return None
        if len(text) > MAX_MESSAGE_CHARS:
            return await error(
                member, f"message too long: {len(text)} characters (limit {MAX_MESSAGE_CHARS})"
            )
        muted = member.muted_for()
        if muted > 0:
            return await error(member, f"You are timed out for {muted:.0f} more seconds.")
        now = ctx.clock.now()
        msg = hub.new_message(channel, member, text, now)
        version = MessageVersion(
            Platform.DEMO, DEMO_SERVER, channel, msg.id, member.member(), text, now, channel_name=channel
        )
        try:
            outcome = await service.handle_message(version)
        except ModerationError:
            log.exception("moderation failed for demo message %s", msg.id)
            msg.state, msg.reason = "held", "moderation is unavailable right now"
        else:
            if outcome.case is not None:
                msg.case_id = outcome.case.id
            if msg.state == "pending":
                msg.state = "visible"
        await hub.publish(msg)
        if msg.state != "visible":
            await queue_changed()
        return None

    async def on_appeal(member: DemoMember, data: dict[str, Any]) -> None:
        try:
            case_id = int(data.get("case_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return await error(member, "appeal: case_id must be a number")
        text = str(data.get("text") or "").strip() or "Please review this again."
        try:
            appeal = await service.submit_appeal(case_id, member.member(), text[:2000])
        except (PermissionDenied, InvalidTransition, NotFound) as exc:
            return await error(member, f"appeal not accepted: {exc}")
        msg = message_for_case(case_id)
        if msg is not None:
            msg.appealed = True
            if msg.state != "deleted":
                await hub.send_to(member, {"type": "message", "message": hub.view(msg, member)})
        await hub.send_to(member, {"type": "appeal_submitted", "case_id": case_id, "appeal_id": appeal.id})
        await queue_changed()
        return None

    async def on_verdict(member: DemoMember, data: dict[str, Any]) -> None:
        try:
            case_id = int(data.get("case_id"))  # type: ignore[arg-type]
            verdict = Verdict(str(data.get("verdict")))
        except (TypeError, ValueError):
            return await error(member, "verdict: bad case_id or verdict")
        try:
            await service.apply_override(case_id, member.member(), verdict)
        except (PermissionDenied, NotFound, InvalidTransition) as exc:
            return await error(member, f"verdict not applied: {exc}")
        await queue_changed()
        return None

    async def on_decide_appeal(member: DemoMember, data: dict[str, Any]) -> None:
        try:
            appeal_id = int(data.get("appeal_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return await error(member, "appeal decision: bad appeal_id")
        try:
            await service.decide_appeal(
                appeal_id, member.member(), bool(data.get("granted")), str(data.get("message") or "")[:500]
            )
        except (PermissionDenied, NotFound, InvalidTransition) as exc:
            return await error(member, f"appeal decision not applied: {exc}")
        await queue_changed()
        return None

    async def on_mod(member: DemoMember, data: dict[str, Any]) -> None:
        member.moderator = bool(data.get("on"))
        await hub.send_to(member, {"type": "history", "history": hub.history_for(member), "me": me(member)})
        if member.moderator:
            await hub.send_to(member, await mod_state())
        await hub.broadcast({"type": "members", "members": hub.online()})

    handlers = {
        "send": on_send,
        "appeal": on_appeal,
        "verdict": on_verdict,
        "decide_appeal": on_decide_appeal,
        "mod": on_mod,
    }

    def me(member: DemoMember) -> dict[str, Any]:
        return {"id": member.user_id, "name": member.name, "moderator": member.moderator}

    @router.get("/", response_class=HTMLResponse)
    async def chat_page(request: Request) -> HTMLResponse:
        return tpl.TemplateResponse(
            request,
            "chat.html",
            {
                "channels": list(hub.channels.values()),
                "labels": LABELS,
                "descriptions": LABEL_DESCRIPTIONS,
                "model_version": ctx.model_version,
            },
        )

    @router.websocket("/ws")
    async def chat_socket(ws: WebSocket) -> None:
        name = (ws.query_params.get("name") or "").strip()[:32]
        await ws.accept()
        if not name:
            await ws.send_json({"type": "error", "message": "a name is required"})
            await ws.close(code=1008)
            return
        member = hub.join(name, ws)
        hub.send_socket(
            ws,
            {
                "type": "hello",
                "me": me(member),
                "channels": [{"id": c.id, "topic": c.topic} for c in hub.channels.values()],
                "history": hub.history_for(member),
                "dashboard": f"/dashboard?platform={Platform.DEMO.value}&server={DEMO_SERVER}",
                "model_version": ctx.model_version,
            },
        )
        await hub.broadcast({"type": "members", "members": hub.online()})
        try:
            while True:
                data = await ws.receive_json()
                if not isinstance(data, dict):
                    await error(member, "expected a JSON object")
                    continue
                handler = handlers.get(str(data.get("type")))
                if handler is None:
                    await error(member, f"unknown request type {str(data.get('type'))[:30]!r}")
                    continue
                try:
                    await handler(member, data)
                except ModerationError as exc:
                    log.warning("demo request %s failed: %s", data.get("type"), exc)
                    await error(member, str(exc))
        except WebSocketDisconnect:
            pass
        except (ValueError, KeyError):  # not JSON, or a binary frame
            log.info("demo socket of %s sent invalid JSON; closing", member.user_id)
        finally:
            hub.leave(member, ws)
            await hub.broadcast({"type": "members", "members": hub.online()})

    return router
