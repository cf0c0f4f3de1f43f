"""The schema, and the imperative mapping of `bot.domain.model` entities onto it.

Alembic revisions in `migrations/` own the real schema; this metadata is what they are checked
against (`alembic check`). Every instant is stored as UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator

from bot.domain import model as m

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_instant(value: datetime) -> str:
    """An instant exactly as SQLAlchemy stores `UTCDateTime` in SQLite (for raw bulk writes:
    SQLite compares these as text, so the format must match to the character)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


cohorts = Table(
    "cohorts", metadata, _id(),
    Column("name", String(80), nullable=False),
    Column("tenant", String(200), nullable=False),
    Column("slug", String(40), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("platform", String(16)),
    Column("channel_id", String(255)),
    Column("schedule", JSON),
    Column("roles", JSON, nullable=False),
    Column("reminder_offsets", JSON, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("archived_at", UTCDateTime),
    Column("question_seq", Integer, nullable=False),
    Column("held_releases", Integer, nullable=False, server_default="0"),
    Column("planned_through", UTCDateTime),
    # A channel two workspaces share (Slack Connect) can hold a cohort of each.
    UniqueConstraint("tenant", "platform", "channel_id", name="uq_cohorts_channel"),
    UniqueConstraint("tenant", "slug", name="uq_cohorts_tenant_slug"),
)

members = Table(
    "members", metadata, _id(),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("joined_at", UTCDateTime, nullable=False),
    Column("is_member", Boolean, nullable=False),
    Column("is_facilitator", Boolean, nullable=False),
    Column("share_checkins", Boolean, nullable=False),
    Column("left_at", UTCDateTime),
    UniqueConstraint("cohort_id", "platform", "user_id", name="uq_members_user"),
    Index("ix_members_user", "platform", "user_id"),
)

persons = Table(
    "persons", metadata,
    Column("tenant", String(200), primary_key=True),
    Column("platform", String(16), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("zone", String(64)),
    Column("dm_channel", String(255)),
)

sessions = Table(
    "sessions", metadata, _id(),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("duration_min", Integer, nullable=False),
    Column("origin", String(16), nullable=False),
    Column("slot", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("rev", Integer, nullable=False),
    Column("cancel_reason", String(300)),
    Column("announced", Boolean, nullable=False),
    Column("roster", JSON),
    Column("phase", Integer),
    Column("phase_run", Integer, nullable=False),
    Column("summarised", Boolean, nullable=False),
    UniqueConstraint("cohort_id", "slot", name="uq_sessions_slot"),
    Index("ix_sessions_cohort_start", "cohort_id", "starts_at"),
)

assignments = Table(
    "assignments", metadata, _id(),
    Column("session_id", ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(30), nullable=False),
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(16), nullable=False),
    UniqueConstraint("session_id", "role", name="uq_assignments_role"),
)

absences = Table(
    "absences", metadata, _id(),
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("first_day", String(10), nullable=False),
    Column("last_day", String(10), nullable=False),
)

swaps = Table(
    "swaps", metadata, _id(),
    Column("session_id", ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(30), nullable=False),
    Column("from_member", ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("to_member", ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
)

actions = Table(
    "actions", metadata, _id(),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("answer", String(16)),
    Column("note", Text),
)

action_reviews = Table(
    "action_reviews", metadata, _id(),
    Column("action_id", ForeignKey("actions.id", ondelete="CASCADE"), nullable=False),
    Column("session_id", ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("answer", String(16), nullable=False),
    Column("note", Text),
    UniqueConstraint("action_id", "session_id", name="uq_action_reviews_once"),
)

# Anonymous questions: by design no column here can point at an author.
questions = Table(
    "questions", metadata, _id(),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
    Column("text", Text, nullable=False),
    Column("code_hash", String(128), nullable=False, unique=True),
    Column("review_id", String(16), nullable=False, unique=True),
    Column("day", String(10), nullable=False),
    Column("status", String(16), nullable=False),
    Column("number", Integer),
    Column("return_note", Text),
    Column("upvotes", Integer, nullable=False),
    Column("vote_salt", String(64)),  # while upvotes are open: see bot/service/anonymity.py
    Column("votes_until", UTCDateTime),
    Column("post_key", String(300)),
)

upvotes = Table(
    "upvotes", metadata, _id(),
    Column("question_id", ForeignKey("questions.id", ondelete="CASCADE"), nullable=False),
    Column("voter_hash", String(128), nullable=False),
    UniqueConstraint("question_id", "voter_hash", name="uq_upvotes_once"),
)

# Random salts for keyed hashes (bot/service/anonymity.py): useless without the operator's
# secret, and deleted when their day is over.
key_salts = Table(
    "key_salts", metadata,
    Column("scope", String(40), primary_key=True),
    Column("salt", String(64), nullable=False),
)

# Questions asked per person and day, keyed by a hash only that day's key can make.
rate_counts = Table(
    "rate_counts", metadata,
    Column("day", String(10), primary_key=True),
    Column("key_hash", String(128), primary_key=True),
    Column("count", Integer, nullable=False),
)

notifications = Table(
    "notifications", metadata, _id(),
    Column("key", String(200), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
    Column("session_id", ForeignKey("sessions.id", ondelete="CASCADE")),
    Column("due_at", UTCDateTime, nullable=False),
    Column("stale_at", UTCDateTime, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("fired_at", UTCDateTime),
    Column("late", Boolean, nullable=False),
    Index("ix_notifications_pending_due", "status", "due_at"),
    Index("ix_notifications_session", "session_id"),
)

outbox = Table(
    "outbox", metadata, _id(),
    Column("key", String(300), nullable=False, unique=True),
    Column("platform", String(16), nullable=False),
    Column("target", String(255), nullable=False),
    Column("direct", Boolean, nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="SET NULL")),
    Column("tenant", String(200)),
    Column("stale_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("claimed_until", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("platform_message_id", String(255)),
    Column("error", String(300)),
    Column("op", String(8)),
    Column("of_key", String(300)),
    Column("keep", Boolean, nullable=False, server_default=false()),
    Index("ix_outbox_pending_due", "status", "due_at"),
    # A message carries its id to the platform (the send's transaction id): an id must never
    # come back after its row was pruned, or a new message could pass for an old one.
    sqlite_autoincrement=True,
)

seen_events = Table(
    "seen_events", metadata,
    Column("event_id", String(255), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False, index=True),
)

# Slack OAuth installs, one per workspace (or Enterprise Grid organisation). An absent
# enterprise or team id is stored as "" so that the pair can be the primary key.
slack_installations = Table(
    "slack_installations", metadata,
    Column("enterprise_id", String(32), primary_key=True),
    Column("team_id", String(32), primary_key=True),
    Column("bot_token", Text, nullable=False),  # a secret: never logged
    Column("bot_user_id", String(32), nullable=False),
    Column("bot_id", String(32), nullable=False),
    Column("installer_user_id", String(32), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("installed_at", UTCDateTime, nullable=False),
)

# The Matrix bot account's cross-signing identity: its public master key, and the three
# private keys sealed with `[matrix] store_key` (see `adapters.matrix.cross_signing`), so
# that every start and every instance signs its device with the same identity.
matrix_cross_signing = Table(
    "matrix_cross_signing", metadata,
    Column("user_id", String(255), primary_key=True),
    Column("master_key", String(64), nullable=False),
    Column("sealed_keys", Text, nullable=False),  # a secret: never logged
    Column("created_at", UTCDateTime, nullable=False),
)

MAPPING: dict[type[Any], Table] = {
    m.Cohort: cohorts,
    m.Member: members,
    m.Person: persons,
    m.Session: sessions,
    m.Assignment: assignments,
    m.Absence: absences,
    m.Swap: swaps,
    m.Action: actions,
    m.ActionReview: action_reviews,
    m.Question: questions,
    m.Upvote: upvotes,
    m.KeySalt: key_salts,
    m.RateCount: rate_counts,
    m.Notification: notifications,
    m.OutboxMessage: outbox,
    m.SeenEvent: seen_events,
}

_mapper_registry = registry(metadata=metadata)


def map_entities() -> None:
    """Map the domain entities onto the tables; idempotent, called by the composition root."""
    for cls, table in MAPPING.items():
        if not hasattr(cls, "__mapper__"):
            _mapper_registry.map_imperatively(cls, table)
