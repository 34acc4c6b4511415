"""The audit log's hash chain (pure functions).

Each row stores ``prev_hash`` (the previous row's ``hash``; ``GENESIS`` for the first) and
``hash = sha256(prev_hash, at, action, server_id, personal_digest)``. The personal fields (actor,
subject, detail) enter only through ``personal_digest``: erasing a member's data blanks those
fields and marks the row ``erased`` while the digest, and so the chain, stays verifiable. A row
that is not marked erased must still match its digest, so editing an actor, subject or detail is
detected; so is editing, inserting or deleting any row before the head. Rewriting the whole tail
consistently can only be caught against an externally kept head hash (``verify_chain(expected_head=)``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def personal_digest(actor: str | None, subject: str | None, detail_json: str | None) -> str:
    return hashlib.sha256(canonical_json([actor, subject, detail_json]).encode("utf-8")).hexdigest()


def row_hash(prev_hash: str, at: datetime, action: str, server_id: str, digest: str) -> str:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = canonical_json([prev_hash, stamp, action, server_id, digest])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainVerification:
    """Result of ``verify_chain``; truthy when the chain is intact."""

    ok: bool
    checked: int
    head: str
    bad_id: int | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def verify_rows(rows: Any, expected_head: str | None = None) -> ChainVerification:
    """Check rows (mappings with the audit_log columns) in id order."""
    tip = GENESIS
    checked = 0
    for row in rows:
        r: Mapping[str, Any] = row
        rid = int(r["id"])
        if r["prev_hash"] != tip:
            return ChainVerification(False, checked, tip, rid, "prev_hash does not match the previous row")
        if not r["erased"]:
            digest = personal_digest(r["actor"], r["subject"], r["detail"])
            if digest != r["personal_digest"]:
                return ChainVerification(False, checked, tip, rid, "actor/subject/detail were modified")
        expected = row_hash(r["prev_hash"], r["at"], r["action"], r["server_id"], r["personal_digest"])
        if expected != r["hash"]:
            return ChainVerification(False, checked, tip, rid, "row hash does not match its contents")
        tip = r["hash"]
        checked += 1
    if expected_head is not None and tip != expected_head:
        return ChainVerification(False, checked, tip, None, "head differs from the expected head")
    return ChainVerification(True, checked, tip)
