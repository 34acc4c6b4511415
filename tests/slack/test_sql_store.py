"""The Slack loop on the real SQL store (SQLite file, migrated): idempotency across redeliveries and a
process restart, the review-button verdict, and the audit trail — not only on the in-memory fake."""

from __future__ import annotations

import pytest

from moderation.domain import Action, Verdict
from tests.slack.conftest import MOD, make_harness
from tests.store.fixtures import open_test_store


@pytest.fixture
async def sqlite_store(tmp_path):
    async with open_test_store("sqlite", tmp_path) as store:
        yield store


async def test_slack_loop_on_sqlite(fake_api, sqlite_store):
    h = await make_harness(fake_api, admin=True, store=sqlite_store)
    try:
        await h.message()
        await h.message(retry=1)
    finally:
        await h.close()
    # a restarted process (fresh event-id memory) gets Slack's next retry: still one action
    h = await make_harness(fake_api, admin=True, store=sqlite_store)
    try:
        await h.message(retry=2)
        cases = await sqlite_store.list_cases()
        assert [c.decision.action for c in cases] == [Action.HOLD]
        assert len(fake_api.to("chat.delete")) == 1 and len(fake_api.to("chat.postEphemeral")) == 1

        await h.click("chatmod_restore", cases[0].id, user="U0RANDOM")
        await h.click("chatmod_restore", cases[0].id, user=MOD)
        case = await sqlite_store.get_case(cases[0].id)
        assert case.status == "resolved" and case.verdict is Verdict.RESTORE
        reposts = [c for c in fake_api.to("chat.postMessage") if c["channel"] == "C0GENERAL"]
        assert len(reposts) == 1
        actions = [e.action for e in await sqlite_store.entries()]
        assert actions.count("decision") == 1
        assert "permission.denied" in actions and "override" in actions
    finally:
        await h.close()
