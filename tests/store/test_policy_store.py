"""PolicyStore contract on the SQL store: defaults for unknown servers, exact round trips."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from moderation.domain import Action, Platform
from moderation.policy import DEFAULT_TIERS, ChannelPolicy, LadderStep, ServerPolicy, StrikeLadder, Tiers
from moderation.store import SqlStore
from moderation.store.schema import channel_policies, servers


async def count(store: SqlStore, table) -> int:
    assert store.engine is not None
    async with store.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_unknown_server_gets_stored_defaults(sql_store: SqlStore) -> None:
    policy = await sql_store.get_policy(Platform.DISCORD, "new-guild")
    assert policy == ServerPolicy("new-guild")
    assert await count(sql_store, servers) == 1
    assert await sql_store.get_policy(Platform.DISCORD, "new-guild") == policy
    assert await count(sql_store, servers) == 1


async def test_concurrent_first_reads_create_one_server_row(sql_store: SqlStore) -> None:
    policies = await asyncio.gather(*(sql_store.get_policy(Platform.SLACK, "T1") for _ in range(6)))
    assert all(p == ServerPolicy("T1") for p in policies)
    assert await count(sql_store, servers) == 1


def tuned_policy() -> ServerPolicy:
    thresholds = dict(DEFAULT_TIERS)
    thresholds["toxic"] = Tiers(0.1 + 0.2, 1 / 3 + 0.5)  # floats with no short decimal form
    thresholds["threat"] = Tiers(0.0, 1.0)
    return ServerPolicy(
        server_id="g1",
        thresholds=thresholds,
        action=Action.TIMEOUT,
        auto_action=True,
        exempt_role_ids=frozenset({"role-mods", "role-bots"}),
        exempt_channel_ids=frozenset({"c-staff"}),
        allow_terms=("scunthorpe", "Ünïcode tèrm"),
        ladder=StrikeLadder(
            steps=(
                LadderStep(2, Action.ESCALATE, 0),
                LadderStep(3, Action.TIMEOUT, 600),
                LadderStep(5, Action.TIMEOUT, 86400),
            ),
            window=timedelta(days=7, seconds=5, microseconds=7),
        ),
        review_channel_id="c-review",
        channels={
            "c1": ChannelPolicy(
                "c1",
                thresholds={
                    "toxic": Tiers(0.30000000000000004, 0.9),
                    "identity_hate": Tiers(0.123456789012345, 0.5),
                },
                action=Action.ESCALATE,
                auto_action=False,
            ),
            "c2": ChannelPolicy("c2", exempt=True),
            "c3": ChannelPolicy("c3", auto_action=True, action=Action.HOLD),
        },
    )


async def test_policy_round_trips_exactly_with_channel_overrides(sql_store: SqlStore) -> None:
    policy = tuned_policy()
    await sql_store.save_policy(Platform.DISCORD, policy)
    loaded = await sql_store.get_policy(Platform.DISCORD, "g1")
    assert loaded == policy
    assert loaded.channels["c1"].thresholds["toxic"].review_at == 0.30000000000000004
    assert loaded.thresholds["toxic"] == Tiers(0.1 + 0.2, 1 / 3 + 0.5)
    assert loaded.ladder.window == timedelta(days=7, seconds=5, microseconds=7)
    for channel in ("c1", "c2", "c3", "unknown"):
        assert loaded.for_channel(channel) == policy.for_channel(channel)


async def test_save_replaces_channel_overrides(sql_store: SqlStore) -> None:
    policy = tuned_policy()
    await sql_store.save_policy(Platform.DISCORD, policy)
    changed = ServerPolicy("g1", channels={"c1": ChannelPolicy("c1", thresholds={"insult": Tiers(0.5, 0.6)})})
    await sql_store.save_policy(Platform.DISCORD, changed)
    assert await sql_store.get_policy(Platform.DISCORD, "g1") == changed
    assert await count(sql_store, channel_policies) == 1


async def test_policies_are_per_platform(sql_store: SqlStore) -> None:
    await sql_store.save_policy(Platform.DISCORD, tuned_policy())
    assert await sql_store.get_policy(Platform.SLACK, "g1") == ServerPolicy("g1")
    assert (await sql_store.get_policy(Platform.DISCORD, "g1")).auto_action is True


async def test_policy_saved_for_new_server_without_prior_get(sql_store: SqlStore) -> None:
    policy = ServerPolicy("fresh", auto_action=True)
    await sql_store.save_policy(Platform.DEMO, policy)
    assert await sql_store.get_policy(Platform.DEMO, "fresh") == policy
