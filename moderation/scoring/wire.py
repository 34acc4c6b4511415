"""Versioned wire format between score clients and scorer workers (see docs/WIRE.md).

Pure: encode/decode only, no I/O. Every message is one JSON object carrying ``"v"`` (the format
version). A decoder rejects anything it cannot fully trust with ``WireError`` whose ``reason`` is a
short machine-readable code; the worker routes such entries to the dead-letter stream.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from moderation.errors import ModerationError

WIRE_VERSION: Final[int] = 1
#: Discord allows 4,000 characters; anything far beyond that is not a chat message.
MAX_TEXT_CHARS: Final[int] = 20_000
MAX_ID_CHARS: Final[int] = 128


class WireError(ModerationError):
    """A message could not be decoded; ``reason`` is a short code (``bad_json``, ``bad_version``…)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """One text to score.

    ``deadline`` is an absolute UNIX time (seconds): a worker drops the request once it has passed,
    because the caller has already given up. ``normalized`` says ``text`` is already normalised.
    """

    id: str
    text: str
    reply_to: str
    deadline: float | None = None
    normalized: bool = False
    model: str | None = None
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class ScoreReply:
    """The answer to one request: scores, or an error code (``expired``, ``malformed``, ``failed``)."""

    id: str
    scores: Mapping[str, float] = field(default_factory=dict)
    model_version: str = ""
    error: str | None = None
    detail: str = ""
    #: Stage timings in milliseconds, e.g. ``queue``, ``batch_wait``, ``model``.
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def _dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def encode_request(req: ScoreRequest) -> bytes:
    obj: dict[str, Any] = {"v": WIRE_VERSION, "id": req.id, "text": req.text, "reply_to": req.reply_to}
    if req.deadline is not None:
        obj["deadline"] = req.deadline
    if req.normalized:
        obj["normalized"] = True
    if req.model is not None:
        obj["model"] = req.model
    if req.sent_at is not None:
        obj["sent_at"] = req.sent_at
    return _dumps(obj)


def encode_reply(rep: ScoreReply) -> bytes:
    obj: dict[str, Any] = {"v": WIRE_VERSION, "id": rep.id}
    if rep.error is None:
        obj["scores"] = dict(rep.scores)
        obj["model_version"] = rep.model_version
    else:
        obj["error"] = rep.error
        if rep.detail:
            obj["detail"] = rep.detail
    if rep.timings:
        obj["timings"] = {k: round(v, 3) for k, v in rep.timings.items()}
    return _dumps(obj)


def _load(raw: bytes | str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError("bad_json", str(exc)[:200]) from exc
    if not isinstance(obj, dict):
        raise WireError("bad_shape", f"expected an object, got {type(obj).__name__}")
    version = obj.get("v")
    if version != WIRE_VERSION or isinstance(version, bool):
        raise WireError("bad_version", f"unsupported wire version {version!r}")
    return obj


def _str(obj: Mapping[str, Any], key: str, *, limit: int, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value and key != "text"):
        raise WireError("bad_field", f"{key} must be a non-empty string")
    if len(value) > limit:
        raise WireError("too_large", f"{key} has {len(value)} characters (max {limit})")
    return value


def _num(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireError("bad_field", f"{key} must be a finite number")
    return float(value)


def decode_request(raw: bytes | str) -> ScoreRequest:
    """Parse and validate a request; raises ``WireError`` on anything malformed."""
    obj = _load(raw)
    normalized = obj.get("normalized", False)
    if not isinstance(normalized, bool):
        raise WireError("bad_field", "normalized must be a boolean")
    return ScoreRequest(
        id=_str(obj, "id", limit=MAX_ID_CHARS) or "",
        text=_str(obj, "text", limit=MAX_TEXT_CHARS) or "",
        reply_to=_str(obj, "reply_to", limit=256) or "",
        deadline=_num(obj, "deadline"),
        normalized=normalized,
        model=_str(obj, "model", limit=256, required=False),
        sent_at=_num(obj, "sent_at"),
    )


def decode_reply(raw: bytes | str) -> ScoreReply:
    """Parse and validate a reply; raises ``WireError`` on anything malformed."""
    obj = _load(raw)
    rid = _str(obj, "id", limit=MAX_ID_CHARS) or ""
    timings_raw = obj.get("timings", {})
    if not isinstance(timings_raw, dict):
        raise WireError("bad_field", "timings must be an object")
    timings = {str(k): _num(timings_raw, k) or 0.0 for k in timings_raw}
    error = obj.get("error")
    if error is not None:
        if not isinstance(error, str):
            raise WireError("bad_field", "error must be a string")
        detail = obj.get("detail", "")
        return ScoreReply(id=rid, error=error, detail=str(detail), timings=timings)
    scores_raw = obj.get("scores")
    if not isinstance(scores_raw, dict) or not scores_raw:
        raise WireError("bad_field", "scores must be a non-empty object")
    scores: dict[str, float] = {}
    for label in scores_raw:
        value = _num(scores_raw, label)
        if value is None or not 0.0 <= value <= 1.0:
            raise WireError("bad_field", f"score {label!r} must be a probability")
        scores[str(label)] = value
    version = _str(obj, "model_version", limit=256) or ""
    return ScoreReply(id=rid, scores=scores, model_version=version, timings=timings)


def peek_reply_address(raw: bytes | str) -> tuple[str, str] | None:
    """Best effort ``(id, reply_to)`` from a message that failed to decode, to tell its sender.

    Only used for error replies: a rejected request whose sender can still be identified gets an
    immediate ``malformed`` reply instead of waiting for its timeout.
    """
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    rid, reply_to = obj.get("id"), obj.get("reply_to")
    if not (isinstance(rid, str) and isinstance(reply_to, str)):
        return None
    if 0 < len(rid) <= MAX_ID_CHARS and 0 < len(reply_to) <= 256:
        return rid, reply_to
    return None
