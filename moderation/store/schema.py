"""The relational schema. ``migrations/versions`` must produce exactly this (a test compares them).

Conventions: surrogate integer keys; natural keys as unique constraints (they are what makes a
redelivered message or a replayed action idempotent); enums stored as their string values (no
database enum types, so migrations stay portable); datetimes are ``UTCDateTime``; JSON columns hold
small structured values (scores, decision detail, server policy).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from moderation.store.types import UTCDateTime

#: Deterministic constraint names: Alembic needs them to drop constraints on downgrade.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Ids that may grow without bound (one row per prediction / audit event) are 64-bit on Postgres;
# SQLite only auto-increments an INTEGER PRIMARY KEY, which is 64-bit there anyway.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ID_LEN = 191  # platform ids are short; 191 keeps any index within MySQL-style limits too
HASH_LEN = 64  # hex sha256

servers = Table(
    "servers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("server_id", String(ID_LEN), nullable=False),
    # Server-level settings (defaults, ladder, exemptions) as one JSON document; see codec.py.
    Column("policy", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("platform", "server_id"),
)

channel_policies = Table(
    "channel_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("server_pk", Integer, ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", String(ID_LEN), nullable=False),
    # label -> [review_at, act_at]; only the labels this channel overrides.
    Column("thresholds", JSON, nullable=False),
    Column("action", String(16), nullable=True),
    Column("auto_action", Boolean, nullable=True),
    Column("exempt", Boolean, nullable=False, default=False),
    UniqueConstraint("server_pk", "channel_id"),
)

message_versions = Table(
    "message_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("server_id", String(ID_LEN), nullable=False),
    Column("channel_id", String(ID_LEN), nullable=False),
    Column("message_id", String(ID_LEN), nullable=False),
    Column("content_hash", String(HASH_LEN), nullable=False),
    # Personal data: replaced by a salted pseudonym (ids) or emptied on erasure.
    Column("author_id", String(ID_LEN), nullable=False),
    Column("author_name", String(255), nullable=False, default=""),
    Column("author_roles", JSON, nullable=False),
    Column("author_role_ids", JSON, nullable=False),
    Column("author_is_bot", Boolean, nullable=False, default=False),
    Column("author_avatar_url", Text, nullable=True),
    Column("channel_name", String(255), nullable=False, default=""),
    # The text is kept only within the retention window (NULL afterwards, and after erasure).
    Column("text", Text, nullable=True),
    Column("text_purged_at", UTCDateTime, nullable=True),
    Column("edited", Boolean, nullable=False, default=False),
    Column("content_missing", Boolean, nullable=False, default=False),
    Column("attachments", Integer, nullable=False, default=0),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    # The MessageKey: a redelivered version hits this and is not decided twice.
    UniqueConstraint("platform", "channel_id", "message_id", "content_hash"),
    Index("ix_message_versions_author", "platform", "author_id"),
    Index("ix_message_versions_received_at", "received_at"),
)

cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "message_version_id",
        Integer,
        ForeignKey("message_versions.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("platform", String(16), nullable=False),
    Column("server_id", String(ID_LEN), nullable=False),
    Column("channel_id", String(ID_LEN), nullable=False),
    Column("user_id", String(ID_LEN), nullable=False),  # denormalised author id, for filters
    Column("action", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("category", String(32), nullable=True),  # top label hit; aggregates group on it
    Column("model_version", String(128), nullable=True),
    Column("decision", JSON, nullable=False),
    Column("scores", JSON, nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("verdict", String(16), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Index("ix_cases_server_status", "platform", "server_id", "status"),
    Index("ix_cases_user", "platform", "user_id"),
    Index("ix_cases_decided_at", "decided_at"),
)

overrides = Table(
    "overrides",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("moderator_platform", String(16), nullable=False),
    Column("moderator_id", String(ID_LEN), nullable=False),
    Column("moderator_name", String(255), nullable=False, default=""),
    Column("moderator_roles", JSON, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("previous_action", String(16), nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_overrides_case_id", "case_id"),
    Index("ix_overrides_at", "at"),
)

appeals = Table(
    "appeals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("user_id", String(ID_LEN), nullable=False),
    Column("user_name", String(255), nullable=False, default=""),
    Column("text", Text, nullable=True),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, default="submitted"),
    Column("outcome", String(16), nullable=True),
    Column("decided_by", String(ID_LEN + 17), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("message", Text, nullable=False, default=""),
    Index("ix_appeals_case_id", "case_id"),
    Index("ix_appeals_status", "status"),
)

strikes = Table(
    "strikes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("server_id", String(ID_LEN), nullable=False),
    Column("user_id", String(ID_LEN), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="SET NULL"), nullable=True),
    Column("reversed", Boolean, nullable=False, default=False),
    Column("reversed_at", UTCDateTime, nullable=True),
    Index("ix_strikes_member", "platform", "server_id", "user_id"),
    Index("ix_strikes_case_id", "case_id"),
)

applied_actions = Table(
    "applied_actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(32), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
    # At most once per (case, action), across restarts and concurrent workers.
    UniqueConstraint("case_id", "action"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(64), nullable=False),
    Column("server_id", String(ID_LEN), nullable=False),
    # Personal fields: covered by personal_digest, so erasure can blank them without breaking the chain.
    Column("actor", String(ID_LEN + 17), nullable=True),
    Column("subject", String(255), nullable=True),
    Column("detail", Text, nullable=True),  # canonical JSON, exactly as digested
    Column("personal_digest", String(HASH_LEN), nullable=False),
    Column("erased", Boolean, nullable=False, default=False),
    # Hash chain. prev_hash is unique: two concurrent appends cannot both extend the same tip.
    Column("prev_hash", String(HASH_LEN), nullable=False, unique=True),
    Column("hash", String(HASH_LEN), nullable=False, unique=True),
    Index("ix_audit_log_server_id", "server_id"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", String(128), nullable=False, unique=True),
    Column("card", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("promoted_at", UTCDateTime, nullable=True),
    Column("active", Boolean, nullable=False, default=False),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("source", String(32), nullable=False, default="api"),
    Column("text_hash", String(HASH_LEN), nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("scores", JSON, nullable=False),
    Column("top_label", String(32), nullable=True),
    Column("top_score", Float, nullable=True),
    Index("ix_predictions_created_at", "created_at"),
)
