"""The dashboard over httpx: login, CSRF, validated and audited policy edits, queues, escaping, CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import httpx
import pytest

from bot.web.dashboard import csv_safe
from moderation.domain import Member, MessageVersion, Platform
from tests.web.conftest import Harness, login

Q = "platform=demo&server=demo"


async def post_message(
    h: Harness, text: str, *, channel: str = "general", user: str = "eve", mid: str = "m1"
) -> int:
    msg = MessageVersion(
        Platform.DEMO,
        "demo",
        channel,
        mid,
        Member(Platform.DEMO, user, user),
        text,
        datetime(2026, 1, 1, 12, tzinfo=UTC),
        channel_name=channel,
    )
    out = await h.ctx.service.handle_message(msg)
    assert out.case is not None
    return out.case.id


async def test_pages_need_a_login(client: httpx.AsyncClient) -> None:
    for path in (
        "/dashboard",
        "/dashboard/policy",
        "/dashboard/queue",
        "/dashboard/history",
        "/dashboard/audit",
    ):
        r = await client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login"), path
    assert (await client.get("/dashboard/history.csv")).status_code == 401
    r = await client.post("/dashboard/policy/thresholds", data={"platform": "demo", "server": "demo"})
    assert r.status_code == 401


async def test_wrong_token_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/dashboard/login", data={"token": "nope"})
    assert r.status_code == 401 and "Wrong admin token" in r.text
    assert (await client.get("/dashboard")).status_code == 303


async def test_changes_need_the_csrf_token(client: httpx.AsyncClient, harness: Harness) -> None:
    await login(client)
    r = await client.post(
        "/dashboard/policy/thresholds", data={"platform": "demo", "server": "demo", "review_toxic": "0.5"}
    )
    assert r.status_code == 403
    policy = await harness.store.get_policy(Platform.DEMO, "demo")
    assert policy.thresholds["toxic"].review_at == 0.8


async def test_threshold_edit_is_validated_audited_and_applies(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    csrf = await login(client)
    base = {"csrf": csrf, "platform": "demo", "server": "demo", "channel": "general"}
    for bad, message in (("1.5", "toxic.review_at"), ("abc", "not a number"), ("nan", "toxic.review_at")):
        r = await client.post("/dashboard/policy/thresholds", data={**base, "review_toxic": bad})
        assert r.status_code == 400 and message in r.text, bad
        assert 'name="channel" value="general"' in r.text  # the re-rendered form still targets #general
    r = await client.post(
        "/dashboard/policy/thresholds", data={**base, "review_toxic": "0.99", "act_toxic": "0.5"}
    )
    assert r.status_code == 400 and "act_at" in r.text  # act_at < review_at
    policy = await harness.store.get_policy(Platform.DEMO, "demo")
    assert "toxic" not in policy.channels.get("general").thresholds  # type: ignore[union-attr]

    r = await client.post(
        "/dashboard/policy/thresholds", data={**base, "review_toxic": "0.2", "act_toxic": "0.9"}
    )
    assert r.status_code == 303 and "Saved+1" in r.headers["location"]
    policy = await harness.store.get_policy(Platform.DEMO, "demo")
    assert policy.for_channel("general").thresholds["toxic"].review_at == 0.2
    assert policy.thresholds["toxic"].review_at == 0.8  # server default untouched
    audit = [
        e
        for e in harness.store.audit
        if e.action == "policy.threshold" and e.detail.get("channel") == "general"
    ]
    assert audit and audit[-1].actor == "demo:dashboard:alice"

    # the next message follows the new threshold: "stupid" alone scores 0.84 toxic on the fake
    case_id = await post_message(harness, "hmm, a dumb and stupid take", mid="after")
    assert (await harness.store.get_case(case_id)).decision.action.value == "hold"


async def test_channel_action_exempt_allow_terms_and_ladder(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    csrf = await login(client)
    base = {"csrf": csrf, "platform": "demo", "server": "demo"}
    r = await client.post(
        "/dashboard/policy/channel", data={**base, "channel": "random", "action": "timeout", "auto": "on"}
    )
    assert r.status_code == 303
    r = await client.post("/dashboard/policy/channel", data={**base, "channel": "random", "action": "allow"})
    assert r.status_code == 400 and "action" in r.text
    r = await client.post("/dashboard/policy/exempt", data={**base, "kind": "role", "target": "trusted"})
    assert r.status_code == 303
    r = await client.post("/dashboard/policy/allow", data={**base, "term": "Dark Souls"})
    assert r.status_code == 303
    r = await client.post(
        "/dashboard/policy/ladder", data={**base, "strikes": "2", "window_days": "7", "timeout_minutes": "5"}
    )
    assert r.status_code == 303
    r = await client.post(
        "/dashboard/policy/ladder", data={**base, "strikes": "0", "window_days": "7", "timeout_minutes": "5"}
    )
    assert r.status_code == 400
    p = await harness.store.get_policy(Platform.DEMO, "demo")
    eff = p.for_channel("random")
    assert eff.action.value == "timeout" and eff.auto_action
    assert "trusted" in p.exempt_role_ids and p.allow_terms == ("Dark Souls",)
    assert p.ladder.steps[0].strikes == 2 and p.ladder.steps[0].timeout_seconds == 300
    page = await client.get(f"/dashboard/policy?{Q}")
    assert "Dark Souls" in page.text and "trusted" in page.text


async def test_queue_verdict_and_appeal_decision(client: httpx.AsyncClient, harness: Harness) -> None:
    case_id = await post_message(harness, "you idiot", mid="q1")
    other = await post_message(harness, "you moron", mid="q2")
    csrf = await login(client)
    page = await client.get(f"/dashboard/queue?{Q}")
    assert f'id="case-{case_id}"' in page.text and "Words that drove it" in page.text and "<mark" in page.text
    r = await client.post(
        f"/dashboard/cases/{case_id}/verdict",
        data={"csrf": csrf, "platform": "demo", "server": "demo", "verdict": "restore"},
    )
    assert r.status_code == 303
    assert (await harness.store.get_case(case_id)).verdict.value == "restore"  # type: ignore[union-attr]

    eve = Member(Platform.DEMO, "eve", "eve")
    appeal = await harness.ctx.service.submit_appeal(other, eve, "please <b>reconsider</b>")
    page = await client.get(f"/dashboard/appeals?{Q}")
    assert "please &lt;b&gt;reconsider&lt;/b&gt;" in page.text
    r = await client.post(
        f"/dashboard/appeals/{appeal.id}",
        data={"csrf": csrf, "platform": "demo", "server": "demo", "outcome": "deny"},
    )
    assert r.status_code == 303
    assert (await harness.store.get_appeal(appeal.id)).outcome.value == "denied"  # type: ignore[union-attr]
    r = await client.post(
        f"/dashboard/appeals/{appeal.id}",
        data={"csrf": csrf, "platform": "demo", "server": "demo", "outcome": "deny"},
    )
    assert "error=" in r.headers["location"]  # already decided

    member = await client.get(f"/dashboard/members/eve?{Q}")
    assert member.status_code == 200 and "live strike" in member.text


async def test_html_is_escaped_in_pages_and_csv_neutralises_formulas(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    await post_message(harness, "<script>alert(1)</script> idiot", mid="x1", user="<img src=x>")
    await post_message(harness, '=HYPERLINK("http://evil")', mid="x2")
    await login(client)
    for path in ("/dashboard/history", "/dashboard/queue", "/dashboard/members/eve"):
        page = await client.get(f"{path}?{Q}")
        assert "<script>alert(1)</script>" not in page.text
        assert "<img src=x>" not in page.text
    hist = await client.get(f"/dashboard/history?{Q}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hist.text
    r = await client.get(f"/dashboard/history.csv?{Q}")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    texts = {row["text"] for row in rows}
    assert '\'=HYPERLINK("http://evil")' in texts
    assert not any(row[k].startswith(("=", "+", "-", "@")) for row in rows for k in row)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        (None, ""),
        (3, "3"),
    ],
)
def test_csv_safe(value: object, expected: str) -> None:
    assert csv_safe(value) == expected


async def test_history_filters(client: httpx.AsyncClient, harness: Harness) -> None:
    await post_message(harness, "you idiot", mid="f1", user="ann")
    await post_message(harness, "hello all", mid="f2", user="ann")
    await post_message(harness, "you idiot", mid="f3", user="ben", channel="kids")
    await login(client)
    r = await client.get(f"/dashboard/history?{Q}&action=delete")
    assert r.text.count('class="badge delete"') == 1
    r = await client.get(f"/dashboard/history?{Q}&user=ann")
    assert "ben" not in r.text and r.text.count("<tr><td>") == 2
    r = await client.get(f"/dashboard/history?{Q}&channel=kids&label=toxic")
    assert r.text.count("<tr><td>") == 1


async def test_overview_renders_charts(client: httpx.AsyncClient, harness: Harness) -> None:
    await post_message(harness, "you idiot", mid="c1")
    await client.post("/predict", json={"text": "chart me"})
    await login(client)
    r = await client.get(f"/dashboard?{Q}&hours=1")
    assert r.status_code == 200
    for chart in ("chart-latency", "chart-labels", "chart-precision", "chart-queue"):
        assert f'id="{chart}"' in r.text
    assert r.text.count("<svg") == 4 and ("<polyline" in r.text or "<circle" in r.text)
