"""SQL persistence for the moderation core (SQLAlchemy 2 async; SQLite default, Postgres).

``open_store(url)`` gives a ``SqlStore`` implementing ``moderation.ports.Store`` plus retention,
erasure, the prediction log and dashboard aggregates. The schema is managed by Alembic
(``migrations/``); ``moderation.store.schema.metadata`` is the model it must match.
"""

from __future__ import annotations

from moderation.store.analytics import ModelVersionRecord, PredictionBucket, PredictionRow
from moderation.store.cases import LabelledExample
from moderation.store.chain import ChainVerification
from moderation.store.engine import make_engine, make_session_factory
from moderation.store.privacy import ErasureReport
from moderation.store.sql import DEFAULT_RETENTION, SqlStore, open_store

__all__ = [
    "DEFAULT_RETENTION",
    "ChainVerification",
    "ErasureReport",
    "LabelledExample",
    "ModelVersionRecord",
    "PredictionBucket",
    "PredictionRow",
    "SqlStore",
    "make_engine",
    "make_session_factory",
    "open_store",
]
