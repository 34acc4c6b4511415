"""Pure parts of the adapter: payload conversion, roles, command parsing, the event-id memory."""

from __future__ import annotations

import copy

import pytest

from bot.adapters.slack import commands, convert
from bot.adapters.slack.dedupe import RecentIds
from moderation.domain import Action, Platform, Role, Verdict
from tests.slack.conftest import load

CONFIG = convert.RoleConfig(frozenset({"U0MOD"}), frozenset({"U0ADMIN"}), "mods")


def test_message_event_to_domain():
    inbound = convert.inbound_message(load("event_message"))
    assert inbound is not None
    author = convert.member(inbound.user_id, config=CONFIG, display_name=inbound.display_name)
    msg = convert.message_version(inbound, author)
    assert (msg.platform, msg.server_id, msg.channel_id, msg.message_id) == (
        Platform.SLACK,
        "T0CHATMOD",
        "C0GENERAL",
        "1763778000.000100",
    )
    assert msg.text == "you are an idiot @U0OTHER" and not msg.edited
    assert msg.author.display_name == "sam" and msg.delivery_id == "Ev0MSG0001"
    assert msg.sent_at.year == 2025


def test_message_changed_yields_the_new_version_of_the_same_message():
    inbound = convert.inbound_message(load("event_message_changed"))
    assert inbound is not None
    assert inbound.edited and inbound.ts == "1763778030.000200"
    assert inbound.text == "see you all tomorrow, you moron"
    assert inbound.sent_at.timestamp() == 1763778060.0  # the edit time


@pytest.mark.parametrize("subtype", ["message_deleted", "channel_join", "channel_topic", "pinned_item"])
def test_housekeeping_subtypes_are_not_messages(subtype):
    payload = load("event_message")
    payload["event"]["subtype"] = subtype
    assert convert.inbound_message(payload) is None


def test_bot_messages_are_marked_bots():
    inbound = convert.inbound_message(load("event_bot_message"))
    assert inbound is not None and inbound.is_bot and inbound.user_id == "B0CIBOT"
    edited_bot = load("event_message_changed")
    edited_bot["event"]["message"]["bot_id"] = "B0CHATBOT"
    assert convert.inbound_message(edited_bot).is_bot  # our own card updates come back as edits


@pytest.mark.parametrize(
    ("mrkdwn", "plain"),
    [
        ("hi <@U123|bob> &amp; <@U456>", "hi @bob & @U456"),
        ("see <#C1|general> <!here> <!subteam^S1|@mods>", "see #general @here @mods"),
        ("<https://example.com|click> &lt;3", "click <3"),
        ("<https://example.com>", "https://example.com"),
    ],
)
def test_plain_text(mrkdwn, plain):
    assert convert.plain_text(mrkdwn) == plain


def test_escape_prevents_pings_on_repost():
    assert convert.escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


@pytest.mark.parametrize(
    ("user", "groups", "roles"),
    [
        ("U0MEMBER", set(), {Role.MEMBER}),
        ("U0MOD", set(), {Role.MEMBER, Role.MODERATOR}),
        ("U0G", {"S0MODS"}, {Role.MEMBER, Role.MODERATOR}),
        ("U0G", {"S0OTHER"}, {Role.MEMBER}),
        ("U0ADMIN", set(), {Role.MEMBER, Role.MODERATOR, Role.ADMIN}),
    ],
)
def test_roles(user, groups, roles):
    assert convert.roles_for(user, groups, CONFIG, "S0MODS") == roles


def test_interaction_actor_and_click():
    body = load("block_actions_review")
    actor = convert.actor_from_interaction(body)
    assert (actor.team_id, actor.user_id, actor.channel_id) == ("T0CHATMOD", "U0MOD", "C0REVIEW")
    click = convert.button_click(body)
    assert click is not None and (click.action_id, click.value, click.message_ts) == (
        "chatmod_restore",
        "1",
        "1763778001.000900",
    )
    cmd = load("command_chatmod")
    assert convert.actor_from_interaction(cmd).user_id == "U0MOD"


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("", "help", {}),
        ("queue", "queue", {}),
        ("case #12", "case", {"case_id": 12}),
        (
            "override 3 restore it was fine, really",
            "override",
            {"case_id": 3, "verdict": Verdict.RESTORE, "note": "it was fine, really"},
        ),
        ("history <@U0MEMBER|sam>", "history", {"user_id": "U0MEMBER"}),
        ("appeal 4 it was a quote", "appeal.submit", {"case_id": 4, "text": "it was a quote"}),
        ("appeal list", "appeal.list", {}),
        ("appeals", "appeal.list", {}),
        (
            "decide-appeal 2 grant ok, restored",
            "appeal.decide",
            {"appeal_id": 2, "granted": True, "message": "ok, restored"},
        ),
        ("config show", "config.show", {}),
        (
            "config threshold toxic act_at 0.97",
            "config.threshold",
            {"label": "toxic", "review_at": None, "act_at": 0.97, "channel_id": None},
        ),
        ("appeal deny 2 no", "appeal.decide", {"appeal_id": 2, "granted": False, "message": "no"}),
        (
            "config threshold insult 0.7 0.9 <#C1|x>",
            "config.threshold",
            {"label": "insult", "review_at": 0.7, "act_at": 0.9, "channel_id": "C1"},
        ),
        ("config action escalate", "config.action", {"action": Action.ESCALATE, "channel_id": None}),
        ("config auto off <#C2>", "config.auto", {"enabled": False, "channel_id": "C2"}),
        (
            "config exempt channel <#C3|bots> on",
            "config.exempt",
            {"kind": "channel", "target_id": "C3", "exempt": True},
        ),
        ("config allow-term git gud off", "config.allow_term", {"term": "git gud", "allowed": False}),
        (
            "config ladder 3 30 10",
            "config.ladder",
            {"strikes": 3, "window_days": 30.0, "timeout_minutes": 10.0},
        ),
        ("config review-channel off", "config.review_channel", {"channel_id": None}),
    ],
)
def test_parse(text, name, args):
    assert commands.parse(text) == commands.Command(name, args)


@pytest.mark.parametrize(
    "text",
    [
        "nope",
        "case",
        "override 1 timeout",
        "override 1 maybe",
        "config threshold nolabel 0.1 0.2",
        "config auto perhaps",
        "history bob",
        "appeal 3",
    ],
)
def test_parse_errors(text):
    with pytest.raises(commands.UsageError):
        commands.parse(text)


def test_recent_ids_ttl_and_bound():
    now = [0.0]
    ids = RecentIds(maxsize=2, ttl=10, clock=lambda: now[0])
    assert ids.first_time("a") and not ids.first_time("a")
    assert ids.first_time("b") and ids.first_time("c")  # evicts "a" (bound 2)
    assert ids.first_time("a")
    now[0] = 11.0
    assert ids.first_time("b")  # expired
    ids.forget("b")
    assert ids.first_time("b")


def test_fixture_payloads_are_not_mutated_by_conversion():
    payload = load("event_message_changed")
    before = copy.deepcopy(payload)
    convert.inbound_message(payload)
    assert payload == before
