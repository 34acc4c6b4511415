"""Translation between domain objects and the JSON stored in policy and decision columns.

Floats go through JSON as their ``repr`` (shortest round-trip form), so thresholds and scores come
back bit-for-bit equal. Timedeltas are stored as integer days/seconds/microseconds for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from moderation.domain import Action, Decision, LabelHit, Role
from moderation.policy import ChannelPolicy, LadderStep, ServerPolicy, StrikeLadder, Tiers

POLICY_FORMAT = 1


def thresholds_to_json(thresholds: Mapping[str, Tiers]) -> dict[str, list[float]]:
    return {label: [t.review_at, t.act_at] for label, t in sorted(thresholds.items())}


def thresholds_from_json(data: Mapping[str, Any]) -> dict[str, Tiers]:
    return {label: Tiers(pair[0], pair[1]) for label, pair in data.items()}


def _td_to_json(td: timedelta) -> list[int]:
    return [td.days, td.seconds, td.microseconds]


def _td_from_json(data: list[int]) -> timedelta:
    return timedelta(days=data[0], seconds=data[1], microseconds=data[2])


def server_policy_to_json(policy: ServerPolicy) -> dict[str, Any]:
    """Server-level settings only; channel overrides live in their own table."""
    return {
        "format": POLICY_FORMAT,
        "thresholds": thresholds_to_json(policy.thresholds),
        "action": policy.action.value,
        "auto_action": policy.auto_action,
        "exempt_role_ids": sorted(policy.exempt_role_ids),
        "exempt_channel_ids": sorted(policy.exempt_channel_ids),
        "allow_terms": list(policy.allow_terms),
        "ladder": {
            "steps": [[s.strikes, s.action.value, s.timeout_seconds] for s in policy.ladder.steps],
            "window": _td_to_json(policy.ladder.window),
        },
        "review_channel_id": policy.review_channel_id,
    }


def server_policy_from_json(
    server_id: str, data: Mapping[str, Any], channels: Mapping[str, ChannelPolicy]
) -> ServerPolicy:
    ladder = data["ladder"]
    return ServerPolicy(
        server_id=server_id,
        thresholds=thresholds_from_json(data["thresholds"]),
        action=Action(data["action"]),
        auto_action=bool(data["auto_action"]),
        exempt_role_ids=frozenset(data["exempt_role_ids"]),
        exempt_channel_ids=frozenset(data["exempt_channel_ids"]),
        allow_terms=tuple(data["allow_terms"]),
        ladder=StrikeLadder(
            steps=tuple(LadderStep(n, Action(a), t) for n, a, t in ladder["steps"]),
            window=_td_from_json(ladder["window"]),
        ),
        review_channel_id=data.get("review_channel_id"),
        channels=dict(channels),
    )


def channel_policy_row(channel: ChannelPolicy) -> dict[str, Any]:
    return {
        "channel_id": channel.channel_id,
        "thresholds": thresholds_to_json(channel.thresholds),
        "action": channel.action.value if channel.action is not None else None,
        "auto_action": channel.auto_action,
        "exempt": channel.exempt,
    }


def channel_policy_from_row(row: Mapping[Any, Any]) -> ChannelPolicy:
    return ChannelPolicy(
        channel_id=row["channel_id"],
        thresholds=thresholds_from_json(row["thresholds"]),
        action=Action(row["action"]) if row["action"] is not None else None,
        auto_action=row["auto_action"],
        exempt=bool(row["exempt"]),
    )


def decision_to_json(decision: Decision) -> dict[str, Any]:
    return {
        "hits": [[h.label, h.score, h.tier, h.threshold] for h in decision.hits],
        "thresholds": {label: list(pair) for label, pair in sorted(decision.thresholds.items())},
        "degraded_from": decision.degraded_from.value if decision.degraded_from else None,
        "strike": decision.strike,
        "timeout_seconds": decision.timeout_seconds,
        "alert": decision.alert,
        "notify_member": decision.notify_member,
        "alert_moderators": decision.alert_moderators,
    }


def decision_from_row(
    action: str, reason: str, model_version: str | None, data: Mapping[str, Any]
) -> Decision:
    return Decision(
        action=Action(action),
        reason=reason,
        hits=tuple(LabelHit(lbl, score, tier, thr) for lbl, score, tier, thr in data["hits"]),
        thresholds={label: (pair[0], pair[1]) for label, pair in data["thresholds"].items()},
        model_version=model_version,
        degraded_from=Action(data["degraded_from"]) if data["degraded_from"] else None,
        strike=bool(data["strike"]),
        timeout_seconds=int(data["timeout_seconds"]),
        alert=data["alert"],
        notify_member=bool(data["notify_member"]),
        alert_moderators=bool(data["alert_moderators"]),
    )


def roles_to_json(roles: frozenset[Role]) -> list[str]:
    return sorted(r.value for r in roles)


def roles_from_json(data: list[str]) -> frozenset[Role]:
    return frozenset(Role(r) for r in data)
