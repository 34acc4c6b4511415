from __future__ import annotations

import json

import pytest

from moderation.scoring.wire import (
    WIRE_VERSION,
    ScoreReply,
    ScoreRequest,
    WireError,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    peek_reply_address,
)


def test_request_roundtrip_keeps_every_field() -> None:
    req = ScoreRequest(
        id="c1:42",
        text="tu es nul 🤬\u202e",
        reply_to="chatmod:results:c1",
        deadline=1700000000.25,
        normalized=True,
        model="v3",
        sent_at=1699999999.5,
    )
    assert decode_request(encode_request(req)) == req


def test_request_minimal_defaults() -> None:
    req = decode_request(json.dumps({"v": 1, "id": "a", "text": "", "reply_to": "r"}))
    assert req.text == "" and req.deadline is None and not req.normalized and req.model is None


def test_reply_roundtrip_ok_and_error() -> None:
    ok = ScoreReply(id="a", scores={"toxic": 0.9, "insult": 0.1}, model_version="m1", timings={"model": 1.5})
    assert decode_reply(encode_reply(ok)) == ok
    err = ScoreReply(id="b", error="expired", detail="deadline passed")
    back = decode_reply(encode_reply(err))
    assert back == err and not back.ok


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf8", "bad_json"),
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_shape"),
        (b'{"id": "a", "text": "x", "reply_to": "r"}', "bad_version"),
        (b'{"v": 2, "id": "a", "text": "x", "reply_to": "r"}', "bad_version"),
        (b'{"v": true, "id": "a", "text": "x", "reply_to": "r"}', "bad_version"),
        (b'{"v": 1, "text": "x", "reply_to": "r"}', "bad_field"),
        (b'{"v": 1, "id": "", "text": "x", "reply_to": "r"}', "bad_field"),
        (b'{"v": 1, "id": "a", "text": 5, "reply_to": "r"}', "bad_field"),
        (b'{"v": 1, "id": "a", "text": "x"}', "bad_field"),
        (b'{"v": 1, "id": "a", "text": "x", "reply_to": "r", "deadline": "soon"}', "bad_field"),
        (b'{"v": 1, "id": "a", "text": "x", "reply_to": "r", "deadline": NaN}', "bad_field"),
        (b'{"v": 1, "id": "a", "text": "x", "reply_to": "r", "normalized": 1}', "bad_field"),
    ],
)
def test_malformed_requests_rejected_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(WireError) as info:
        decode_request(raw)
    assert info.value.reason == reason


def test_oversized_text_rejected() -> None:
    raw = encode_request(ScoreRequest(id="a", text="x" * 20_001, reply_to="r"))
    with pytest.raises(WireError) as info:
        decode_request(raw)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize(
    "obj",
    [
        {"v": 1, "id": "a", "scores": {}},
        {"v": 1, "id": "a", "scores": {"toxic": 1.5}, "model_version": "m"},
        {"v": 1, "id": "a", "scores": {"toxic": 0.5}},
        {"v": 1, "id": "a", "error": 3},
        {"v": 1, "id": "a", "error": "x", "timings": []},
    ],
)
def test_malformed_replies_rejected(obj: dict[str, object]) -> None:
    with pytest.raises(WireError):
        decode_reply(json.dumps(obj))


def test_encoding_is_versioned_compact_json() -> None:
    raw = encode_request(ScoreRequest(id="a", text="hé", reply_to="r"))
    assert json.loads(raw)["v"] == WIRE_VERSION
    assert b" " not in raw and "hé".encode() in raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"v": 9, "id": "a", "reply_to": "r"}', ("a", "r")),
        (b'{"v": 1, "id": "a"}', None),
        (b"garbage", None),
        (b'["a"]', None),
    ],
)
def test_peek_reply_address(raw: bytes, expected: tuple[str, str] | None) -> None:
    assert peek_reply_address(raw) == expected
