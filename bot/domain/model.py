"""Entities of a cohort's life: cohorts, members, sessions, actions, questions, notifications.

Plain mutable dataclasses with no persistence code: the database layer maps them onto tables
(imperative mapping), so the service can load, change and commit them through a unit of work.
Value objects (settings, refs) are frozen. Nothing here reads a clock: instants are passed in.
Every instant is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain.refs import ChannelRef, UserRef

ACTIVE, PAUSED, ARCHIVED = "active", "paused", "archived"


@dataclass(kw_only=True, eq=False)
class Cohort:
    name: str
    slug: str
    zone: str
    created_at: datetime
    #: Whose cohort this is: a Slack workspace, the Matrix bot account or the terminal (an
    #: opaque key the adapters give each invocation). Nothing of another tenant is ever seen.
    tenant: str
    platform: str | None = None
    channel_id: str | None = None
    schedule: dict[str, Any] | None = None
    roles: list[str] = field(default_factory=list)
    reminder_offsets: list[int] = field(default_factory=list)  # minutes before a session
    settings: dict[str, Any] = field(default_factory=dict)
    status: str = ACTIVE
    archived_at: datetime | None = None
    question_seq: int = 0
    #: Scheduled question releases held back in a row for too few questions (`min_batch`).
    held_releases: int = 0
    # Every notification due before this instant has been planned (None: nothing yet). After
    # downtime the planner starts from here, so what fell due meanwhile is sent late or
    # dropped as stale rather than silently skipped.
    planned_through: datetime | None = None
    id: int = field(default=None)  # type: ignore[assignment]  # set by the database

    @property
    def channel(self) -> ChannelRef | None:
        if self.platform is None or self.channel_id is None:
            return None
        return ChannelRef(self.platform, self.channel_id)


@dataclass(kw_only=True, eq=False)
class Member:
    cohort_id: int
    platform: str
    user_id: str
    joined_at: datetime
    is_member: bool = True  # False: facilitator who is not in the rotation
    is_facilitator: bool = False
    share_checkins: bool = False
    #: When they left (or were removed from) the cohort's channel or room: until they are
    #: back, they get no roles, reminders, DMs or questions from the cohort.
    left_at: datetime | None = None
    id: int = field(default=None)  # type: ignore[assignment]

    @property
    def user(self) -> UserRef:
        return UserRef(self.platform, self.user_id)


@dataclass(kw_only=True, eq=False)
class Person:
    """What the bot remembers about a person across the cohorts of one tenant (their own
    choices only): the same user id in another tenant is another person."""

    tenant: str
    platform: str
    user_id: str
    zone: str | None = None
    dm_channel: str | None = None


SCHEDULED, CANCELLED = "scheduled", "cancelled"


@dataclass(kw_only=True, eq=False)
class Session:
    cohort_id: int
    starts_at: datetime
    duration_min: int
    origin: str = "schedule"  # schedule | added
    slot: datetime | None = None  # the recurrence instant this session came from
    status: str = SCHEDULED
    rev: int = 0  # bumped when the session moves, so reminders for the new time are new rows
    cancel_reason: str | None = None
    announced: bool = False
    roster: dict[str, Any] | None = None  # members/present snapshot when roles were fixed
    phase: int | None = None
    phase_run: int = 0
    summarised: bool = False
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(kw_only=True, eq=False)
class Assignment:
    session_id: int
    role: str
    member_id: int
    source: str = "rotation"  # rotation | override | swap
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(kw_only=True, eq=False)
class Absence:
    member_id: int
    first_day: str  # ISO dates in the cohort's zone, inclusive
    last_day: str
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(kw_only=True, eq=False)
class Swap:
    session_id: int
    role: str
    from_member: int
    to_member: int
    created_at: datetime
    status: str = "pending"  # pending | accepted | declined
    id: int = field(default=None)  # type: ignore[assignment]


OPEN_ANSWERS = ("done", "partly", "notyet", "dropped")


@dataclass(kw_only=True, eq=False)
class Action:
    cohort_id: int
    member_id: int
    number: int  # per member, what they type
    text: str
    created_at: datetime
    status: str = "open"  # open | done | dropped
    answer: str | None = None  # the pending check-in answer
    note: str | None = None
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(kw_only=True, eq=False)
class ActionReview:
    action_id: int
    session_id: int
    answer: str  # done | partly | notyet | dropped | none
    note: str | None = None
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(kw_only=True, eq=False)
class Question:
    """An anonymous question. Nothing here may point at its author."""

    cohort_id: int
    text: str
    code_hash: str
    review_id: str  # random label for moderation; never derived from the author
    day: str  # ISO date of submission (coarse on purpose: no instant to correlate)
    status: str = "pending"  # pending | approved | returned | released | merged | retracted
    number: int | None = None  # "#N", given at release
    return_note: str | None = None
    upvotes: int = 0
    #: While upvotes are open (from release to the end of the session it was released for):
    #: the salt of its voters' keyed hashes. Cleared, with the upvote rows, once voting closes.
    vote_salt: str | None = None
    votes_until: datetime | None = None
    #: The outbox key of its post in the channel, once released: to remove or update it.
    post_key: str | None = None
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(kw_only=True, eq=False)
class Upvote:
    question_id: int
    voter_hash: str
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(kw_only=True, eq=False)
class KeySalt:
    scope: str  # "day:2026-12-07"
    salt: str  # hex


@dataclass(kw_only=True, eq=False)
class RateCount:
    day: str
    key_hash: str
    count: int = 0


PENDING, FIRED, DROPPED, VOID = "pending", "fired", "dropped", "void"


@dataclass(kw_only=True, eq=False)
class Notification:
    """Something the bot will post at `due_at`; `key` makes it unique for ever."""

    key: str
    kind: str
    cohort_id: int
    due_at: datetime
    stale_at: datetime
    session_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    status: str = PENDING
    fired_at: datetime | None = None
    late: bool = False
    id: int = field(default=None)  # type: ignore[assignment]


SENT, FAILED = "sent", "failed"
#: What an outbox row does to a message sent before (`OutboxMessage.op`).
EDIT, DELETE = "edit", "delete"


@dataclass(kw_only=True, eq=False)
class OutboxMessage:
    """One message to one destination; `key` dedupes it, `id` is the send's transaction id."""

    key: str
    platform: str
    target: str  # channel id, or user id when `direct`
    direct: bool
    body: dict[str, Any]
    created_at: datetime
    due_at: datetime
    cohort_id: int | None = None
    #: The tenant the message is sent in (a Slack workspace: whose token sends it).
    tenant: str | None = None
    stale_at: datetime | None = None  # past this, sending it would mislead: drop it
    status: str = PENDING
    attempts: int = 0
    claimed_until: datetime | None = None
    sent_at: datetime | None = None
    platform_message_id: str | None = None
    error: str | None = None
    #: None sends `body` as a new message; EDIT replaces the message sent for the row keyed
    #: `of_key` with `body`, DELETE removes that message.
    op: str | None = None
    of_key: str | None = None
    #: Kept once sent (not pruned a day later) while a later edit or removal may need the
    #: platform's id of the message.
    keep: bool = False
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(kw_only=True, eq=False)
class SeenEvent:
    """An inbound platform event already handled (drops Slack retries, Matrix replays)."""

    event_id: str
    seen_at: datetime
