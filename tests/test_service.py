"""The moderation loop end to end over the ports, with the deterministic fakes.

The ``store`` fixture (tests/service_stores.py) runs each test on the in-memory store, the SQL store on
SQLite, and the SQL store on the real local Postgres.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from moderation.domain import (
    Action,
    AppealOutcome,
    AppealStatus,
    Capabilities,
    Member,
    MessageVersion,
    Platform,
    Role,
    Verdict,
)
from moderation.errors import (
    InvalidTransition,
    PermissionDenied,
    PlatformActionFailed,
    ScoringOverloaded,
    ScoringTimeout,
    ThresholdError,
)
from moderation.fakes import FakeScoreClient, FixedClock, RecordingActions
from moderation.service import ModerationService, verdict_labels

P = Platform.DEMO
ALICE = Member(P, "alice", "Alice")
BOB = Member(P, "bob", "Bob")
MOD = Member(P, "mod", "Mod", roles=frozenset({Role.MODERATOR}))
ADMIN = Member(P, "admin", "Admin", roles=frozenset({Role.ADMIN}))


class Loop:
    def __init__(self, store, caps: Capabilities = Capabilities()) -> None:
        self.store = store
        self.clock = FixedClock()
        self.actions = RecordingActions(caps=caps)
        self.scorer = FakeScoreClient()
        self.service = ModerationService(
            scorer=self.scorer,
            store=store,
            actions={P: self.actions},
            clock=self.clock,
            own_user_ids=frozenset({"chatmod-bot"}),
        )
        self._n = 0

    def msg(
        self,
        text: str,
        *,
        author: Member = ALICE,
        message_id: str | None = None,
        channel: str = "general",
        edited: bool = False,
        server: str = "srv",
    ) -> MessageVersion:
        self._n += 1
        return MessageVersion(
            P, server, channel, message_id or f"m{self._n}", author, text, self.clock.now(), edited=edited
        )

    async def auto(self, action: Action = Action.DELETE) -> None:
        await self.service.set_auto_action(P, "srv", ADMIN, True)
        await self.service.set_channel_action(P, "srv", ADMIN, None, action)


@pytest.fixture
async def loop(store) -> Loop:
    return Loop(store)


async def test_clean_message_is_allowed_and_stored(loop: Loop) -> None:
    out = await loop.service.handle_message(loop.msg("have a nice day"))
    assert out.action is Action.ALLOW and out.case is not None
    assert loop.actions.calls == []
    case = await loop.store.get_case(out.case.id)
    assert case.decision.action is Action.ALLOW and case.decision.model_version == "fake-1"
    audit = await loop.store.entries("srv")
    assert [e.action for e in audit][-1] == "decision"


async def test_review_first_holds_toxic_message_without_strike(loop: Loop) -> None:
    out = await loop.service.handle_message(loop.msg("you are an idiot"))
    assert out.action is Action.HOLD
    assert loop.actions.names() == ["hold", "escalate", "notify"]
    notice = loop.actions.calls[-1][1]
    assert notice.text == "you are an idiot" and notice.category == "toxic" and notice.appealable
    assert "review threshold" in notice.rule
    assert await loop.service.live_strikes(P, "srv", "alice") == 0
    assert [c.id for c in await loop.service.review_queue(P, "srv")] == [out.case.id]


async def test_auto_delete_strikes_and_ladder_times_out_on_third(loop: Loop) -> None:
    await loop.auto()
    actions = []
    for _ in range(3):
        out = await loop.service.handle_message(loop.msg("fuck you"))
        actions.append(out.action)
        loop.clock.advance(timedelta(hours=1))
    assert actions == [Action.DELETE, Action.DELETE, Action.TIMEOUT]
    assert ("timeout", (out.case.id, 600)) in loop.actions.calls
    assert await loop.service.live_strikes(P, "srv", "alice") == 3
    loop.clock.advance(timedelta(days=31))
    assert await loop.service.live_strikes(P, "srv", "alice") == 0  # decayed


async def test_duplicate_delivery_gives_one_decision_and_one_action(loop: Loop) -> None:
    await loop.auto()
    m = loop.msg("fuck you")
    first = await loop.service.handle_message(m)
    second = await loop.service.handle_message(m)
    assert not first.duplicate and second.duplicate and second.case.id == first.case.id
    assert loop.actions.names().count("delete") == 1
    assert len(await loop.store.strikes_for(P, "srv", "alice")) == 1


async def test_concurrent_duplicate_deliveries_are_idempotent(loop: Loop) -> None:
    await loop.auto()
    m = loop.msg("fuck you")
    outs = await asyncio.gather(*(loop.service.handle_message(m) for _ in range(5)))
    assert len({o.case.id for o in outs}) == 1
    assert loop.actions.names().count("delete") == 1
    assert len(await loop.store.strikes_for(P, "srv", "alice")) == 1


async def test_edit_is_rescored_but_never_punished_twice(loop: Loop) -> None:
    await loop.auto()
    clean = await loop.service.handle_message(loop.msg("hello there", message_id="e1"))
    assert clean.action is Action.ALLOW
    toxic = await loop.service.handle_message(
        loop.msg("hello you fucking moron", message_id="e1", edited=True)
    )
    assert toxic.action is Action.DELETE and toxic.case.id != clean.case.id
    again = await loop.service.handle_message(loop.msg("fuck you, moron", message_id="e1", edited=True))
    assert again.action is Action.DELETE and not again.decision.strike
    assert len(await loop.store.strikes_for(P, "srv", "alice")) == 1
    versions = await loop.store.cases_for_message(P, "general", "e1")
    assert [v.id for v in versions] == [clean.case.id, toxic.case.id, again.case.id]


async def test_restore_reverses_strike_and_resolves(loop: Loop) -> None:
    await loop.auto()
    out = await loop.service.handle_message(loop.msg("you idiot, kill it with fire"))
    assert out.decision.strike
    case = await loop.service.apply_override(out.case.id, MOD, Verdict.RESTORE, note="gaming slang")
    assert case.status == "resolved" and case.verdict is Verdict.RESTORE
    assert ("restore", out.case.id) in loop.actions.calls
    assert ("resolve_review", (out.case.id, Verdict.RESTORE)) in loop.actions.calls
    assert await loop.service.live_strikes(P, "srv", "alice") == 0
    assert verdict_labels(case, Verdict.RESTORE) == dict.fromkeys(
        ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"], 0
    )
    assert "override" in [e.action for e in await loop.store.entries("srv")]


async def test_uphold_of_held_message_deletes_and_strikes(loop: Loop) -> None:
    out = await loop.service.handle_message(loop.msg("you moron"))
    assert out.action is Action.HOLD
    case = await loop.service.apply_override(out.case.id, MOD, Verdict.UPHOLD)
    assert ("delete", out.case.id) in loop.actions.calls
    assert await loop.service.live_strikes(P, "srv", "alice") == 1
    assert verdict_labels(case, Verdict.UPHOLD) == {"insult": 1, "toxic": 1}


async def test_timeout_verdict(loop: Loop) -> None:
    out = await loop.service.handle_message(loop.msg("you moron"))
    await loop.service.apply_override(out.case.id, MOD, Verdict.TIMEOUT)
    assert ("timeout", (out.case.id, 600)) in loop.actions.calls


async def test_timeout_verdict_without_timeout_capability_is_audited_not_called(store) -> None:
    loop = Loop(store, caps=Capabilities(can_timeout=False))
    out = await loop.service.handle_message(loop.msg("you moron"))
    await loop.service.apply_override(out.case.id, MOD, Verdict.TIMEOUT)
    assert "timeout" not in loop.actions.names() and ("delete", out.case.id) in loop.actions.calls
    assert "action.unsupported" in [e.action for e in await loop.store.entries("srv")]
    assert await loop.service.live_strikes(P, "srv", "alice") == 1


async def test_non_moderator_override_is_refused_and_audited(loop: Loop) -> None:
    out = await loop.service.handle_message(loop.msg("you moron"))
    with pytest.raises(PermissionDenied):
        await loop.service.apply_override(out.case.id, BOB, Verdict.RESTORE)
    assert "restore" not in loop.actions.names()
    audit = await loop.store.entries("srv")
    assert audit[-1].action == "permission.denied" and audit[-1].actor == "demo:bob"
    assert (await loop.store.get_case(out.case.id)).status == "open"


async def test_appeal_lifecycle(loop: Loop) -> None:
    out = await loop.service.handle_message(loop.msg("you moron"))
    with pytest.raises(PermissionDenied):
        await loop.service.submit_appeal(out.case.id, BOB, "not mine")
    appeal = await loop.service.submit_appeal(out.case.id, ALICE, "it was a joke between friends")
    assert appeal.status is AppealStatus.SUBMITTED
    with pytest.raises(InvalidTransition):
        await loop.service.submit_appeal(out.case.id, ALICE, "again")
    assert [a.id for a in await loop.service.open_appeals(P, "srv")] == [appeal.id]
    with pytest.raises(PermissionDenied):
        await loop.service.decide_appeal(appeal.id, ALICE, granted=True)
    decided = await loop.service.decide_appeal(appeal.id, MOD, granted=True, message="fair enough")
    assert decided.status is AppealStatus.DECIDED and decided.outcome is AppealOutcome.GRANTED
    assert ("restore", out.case.id) in loop.actions.calls
    assert ("appeal_outcome", AppealOutcome.GRANTED) in loop.actions.calls
    with pytest.raises(InvalidTransition):
        await loop.service.decide_appeal(appeal.id, MOD, granted=False)
    assert await loop.service.open_appeals(P, "srv") == []


async def test_nothing_to_appeal_on_allowed_message(loop: Loop) -> None:
    out = await loop.service.handle_message(loop.msg("lovely weather"))
    with pytest.raises(InvalidTransition):
        await loop.service.submit_appeal(out.case.id, ALICE, "?")


@pytest.mark.parametrize("failure", [ScoringOverloaded, ScoringTimeout])
async def test_scoring_unavailable_holds_and_escalates(loop: Loop, failure: type[Exception]) -> None:
    loop.scorer.fail_with = failure
    out = await loop.service.handle_message(loop.msg("anything"))
    assert out.action is Action.HOLD and out.decision.reason == "scoring_unavailable"
    assert loop.actions.names() == ["hold", "escalate"]


async def test_missing_content_permission_alerts_once_and_never_scores(loop: Loop) -> None:
    for _ in range(3):
        m = replace(loop.msg(""), content_missing=True)
        out = await loop.service.handle_message(m)
        assert out.decision is None and out.filtered.alert
    assert loop.actions.names() == ["alert"]
    assert loop.scorer.requests == []


async def test_forbidden_action_is_recorded_and_reported_once(loop: Loop) -> None:
    class Forbidden(RecordingActions):
        async def delete(self, case):
            raise PlatformActionFailed("delete", "Missing Permissions", status=403)

    loop.actions = Forbidden()
    loop.service.register_actions(P, loop.actions)
    await loop.auto()
    for _ in range(2):
        await loop.service.handle_message(loop.msg("fuck off"))
    assert loop.actions.names().count("alert") == 1
    failures = [e for e in await loop.store.entries("srv") if e.action == "action.failed"]
    assert len(failures) == 2 and failures[0].detail["status"] == 403


class FlakyDelete(RecordingActions):
    """Discord answers the first ``failures`` deletes with a 503 that outlasted discord.py's retries."""

    failures = 1

    async def delete(self, case):
        if self.failures:
            self.failures -= 1
            raise PlatformActionFailed("delete", "Discord error 503", retryable=True, status=503)
        await super().delete(case)


async def test_failed_delete_is_not_recorded_as_applied_and_an_uphold_retries_it(loop: Loop) -> None:
    loop.actions = FlakyDelete()
    loop.service.register_actions(P, loop.actions)
    await loop.auto()
    out = await loop.service.handle_message(loop.msg("fuck off"))
    assert out.action is Action.DELETE and "delete" not in loop.actions.names()
    assert "delete" not in await loop.store.applied_actions_for(out.case.id)
    failed = [e for e in await loop.store.entries("srv") if e.action == "action.failed"]
    assert failed[-1].detail["retryable"] is True and failed[-1].detail["status"] == 503
    await loop.service.apply_override(out.case.id, MOD, Verdict.UPHOLD)
    assert loop.actions.names().count("delete") == 1  # retried now, and it went through
    assert "delete" in await loop.store.applied_actions_for(out.case.id)


async def test_uphold_does_not_repeat_an_applied_delete(loop: Loop) -> None:
    await loop.auto()
    out = await loop.service.handle_message(loop.msg("fuck off"))
    assert loop.actions.names().count("delete") == 1
    await loop.service.apply_override(out.case.id, MOD, Verdict.UPHOLD)
    assert loop.actions.names().count("delete") == 1


async def test_restore_reposts_only_a_message_that_was_removed(loop: Loop) -> None:
    loop.actions = FlakyDelete()
    loop.service.register_actions(P, loop.actions)
    await loop.auto()
    out = await loop.service.handle_message(loop.msg("fuck off"))
    assert "delete" not in loop.actions.names()  # the delete failed: the message is still up
    case = await loop.service.apply_override(out.case.id, MOD, Verdict.RESTORE)
    assert case.verdict is Verdict.RESTORE and "restore" not in loop.actions.names()
    assert await loop.service.live_strikes(P, "srv", "alice") == 0


async def test_own_and_bot_messages_are_ignored(loop: Loop) -> None:
    own = await loop.service.handle_message(loop.msg("fuck", author=Member(P, "chatmod-bot", is_bot=True)))
    bot = await loop.service.handle_message(loop.msg("fuck", author=Member(P, "other-bot", is_bot=True)))
    assert own.decision is None and bot.decision is None and loop.scorer.requests == []


async def test_thresholds_are_admin_only_validated_and_followed(loop: Loop) -> None:
    with pytest.raises(PermissionDenied):
        await loop.service.set_threshold(P, "srv", MOD, label="toxic", review_at=0.1)
    with pytest.raises(ThresholdError) as err:
        await loop.service.set_threshold(
            P, "srv", ADMIN, label="toxic", channel_id="kids", review_at=0.9, act_at=0.5
        )
    assert err.value.field == "act_at"
    out = await loop.service.handle_message(loop.msg("that was stupid", channel="kids"))
    assert out.action is Action.HOLD  # stupid → toxic 0.84 ≥ default review_at 0.80
    await loop.service.set_threshold(
        P, "srv", ADMIN, label="toxic", channel_id="kids", review_at=0.9, act_at=0.95
    )
    out = await loop.service.handle_message(loop.msg("that was stupid", channel="kids"))
    assert out.action is Action.ALLOW
    policy = await loop.store.get_policy(P, "srv")
    assert policy.channels["kids"].thresholds["toxic"].review_at == 0.9
    assert "policy.threshold" in [e.action for e in await loop.store.entries("srv")]


async def test_allow_listed_term_is_not_scored(loop: Loop) -> None:
    await loop.service.set_allow_term(P, "srv", ADMIN, "kill")
    out = await loop.service.handle_message(loop.msg("nice kill in that round"))
    assert out.action is Action.ALLOW


async def test_exempt_role_and_channel(loop: Loop) -> None:
    await loop.service.set_exempt(P, "srv", ADMIN, kind="channel", target_id="staff", exempt=True)
    out = await loop.service.handle_message(loop.msg("fuck", channel="staff"))
    assert out.decision is None


async def test_capabilities_degrade_and_decision_says_so(store) -> None:
    loop = Loop(store, caps=Capabilities(can_delete=False, can_hold=False, can_timeout=False))
    await loop.auto(Action.TIMEOUT)
    out = await loop.service.handle_message(loop.msg("fuck you"))
    assert out.action is Action.ESCALATE and out.decision.degraded_from is Action.TIMEOUT
    assert loop.actions.names() == ["escalate", "notify"]
    stored = await loop.store.get_case(out.case.id)
    assert stored.decision.degraded_from is Action.TIMEOUT


@pytest.mark.parametrize(
    "text",
    ["x" * 5000 + " idiot", "null\x00byte idiot", "bad \udcff utf8 idiot", "z̷̢a̶l̸g̵o idiot", "\u202eidiot"],
)
async def test_bad_input_is_handled(loop: Loop, text: str) -> None:
    out = await loop.service.handle_message(loop.msg(text))
    assert out.action is Action.HOLD
    stored = await loop.store.get_case(out.case.id)
    assert "\x00" not in stored.text


async def test_unknown_server_gets_defaults(loop: Loop) -> None:
    out = await loop.service.handle_message(loop.msg("hi", server="brand-new"))
    assert out.action is Action.ALLOW
    policy = await loop.store.get_policy(P, "brand-new")
    assert policy.auto_action is False


async def test_new_servers_start_with_the_configured_default_thresholds(store) -> None:
    from moderation.policy import DEFAULT_TIERS, Tiers

    store.default_thresholds = {**DEFAULT_TIERS, "toxic": Tiers(0.3, 0.6)}
    loop = Loop(store)
    out = await loop.service.handle_message(loop.msg("hello", server="fresh"))
    assert out.action is Action.ALLOW
    policy = await store.get_policy(P, "fresh")
    assert policy.thresholds["toxic"] == Tiers(0.3, 0.6)
    assert out.decision.thresholds["toxic"] == (0.3, 0.6)
