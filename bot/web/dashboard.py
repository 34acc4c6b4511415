"""The moderators' and admins' dashboard: server-rendered (Jinja2, autoescaped), inline-SVG charts.

Every page needs an admin login (the configured admin token → a signed session cookie); every change is
a POST carrying the session's CSRF token, goes through ``ModerationService`` (validated, audited) and
redirects back with a message.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bot.web.app import TEMPLATE_DIR
from bot.web.auth import SESSION_COOKIE, SESSION_SECONDS, AdminAuth, AdminSession
from bot.web.charts import chart_bundle, is_automatic, precision_of, window_for
from bot.web.context import WebContext
from moderation.domain import Action, AuditEntry, Case, Member, Platform, Role, Verdict
from moderation.errors import ModerationError, NotFound, ValidationError
from moderation.labels import LABEL_DESCRIPTIONS
from moderation.policy import CHANNEL_ACTIONS, Tiers

log = logging.getLogger(__name__)

VERDICTS = (Verdict.RESTORE, Verdict.DELETE, Verdict.TIMEOUT, Verdict.DISMISS)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_safe(value: object) -> str:
    """Neutralise spreadsheet formula injection: a cell starting with = + - @ or a control char is quoted."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def parse_threshold(raw: str | None, field: str) -> float | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(field, f"not a number: {raw[:20]!r}") from None
    if value != value or not 0.0 <= value <= 1.0:
        raise ValidationError(field, f"must be in [0, 1], got {raw[:20]}")
    return value


def templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(TEMPLATE_DIR))
    t.env.globals["LABEL_DESCRIPTIONS"] = LABEL_DESCRIPTIONS
    t.env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.0f}%"
    t.env.filters["score"] = lambda v: f"{float(v):.2f}"
    t.env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M:%S") if d else ""
    return t


def build_dashboard_router(ctx: WebContext) -> APIRouter:
    router = APIRouter(prefix="/dashboard", include_in_schema=False)
    auth = AdminAuth(ctx.admin_token)
    tpl = templates()
    service = ctx.service
    store = service.store

    # ------------------------------------------------------------------ helpers

    def session_of(request: Request) -> AdminSession | None:
        return auth.session(request.cookies.get(SESSION_COOKIE))

    def server_of(request: Request, form: Mapping[str, Any] | None = None) -> tuple[Platform, str]:
        src: Mapping[str, Any] = form if form is not None else request.query_params
        platform_raw = str(src.get("platform") or ctx.default_server[0].value)
        server = str(src.get("server") or ctx.default_server[1])[:64]
        try:
            platform = Platform(platform_raw)
        except ValueError:
            raise HTTPException(400, f"unknown platform {platform_raw[:20]!r}") from None
        return platform, server

    def admin_member(platform: Platform, sess: AdminSession) -> Member:
        return Member(
            platform,
            f"dashboard:{sess.name}",
            display_name=sess.name,
            roles=frozenset({Role.MEMBER, Role.MODERATOR, Role.ADMIN}),
        )

    def page(
        request: Request, name: str, sess: AdminSession, status_code: int = 200, **data: Any
    ) -> HTMLResponse:
        platform, server = server_of(request)
        data.setdefault("platform", platform.value)
        data.setdefault("server", server)
        return tpl.TemplateResponse(
            request,
            name,
            {
                "session": sess,
                "csrf": sess.csrf,
                "qs": urlencode({"platform": data["platform"], "server": data["server"]}),
                "msg": request.query_params.get("msg", ""),
                "error": data.pop("error", request.query_params.get("error", "")),
                "platforms": [p.value for p in Platform],
                "model_version": ctx.model_version,
                **data,
            },
            status_code=status_code,
        )

    def login_redirect(request: Request) -> RedirectResponse:
        nxt = request.url.path + (("?" + request.url.query) if request.url.query else "")
        return RedirectResponse("/dashboard/login?" + urlencode({"next": nxt}), status_code=303)

    async def posted(request: Request) -> tuple[AdminSession, Mapping[str, Any]]:
        sess = session_of(request)
        if sess is None:
            raise HTTPException(401, "log in first")
        form = await request.form()
        if form.get("csrf") != sess.csrf:
            raise HTTPException(403, "invalid or missing CSRF token")
        return sess, form

    def back(path: str, platform: Platform, server: str, **extra: str) -> RedirectResponse:
        return RedirectResponse(
            f"{path}?" + urlencode({"platform": platform.value, "server": server, **extra}), status_code=303
        )

    async def case_view(case: Case, explain: bool) -> dict[str, Any]:
        labels = [h.label for h in case.decision.hits]
        evidence: Mapping[str, Any] = {}
        if explain and ctx.explanations is not None:
            evidence = await ctx.explanations.for_case(case.id, case.text, labels)
        return {"case": case, "evidence": evidence, "automatic": is_automatic(case)}

    # ------------------------------------------------------------------ login

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> HTMLResponse:
        return tpl.TemplateResponse(
            request,
            "login.html",
            {"enabled": auth.enabled, "next": request.query_params.get("next", "/dashboard"), "error": ""},
        )

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await request.form()
        nxt = str(form.get("next") or "/dashboard")
        if not nxt.startswith("/dashboard"):
            nxt = "/dashboard"
        if not auth.check_token(str(form.get("token") or "")):
            log.warning("dashboard login failed from %s", request.client.host if request.client else "?")
            return tpl.TemplateResponse(
                request,
                "login.html",
                {"enabled": auth.enabled, "next": nxt, "error": "Wrong admin token."},
                status_code=401,
            )
        name = str(form.get("name") or "admin")
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(
            SESSION_COOKIE, auth.issue(name), max_age=SESSION_SECONDS, httponly=True, samesite="strict"
        )
        _platform, server = ctx.default_server
        await service.store.append(
            AuditEntry(ctx.clock.now(), f"dashboard:{name[:32]}", "dashboard.login", server, server, {})
        )
        return resp

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        await posted(request)
        resp = RedirectResponse("/dashboard/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    # ------------------------------------------------------------------ overview

    @router.get("", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        sess = session_of(request)
        if sess is None:
            return login_redirect(request)
        platform, server = server_of(request)
        try:
            hours = min(24 * 30, max(0.25, float(request.query_params.get("hours", "1"))))
        except ValueError:
            hours = 1.0
        now = ctx.clock.now()
        start, width = window_for(hours, now)
        buckets = await ctx.scorer.log.stats(start, now + width / 1000, width)
        cases = await store.list_cases(platform, server, limit=20_000)
        await ctx.sample_queues()  # the chart ends at "now", whatever the sampling interval
        charts = chart_bundle(buckets, cases, ctx.queue_samples, ctx.labels, start, width, now)
        open_cases = [c for c in cases if c.status == "open"]
        appeals = await service.open_appeals(platform, server)
        cache = ctx.scorer.cache
        lookups = cache.hits + cache.misses
        stats = {
            "predictions": sum(b.count for b in buckets),
            "cache_rate": (cache.hits / lookups) if lookups else None,
            "open_cases": len(open_cases),
            "open_appeals": len(appeals),
            "auto_precision": precision_of(c for c in cases if is_automatic(c)),
            "hold_precision": precision_of(c for c in cases if c.decision.action is Action.HOLD),
            "scoring_depth": ctx.scoring_depth(),
        }
        return page(request, "overview.html", sess, charts=charts, stats=stats, hours=hours)

    # ------------------------------------------------------------------ policy

    @router.get("/policy", response_class=HTMLResponse)
    async def policy_page(request: Request) -> Response:
        sess = session_of(request)
        if sess is None:
            return login_redirect(request)
        platform, server = server_of(request)
        channel = request.query_params.get("channel", "")[:64]
        return await render_policy(request, sess, platform, server, channel)

    async def render_policy(
        request: Request,
        sess: AdminSession,
        platform: Platform,
        server: str,
        channel: str,
        error: str = "",
        status_code: int = 200,
    ) -> Response:
        policy = await store.get_policy(platform, server)
        return page(
            request,
            "policy.html",
            sess,
            status_code=status_code,
            platform=platform.value,
            server=server,
            policy=policy,
            labels=ctx.labels,
            channel=channel,
            effective=policy.for_channel(channel) if channel else None,
            actions=[a.value for a in CHANNEL_ACTIONS],
            error=error,
        )

    async def policy_change(request: Request, apply: Any) -> Response:
        sess, form = await posted(request)
        platform, server = server_of(request, form)
        admin = admin_member(platform, sess)
        channel = str(form.get("channel") or "").strip()[:64] or None
        try:
            what = await apply(form, platform, server, admin, channel)
        except (ValidationError, ModerationError) as exc:
            field = getattr(exc, "field", "")
            message = f"{field}: {exc.message}" if isinstance(exc, ValidationError) else str(exc)
            log.info("dashboard policy change rejected: %s", message)
            return await render_policy(request, sess, platform, server, channel or "", message, 400)
        return back("/dashboard/policy", platform, server, channel=channel or "", msg=what)

    @router.post("/policy/thresholds")
    async def save_thresholds(request: Request) -> Response:
        async def apply(
            form: Mapping[str, Any], platform: Platform, server: str, admin: Member, channel: str | None
        ) -> str:
            policy = await store.get_policy(platform, server)
            current = policy.for_channel(channel).thresholds if channel else policy.thresholds
            changes: dict[str, Tiers] = {}
            for label in ctx.labels:
                review = parse_threshold(form.get(f"review_{label}"), f"{label}.review_at")
                act = parse_threshold(form.get(f"act_{label}"), f"{label}.act_at")
                cur = current[label]
                tiers = Tiers(cur.review_at if review is None else review, cur.act_at if act is None else act)
                if tiers != cur:
                    changes[label] = tiers  # validated (Tiers raises ThresholdError) before anything is saved
            for label, tiers in changes.items():
                await service.set_threshold(
                    platform,
                    server,
                    admin,
                    label=label,
                    channel_id=channel,
                    review_at=tiers.review_at,
                    act_at=tiers.act_at,
                )
            where = f"#{channel}" if channel else "server defaults"
            return f"Saved {len(changes)} threshold change(s) for {where}." if changes else "No changes."

        return await policy_change(request, apply)

    @router.post("/policy/channel")
    async def save_channel(request: Request) -> Response:
        async def apply(
            form: Mapping[str, Any], platform: Platform, server: str, admin: Member, channel: str | None
        ) -> str:
            action_raw = str(form.get("action") or "")
            auto_raw = str(form.get("auto") or "")
            if action_raw:
                try:
                    action = Action(action_raw)
                except ValueError:
                    raise ValidationError("action", f"unknown action {action_raw[:20]!r}") from None
                await service.set_channel_action(platform, server, admin, channel, action)
            if auto_raw in ("on", "off"):
                await service.set_auto_action(platform, server, admin, auto_raw == "on", channel_id=channel)
            elif auto_raw:
                raise ValidationError("auto", "must be on or off")
            return "Saved."

        return await policy_change(request, apply)

    @router.post("/policy/exempt")
    async def save_exempt(request: Request) -> Response:
        async def apply(
            form: Mapping[str, Any], platform: Platform, server: str, admin: Member, channel: str | None
        ) -> str:
            target = str(form.get("target") or "").strip()[:64]
            if not target:
                raise ValidationError("target", "give a role or channel id")
            exempt = form.get("op") != "remove"
            await service.set_exempt(
                platform, server, admin, kind=str(form.get("kind")), target_id=target, exempt=exempt
            )
            return f"{'Exempted' if exempt else 'Un-exempted'} {form.get('kind')} {target}."

        return await policy_change(request, apply)

    @router.post("/policy/allow")
    async def save_allow(request: Request) -> Response:
        async def apply(
            form: Mapping[str, Any], platform: Platform, server: str, admin: Member, channel: str | None
        ) -> str:
            term = str(form.get("term") or "")
            allowed = form.get("op") != "remove"
            await service.set_allow_term(platform, server, admin, term, allowed)
            return f"{'Allow-listed' if allowed else 'Removed'} term."

        return await policy_change(request, apply)

    @router.post("/policy/ladder")
    async def save_ladder(request: Request) -> Response:
        async def apply(
            form: Mapping[str, Any], platform: Platform, server: str, admin: Member, channel: str | None
        ) -> str:
            try:
                strikes = int(str(form.get("strikes")))
                window = float(str(form.get("window_days")))
                minutes = float(str(form.get("timeout_minutes")))
            except ValueError:
                raise ValidationError("ladder", "strikes, window and timeout must be numbers") from None
            if not 0 < window <= 3650:
                raise ValidationError("ladder.window_days", "must be within (0, 3650]")
            await service.set_ladder(
                platform, server, admin, strikes=strikes, window_days=window, timeout_minutes=minutes
            )
            return "Saved strike ladder."

        return await policy_change(request, apply)

    # ------------------------------------------------------------------ queues

    @router.get("/queue", response_class=HTMLResponse)
    async def queue(request: Request) -> Response:
        sess = session_of(request)
        if sess is None:
            return login_redirect(request)
        platform, server = server_of(request)
        cases = await service.review_queue(platform, server, limit=50)
        views = [await case_view(c, i < 10) for i, c in enumerate(cases)]
        return page(
            request, "queue.html", sess, cases=views, verdicts=[v.value for v in VERDICTS], labels=ctx.labels
        )

    @router.post("/cases/{case_id}/verdict")
    async def verdict(request: Request, case_id: int) -> Response:
        sess, form = await posted(request)
        platform, server = server_of(request, form)
        try:
            v = Verdict(str(form.get("verdict")))
            await service.apply_override(
                case_id, admin_member(platform, sess), v, note=str(form.get("note") or "")[:500]
            )
        except ValueError:
            return back("/dashboard/queue", platform, server, error="unknown verdict")
        except NotFound:
            return back("/dashboard/queue", platform, server, error=f"case {case_id} not found")
        except ModerationError as exc:  # e.g. no platform actions for that platform in this process
            log.warning("dashboard verdict on case %s failed: %s", case_id, exc)
            return back("/dashboard/queue", platform, server, error=f"case {case_id}: {exc}")
        return back(
            str(form.get("return") or "/dashboard/queue"), platform, server, msg=f"Case {case_id}: {v.value}."
        )

    @router.get("/appeals", response_class=HTMLResponse)
    async def appeals(request: Request) -> Response:
        sess = session_of(request)
        if sess is None:
            return login_redirect(request)
        platform, server = server_of(request)
        items = []
        for a in await service.open_appeals(platform, server):
            case = await store.get_case(a.case_id)
            items.append({"appeal": a, **(await case_view(case, True))})
        decided = [a for a in await store.list_appeals(platform, server, status="decided")][-20:]
        return page(request, "appeals.html", sess, appeals=items, decided=decided)

    @router.post("/appeals/{appeal_id}")
    async def decide_appeal(request: Request, appeal_id: int) -> Response:
        sess, form = await posted(request)
        platform, server = server_of(request, form)
        granted = form.get("outcome") == "grant"
        try:
            await service.decide_appeal(
                appeal_id, admin_member(platform, sess), granted, str(form.get("message") or "")[:500]
            )
        except ModerationError as exc:
            return back("/dashboard/appeals", platform, server, error=str(exc))
        return back(
            "/dashboard/appeals",
            platform,
            server,
            msg=f"Appeal {appeal_id} {'granted' if granted else 'denied'}.",
        )

    # ------------------------------------------------------------------ history, members, audit

    async def filtered_cases(request: Request) -> tuple[list[Case], dict[str, str]]:
        platform, server = server_of(request)
        q = request.query_params
        f = {k: q.get(k, "")[:64] for k in ("action", "status", "user", "channel", "label", "verdict")}
        try:
            limit = min(5000, max(1, int(q.get("limit", "200"))))
        except ValueError:
            limit = 200
        cases = await store.list_cases(
            platform, server, status=f["status"] or None, user_id=f["user"] or None, limit=20_000
        )
        out = [
            c
            for c in cases
            if (not f["action"] or c.decision.action.value == f["action"])
            and (not f["channel"] or c.key.channel_id == f["channel"] or c.channel_name == f["channel"])
            and (not f["label"] or c.decision.category == f["label"])
            and (not f["verdict"] or (c.verdict.value if c.verdict else "none") == f["verdict"])
        ]
        f["limit"] = str(limit)
        return out[:limit], f

    @router.get("/history", response_class=HTMLResponse)
    async def history(request: Request) -> Response:
        sess = session_of(request)
        if sess is None:
            return login_redirect(request)
        cases, filters = await filtered_cases(request)
        export = urlencode({**dict(request.query_params)})
        return page(
            request,
            "history.html",
            sess,
            cases=cases,
            filters=filters,
            export=export,
            actions=[a.value for a in Action],
            labels=ctx.labels,
            verdicts=[v.value for v in Verdict],
        )

    @router.get("/history.csv")
    async def history_csv(request: Request) -> Response:
        if session_of(request) is None:
            raise HTTPException(401, "log in first")
        cases, _ = await filtered_cases(request)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            [
                "case_id",
                "decided_at",
                "channel",
                "author_id",
                "author",
                "action",
                "reason",
                "category",
                "status",
                "verdict",
                "model_version",
                *ctx.labels,
                "text",
            ]
        )
        for c in cases:
            w.writerow(
                [
                    csv_safe(v)
                    for v in (
                        c.id,
                        c.decided_at.isoformat(),
                        c.channel_name or c.key.channel_id,
                        c.author.user_id,
                        c.author.display_name,
                        c.decision.action.value,
                        c.decision.reason,
                        c.decision.category or "",
                        c.status,
                        c.verdict.value if c.verdict else "",
                        c.decision.model_version or "",
                        *(f"{float(c.scores.get(label, 0.0)):.4f}" for label in ctx.labels),
                        c.text or "",
                    )
                ]
            )
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="chatmod-decisions.csv"'},
        )

    @router.get("/members/{user_id}", response_class=HTMLResponse)
    async def member(request: Request, user_id: str) -> Response:
        sess = session_of(request)
        if sess is None:
            return login_redirect(request)
        platform, server = server_of(request)
        user_id = user_id[:64]
        strikes = await store.strikes_for(platform, server, user_id)
        live = await service.live_strikes(platform, server, user_id)
        cases = await service.history(platform, server, user_id, limit=100)
        policy = await store.get_policy(platform, server)
        appeals_ = [a for a in await store.list_appeals(platform, server) if a.member.user_id == user_id]
        return page(
            request,
            "member.html",
            sess,
            user_id=user_id,
            strikes=strikes,
            live=live,
            cases=cases,
            ladder=policy.ladder,
            appeals=appeals_,
        )

    @router.get("/audit", response_class=HTMLResponse)
    async def audit(request: Request) -> Response:
        sess = session_of(request)
        if sess is None:
            return login_redirect(request)
        _platform, server = server_of(request)
        entries = list(await store.entries(server, limit=200))[::-1]
        return page(request, "audit.html", sess, entries=entries)

    return router
