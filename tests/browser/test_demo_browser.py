"""The demo in a real browser: Debian's headless Chromium driven by Playwright (never a downloaded one).

One `chatmod demo` process (the real model, SQLite, the in-process batcher) serves the whole module;
tabs are separate browser contexts: alice and bob chat, mod has the moderator view on. The tests run
in file order and build on each other's chat state, like a session would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from bot.compose import card_tiers
from bot.settings import ModelSettings
from bot.web.bench import wait_for_printed

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "screenshots"
ADMIN_TOKEN = "browser-test-admin-token"
TOXIC = "shut up, you stupid idiot"
#: New servers start with the shipped model card's recommended thresholds.
SERVER_DEFAULTS = card_tiers(ModelSettings())
TOXIC_2 = "you are a pathetic moron"
# Texts the defaults allow, most realistic first: mildly rude, then plainly clean (always under them).
MILD_CANDIDATES = (
    "that is a dumb idea",
    "this plan is kind of silly",
    "I think that answer is wrong",
    "see you all at the meeting tomorrow",
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium not installed at {CHROMIUM}"),
]

if Path(CHROMIUM).exists():
    from playwright.sync_api import Browser, Page, expect, sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CHATMOD_API__ADMIN_TOKEN": ADMIN_TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "demo", "--port", "0", "--db", str(db)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 90
    try:
        url = wait_for_printed(proc, r"Chat:\s+(http://\S+?)/\s", timeout=90)
    except RuntimeError as exc:
        pytest.fail(f"chatmod demo did not start:\n{exc}")
    # the URL is printed while the model still loads; /health turns 200 once it answers
    while time.monotonic() < deadline and httpx.get(f"{url}/health").status_code != 200:
        time.sleep(0.25)
    assert httpx.get(f"{url}/health").json()["checks"]["model"]["loaded"], "the model did not load"
    yield url
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Room:
    def __init__(self, browser: Browser, url: str) -> None:
        self.url = url
        self.pages: dict[str, Page] = {}
        self.browser = browser

    def join(self, name: str, mod: bool = False, width: int = 1100) -> Page:
        ctx = self.browser.new_context(viewport={"width": width, "height": 720})
        page = ctx.new_page()
        page.goto(f"{self.url}/?name={name}" + ("&mod=1" if mod else ""))
        expect(page.locator("body[data-ready='1']")).to_have_count(1, timeout=15_000)
        self.pages[name] = page
        return page

    def channel(self, name: str, channel: str) -> None:
        self.pages[name].click(f"a[data-channel='{channel}']")
        expect(self.pages[name].locator("#room-name")).to_have_text(f"#{channel}")

    def say(self, name: str, text: str) -> None:
        page = self.pages[name]
        page.fill("#text", text)
        page.press("#text", "Enter")

    def shot(self, name: str, file: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.pages[name].screenshot(path=str(SHOTS / file))


def msg(page: Page, text: str):  # type: ignore[no-untyped-def]
    return page.locator("#messages li.msg", has=page.locator(".body", has_text=text))


@pytest.fixture(scope="module")
def room(browser: Browser, demo_url: str) -> Room:
    r = Room(browser, demo_url)
    r.join("alice")
    r.join("bob")
    r.join("mod", mod=True, width=1400)
    return r


def test_two_members_chat_live(room: Room) -> None:
    room.say("alice", "hi bob, welcome to the demo")
    expect(msg(room.pages["bob"], "hi bob, welcome")).to_have_count(1)
    room.say("bob", "thanks alice, glad to be here")
    expect(msg(room.pages["alice"], "glad to be here")).to_have_count(1)
    expect(room.pages["alice"].locator("#members li")).to_have_count(3)


def test_toxic_message_is_held_and_shown_correctly_to_each_side(room: Room) -> None:
    alice, bob = room.pages["alice"], room.pages["bob"]
    room.say("alice", TOXIC)
    mine = msg(alice, TOXIC)
    expect(mine).to_have_class(re.compile(r"\bheld\b"))
    expect(mine.locator(".reason")).to_contain_text("threshold")
    expect(mine.locator("button.appeal")).to_be_enabled()
    expect(alice.locator("#notices .notice")).to_contain_text("held for review")
    # bob sees a greyed placeholder, never the text
    expect(bob.locator("#messages li.held .placeholder")).to_have_count(1)
    expect(bob.locator("#messages")).not_to_contain_text(TOXIC)
    room.shot("alice", "chat-author-held.png")
    room.shot("bob", "chat-other-member-held.png")


def test_moderator_sees_scores_and_words_and_restores(room: Room) -> None:
    mod, bob = room.pages["mod"], room.pages["bob"]
    case = mod.locator("#queue .case", has_text=TOXIC)
    expect(case).to_have_count(1)
    expect(case.locator(".bar")).to_have_count(6)
    expect(case.locator(".bar.hit").first).to_be_visible()
    expect(case.locator(".evidence mark").first).to_be_visible(timeout=20_000)
    room.shot("mod", "chat-moderator-queue.png")
    case.locator("button[data-verdict='restore']").click()
    expect(msg(bob, TOXIC)).to_have_count(1)
    expect(msg(bob, TOXIC)).not_to_have_class(re.compile(r"\bheld\b"))
    expect(mod.locator("#queue .case", has_text=TOXIC)).to_have_count(0)


def test_author_appeals_another_and_moderator_grants(room: Room) -> None:
    alice, bob, mod = room.pages["alice"], room.pages["bob"], room.pages["mod"]
    room.say("alice", TOXIC_2)
    mine = msg(alice, TOXIC_2)
    expect(mine).to_have_class(re.compile(r"\bheld\b"))
    alice.once("dialog", lambda d: d.accept("It was a joke between friends."))
    mine.locator("button.appeal").click()
    expect(mine.locator("button.appeal")).to_be_disabled()
    expect(alice.locator("#notices")).to_contain_text("Appeal submitted")
    appeal = mod.locator("#appeals .appeal", has_text="It was a joke between friends.")
    expect(appeal).to_have_count(1)
    room.shot("mod", "chat-moderator-appeal.png")
    appeal.locator("button[data-appeal='grant']").click()
    expect(alice.locator("#notices")).to_contain_text("was granted")
    expect(msg(bob, TOXIC_2)).to_have_count(1)


def test_kids_channel_deletes_automatically_with_notice_to_author(room: Room) -> None:
    alice, bob = room.pages["alice"], room.pages["bob"]
    room.channel("alice", "kids")
    room.channel("bob", "kids")
    room.say("alice", "hi everyone, how was school today?")
    expect(msg(bob, "how was school today")).to_have_count(1)
    room.say("alice", TOXIC)
    notice = alice.locator("#notices .notice.delete")
    expect(notice).to_contain_text("was removed")
    expect(notice.locator("button.appeal")).to_be_visible()
    expect(alice.locator("#messages")).not_to_contain_text(TOXIC)
    expect(bob.locator("#messages")).not_to_contain_text(TOXIC)
    room.shot("alice", "chat-kids-deleted-notice.png")


def test_html_in_messages_is_shown_as_text(room: Room) -> None:
    bob = room.pages["bob"]
    payload = '<img src=x onerror="window.pwned=1"><b>bold?</b>'
    room.say("alice", payload)
    expect(msg(bob, "<b>bold?</b>")).to_have_count(1)
    assert bob.locator("#messages img").count() == 0
    assert bob.evaluate("window.pwned === undefined")


def _login(page: Page, url: str, next_path: str) -> None:
    page.goto(f"{url}/dashboard/login?next={quote(next_path)}")
    page.fill("input[name='token']", ADMIN_TOKEN)
    page.click("button.primary")


def test_dashboard_threshold_edit_applies_to_next_message(room: Room, browser: Browser) -> None:
    alice, bob = room.pages["alice"], room.pages["bob"]
    room.channel("alice", "general")
    room.channel("bob", "general")
    # a mildly rude text the defaults allow (every label under its review threshold)
    mild, score = None, 1.0
    for text in MILD_CANDIDATES:
        scores = httpx.post(f"{room.url}/predict", json={"text": text}).json()
        if all(scores[k] < t.review_at for k, t in SERVER_DEFAULTS.items()):
            mild, score = text, scores["toxic"]
            break
    assert mild is not None, "precondition: one candidate is under every default review threshold"
    room.say("alice", mild)
    expect(msg(bob, mild)).to_have_count(1)  # allowed under the defaults

    new_review = f"{score / 2:.4f}"  # below the text's own toxic score: the same text is now held
    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    room.pages["admin"] = page
    _login(page, room.url, "/dashboard/policy?platform=demo&server=demo&channel=general")
    expect(page.locator("h1")).to_contain_text("Policy")
    expect(page.locator("h2").first).to_contain_text("#general")
    page.fill("input[name='review_toxic']", "1.5")  # server-side validation
    page.click("#save-thresholds")
    expect(page.locator(".flash.err")).to_contain_text("toxic.review_at")
    page.fill("input[name='review_toxic']", new_review)
    page.click("#save-thresholds")
    expect(page.locator(".flash.ok")).to_contain_text("Saved 1 threshold change(s) for #general")
    assert float(page.input_value("input[name='review_toxic']")) == pytest.approx(float(new_review))
    room.shot("admin", "dashboard-policy.png")

    room.say("alice", mild)  # same text, new message: scored the same (cache), decided by the new threshold
    expect(msg(alice, mild)).to_have_count(2)
    expect(msg(alice, mild).nth(1)).to_have_class(re.compile(r"\bheld\b"))
    expect(msg(alice, mild).nth(1).locator(".reason")).to_contain_text(
        f"review threshold {float(new_review):.2f}"
    )
    expect(bob.locator("#messages li.held .placeholder")).to_have_count(1)
    expect(msg(bob, mild)).to_have_count(1)

    page.goto(f"{room.url}/dashboard/audit?platform=demo&server=demo")
    expect(page.locator("table")).to_contain_text("policy.threshold")


def test_dashboard_screens_render(room: Room) -> None:
    page = room.pages["admin"]
    page.goto(f"{room.url}/dashboard?platform=demo&server=demo&hours=0.25")
    expect(page.locator("#chart-latency svg circle").first).to_be_attached()
    expect(page.locator("#chart-labels svg")).to_have_count(1)
    expect(page.locator("#chart-precision svg circle").first).to_be_attached()
    room.shot("admin", "dashboard-overview.png")
    page.goto(f"{room.url}/dashboard/queue?platform=demo&server=demo")
    expect(page.locator("article.case").first).to_be_visible()
    room.shot("admin", "dashboard-queue.png")
    page.goto(f"{room.url}/dashboard/history?platform=demo&server=demo")
    expect(page.locator("table.history")).to_contain_text("<b>bold?</b>")
    assert page.locator("table.history b:text('bold?')").count() == 0
    room.shot("admin", "dashboard-history.png")
