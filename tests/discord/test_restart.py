"""Restarts on the persistent SQL store (SQLite file): at most one action per message version, review
buttons that still work, and backfill of what was sent while the bot was away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moderation.domain import Action, Member, Platform, Role, Verdict
from tests.discord.conftest import GENERAL, REVIEW, set_review_channel, start_bot
from tests.discord.fake_api import FakeDiscordAPI, per_message_counts
from tests.discord.helpers import click, webhook_posts

MOD = Member(Platform.DISCORD, "1200000000000000002", "Mo", roles=frozenset({Role.MODERATOR}))


@pytest.fixture
async def db_url(tmp_path: Path) -> AsyncIterator[str]:
    import migrations
    from tests.store.fixtures import fresh_database_url

    async with fresh_database_url("sqlite", tmp_path) as url:
        await migrations.upgrade(url)
        yield url


async def _session(api: FakeDiscordAPI, url: str):
    from moderation.store import open_store

    store = open_store(url)
    return store, await start_bot(api, store)


async def test_actions_are_applied_at_most_once_across_restarts(api: FakeDiscordAPI, db_url: str) -> None:
    store, first = await _session(api, db_url)
    await set_review_channel(first)
    toxic = await first.send("you are an idiot")
    await first.bot.service.apply_override(1, MOD, Verdict.RESTORE)
    await first.bot.close()
    await store.close()

    store, second = await _session(api, db_url)  # a new process on the same database
    second.dispatch("MESSAGE_CREATE", toxic)  # the gateway delivers the same message again
    await second.settle()
    await second.bot.service.apply_override(1, MOD, Verdict.RESTORE)  # and a verdict is replayed
    await second.settle()

    assert per_message_counts(api.calls) == {toxic["id"]: 1}
    assert len([c for c in api.find("POST", rf"/channels/{REVIEW}/messages") if c.body.get("embeds")]) == 1
    assert len(webhook_posts(second)) == 1
    await second.bot.close()
    await store.close()


async def test_review_buttons_and_backfill_after_a_restart(api: FakeDiscordAPI, db_url: str) -> None:
    store, first = await _session(api, db_url)
    await set_review_channel(first)
    await first.send("you are an idiot")
    seen = await first.send("morning all")
    await first.bot.close()
    await store.close()

    missed = first.message("you moron")
    missed["id"] = str(int(seen["id"]) + 7)
    api.seed_message(missed)

    store, second = await _session(api, db_url)
    await second.settle()
    [history] = api.find("GET", rf"/channels/{GENERAL}/messages")
    assert history.query["after"] == seen["id"]
    [backfilled] = await store.cases_for_message(Platform.DISCORD, GENERAL, missed["id"])
    assert backfilled.decision.action is Action.HOLD

    await second.run(click(second, "chatmod:review:delete:1"))  # a button posted by the first process
    assert second.last_reply() == "Case 1: delete recorded."
    assert (await store.get_case(1)).verdict is Verdict.DELETE
    await second.bot.close()
    await store.close()
