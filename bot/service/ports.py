"""The ports the service talks through. Infrastructure and adapters implement them.

Nothing here knows SQLAlchemy, APScheduler or a platform SDK; tests implement these with
fakes or with the real SQLAlchemy unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar

from bot.chat.message import Message
from bot.domain.model import (
    Absence,
    Assignment,
    Cohort,
    Member,
    Notification,
    OutboxMessage,
    Person,
    Session,
)
from bot.domain.planning import PlannedNotice
from bot.domain.refs import ChannelRef, UserRef
from bot.service.api import Core

T = TypeVar("T")

#: A notification to insert in bulk: (cohort id, session id, what and when).
NewNotification = tuple[int, int | None, PlannedNotice]


@dataclass(frozen=True, slots=True)
class PlanTarget:
    """What the periodic planner reads of one active cohort. Schedule and settings stay JSON
    text: cohorts often share them, and the planner parses each distinct text once."""

    id: int
    schedule_json: str
    settings_json: str
    reminder_offsets: tuple[int, ...]
    planned_through: datetime | None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The planning view of a session row."""

    id: int
    cohort_id: int
    slot: datetime | None
    starts_at: datetime
    duration_min: int
    rev: int
    status: str


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Entities loaded through it are tracked; `commit` saves all changes."""

    #: True once this transaction added, moved or voided a notification or message: the
    #: scheduler then needs to look at the next due instant again.
    schedule_changed: bool

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    def add(self, entity: object) -> None: ...

    async def flush(self) -> None: ...

    async def delete(self, entity: object) -> None: ...

    async def get(self, cls: type[T], ident: int) -> T | None: ...

    async def find(self, cls: type[T], *, order_by: str | None = None, **eq: Any) -> list[T]:
        """Entities of `cls` whose attributes equal `eq` (a tuple value means IN)."""
        ...

    async def delete_where(self, cls: type[Any], **eq: Any) -> int: ...

    async def cohort_and_caller(self, user: UserRef, **eq: Any
                                ) -> tuple[Cohort | None, Member | None, Person | None]:
        """The cohort matching `eq` (as `find`), `user`'s membership of it and `user`'s own
        settings, in one read (all None when no cohort matches)."""
        ...

    async def memberships(self, user: UserRef, tenant: str) -> list[tuple[Cohort, Member]]:
        """`user`'s rows in the cohorts of `tenant` (a member or a facilitator), by cohort.
        Another tenant's cohorts are not read at all."""
        ...

    async def roster_rows(self, cohort_id: int) -> list[tuple[Member, Absence | None]]:
        """The cohort's rotation members (`is_member`), each with each of their absences
        (or None when they have none), in one read."""
        ...

    async def sessions_with_roles(
        self, cohort_id: int, session_ids: Sequence[int], announced_before: datetime | None
    ) -> list[tuple[Session, Assignment | None]]:
        """The sessions `session_ids`, and with `announced_before` also the cohort's announced,
        not cancelled sessions starting before it, each with each of its stored role
        assignments (or None), by start; in one read."""
        ...

    async def sessions_between(
        self, cohort_id: int, start: datetime, end: datetime, *, include_cancelled: bool = False,
        or_slot: bool = False,
    ) -> list[Session]:
        """The cohort's sessions starting in [start, end), by start; with `or_slot`, also
        those whose schedule slot is in it (a session moved out of the window)."""
        ...

    async def plan_targets(self, after_id: int, limit: int) -> list[PlanTarget]:
        """Up to `limit` active cohorts with a schedule and an id above `after_id`, by id."""
        ...

    async def set_planned_through(self, cohort_ids: Sequence[int], instant: datetime) -> None:
        ...

    async def sessions_window(
        self, cohort_ids: Sequence[int], start: datetime, end: datetime
    ) -> list[SessionInfo]:
        """Sessions of these cohorts starting, or originally slotted, in [start, end)."""
        ...

    async def sessions_with_notices(self, session_ids: Sequence[int]) -> set[int]:
        """Those of these sessions that have a notification that is not void."""
        ...

    async def insert_sessions(self, rows: Sequence[tuple[int, datetime, int]]) -> list[int]:
        """Insert schedule sessions (cohort id, slot, minutes) in bulk; their ids in order."""
        ...

    async def insert_notifications(self, rows: Sequence[NewNotification]) -> int:
        """Insert many new notifications; keys that exist already are skipped. Returns how
        many were new."""
        ...

    async def add_notification(self, n: Notification) -> bool:
        """Insert unless a notification with that key exists; True if inserted."""
        ...

    async def add_outbox(self, m: OutboxMessage) -> bool:
        """Insert unless a message with that key exists; True if inserted."""
        ...

    async def claim_notifications(self, now: datetime, limit: int) -> list[Notification]:
        """Pending notifications due at `now`, locked for this transaction (skip locked)."""
        ...

    async def claim_outbox(
        self, now: datetime, limit: int, lease_until: datetime, platforms: Sequence[str]
    ) -> list[OutboxMessage]:
        """Pending messages due at `now` and not leased, leased until `lease_until`."""
        ...

    async def finish_outbox(self, row_id: int, *, status: str, sent_at: datetime | None,
                            message_id: str | None, error: str | None) -> None:
        """Record a message's outcome and release its lease, in one statement."""
        ...

    async def next_due(self, platforms: Sequence[str] | None = None) -> datetime | None:
        """The earliest instant any pending notification, or any pending message (of these
        platforms, if given), falls due."""
        ...

    async def void_pending(self, *, session_id: int, kinds: Sequence[str] | None = None) -> int:
        ...

    async def seen(self, event_id: str, now: datetime) -> bool:
        """Record an inbound event id; False if it was seen before."""
        ...

    async def forget_events(self, before: datetime) -> int:
        """Delete the event ids recorded before `before`; returns how many."""
        ...

    async def unsee(self, event_id: str) -> None:
        """Forget one recorded event id (its command failed: a redelivery may run it)."""
        ...

    async def salt(self, scope: str, fresh: str) -> str:
        """The salt of `scope`, stored as `fresh` if it has none yet (atomic: every instance
        gets the same one)."""
        ...

    async def count_question(self, day: str, key_hash: str, limit: int) -> bool:
        """Count one question for `key_hash` on `day`, atomically; False (and nothing
        counted) if it already has `limit`."""
        ...

    async def forget_sent(self, before: datetime) -> int:
        """Delete messages sent, failed or dropped before `before`; returns how many."""
        ...

    async def forget_messages(self, user: UserRef, tenant: str) -> int:
        """Delete every queued or sent message addressed to `user` in `tenant`, or naming
        them; returns how many."""
        ...

    async def forget_question_keys(self, today: str, now: datetime) -> int:
        """Delete the salts and counters of days before `today`, and the upvotes (and vote
        salts) of questions whose voting closed before `now`; returns how many rows."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...

    def unavailable(self, error: BaseException) -> bool:
        """Whether `error` means the database cannot be reached or used just now (down,
        connection lost, locked by another writer), as opposed to a bug."""
        ...

    async def checkpoint(self) -> None:
        """Let deleted rows leave the database's files now, where the database allows it
        (SQLite: fold the write-ahead log into the main file, which `secure_delete` zeroes,
        and truncate it). PostgreSQL needs VACUUM, which the operator schedules."""
        ...


class DeliveryError(Exception):
    """A send failed. `permanent` errors are not retried; `retry_after` is a platform hint.

    `unreachable`: the platform is down or failing (no connection, server errors, no answer):
    the dispatcher stops sending there for a while, without using up the message's attempts.
    `refused`: the platform surely did not take the message (a rate limit): it is sent again
    after `retry_after`, also without using up an attempt. Neither ever makes a message fail
    for good, however long it lasts; the message's own staleness still applies."""

    def __init__(
        self, reason: str, *, permanent: bool = False, retry_after: float | None = None,
        unreachable: bool = False, refused: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.unreachable = unreachable
        self.refused = refused


@dataclass(frozen=True, kw_only=True, slots=True)
class Outgoing:
    """What the dispatcher hands a platform: one message to one place."""

    outbox_id: int  # stable across retries: the platform transaction id
    key: str
    target: str
    direct: bool
    message: Message
    #: Whose the message is (a Slack workspace: whose token sends it); None for rows older
    #: than tenants, or that have none.
    tenant: str | None = None
    late: bool = False
    #: 1 for the first try; more means an earlier try may have reached the platform without
    #: the bot learning of it (a crash, a timeout), so the platform may check before sending.
    attempt: int = 1


class Messenger(Protocol):
    platform: str

    async def send(self, out: Outgoing) -> str:
        """Post the message; return the platform's message id. Raise DeliveryError."""
        ...

    async def edit(self, out: Outgoing, message_id: str) -> None:
        """Replace the content of the message `message_id` (sent earlier to `out`'s place,
        by this bot) with `out.message`. Raise DeliveryError."""
        ...

    async def delete(self, out: Outgoing, message_id: str) -> None:
        """Remove the message `message_id` (sent earlier to `out`'s place, by this bot).
        A message already gone counts as removed. Raise DeliveryError."""
        ...

    async def whisper(self, user: UserRef, tenant: str | None, place: ChannelRef | None,
                      message: Message) -> None:
        """Tell `user` privately, now, with nothing kept by the bot (no outbox row, no log
        line naming them): Slack shows it ephemerally in `place`, Matrix sends it to their
        direct room. Raise DeliveryError."""
        ...


class Directory(Protocol):
    """What the platform knows about a person."""

    async def timezone(self, user: UserRef, tenant: str) -> str | None:
        """The zone `user`'s profile in `tenant` gives, if any."""
        ...

    async def is_admin(self, user: UserRef, place: ChannelRef | None, tenant: str) -> bool:
        """Whether the platform makes `user` an admin over `place` (a cohort's channel or
        room) in `tenant`; with no place, over the whole tenant. A Slack workspace admin is
        one over every place of their own workspace and nowhere else; a Matrix power level
        counts in its own room only, so it gives nothing over the whole tenant."""
        ...


class Platform(Protocol):
    """A chat platform the bot runs on, built by the composition root from the config.

    `start` connects and begins receiving in background tasks, then returns: a platform that
    is unreachable keeps retrying with back-off on its own and never blocks the others.
    Inbound commands go to `core.handle`; outbound messages come through `messenger`."""

    @property
    def name(self) -> str: ...

    #: Runs in one instance at a time when several share a database (it keeps a session
    #: with the platform that must not be doubled): only while that instance leads.
    exclusive: bool

    @property
    def messenger(self) -> Messenger: ...

    @property
    def directory(self) -> Directory: ...

    async def start(self, core: Core) -> None: ...

    async def stop(self) -> None: ...

    async def health(self) -> str | None:
        """None when connected and serving; else a short reason, with no user data in it."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class SlackInstallation:
    """The app installed in one Slack workspace (or, with no `team_id`, a whole Enterprise
    Grid organisation) through OAuth. `bot_token` is a secret: it is kept out of `repr`, and
    must never be logged."""

    enterprise_id: str | None
    team_id: str | None
    bot_token: str = field(repr=False)
    bot_user_id: str
    bot_id: str
    installer_user_id: str
    scopes: tuple[str, ...]
    installed_at: datetime


class SlackInstallations(Protocol):
    """Where the Slack installations live, one per workspace (or organisation). A message's
    tenant names its workspace, so the adapter finds the token that sends it here."""

    async def save(self, installation: SlackInstallation) -> None:
        """Insert, or replace the workspace's earlier installation."""
        ...

    async def find(self, *, enterprise_id: str | None, team_id: str | None
                   ) -> SlackInstallation | None: ...

    async def delete(self, *, enterprise_id: str | None, team_id: str | None) -> bool:
        """Remove the workspace's installation; True if there was one. What is known of
        its places stays: a reinstall finds them again."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class SealedCrossSigning:
    """A Matrix account's cross-signing identity as stored: its public master key, and its
    private keys sealed by the adapter (`sealed_keys` is a secret: never logged)."""

    user_id: str
    master_key: str
    sealed_keys: str = field(repr=False)


class CrossSigningKeys(Protocol):
    """Where a Matrix bot account's cross-signing keys live, shared by its instances."""

    async def find(self, user_id: str) -> SealedCrossSigning | None: ...

    async def add(self, keys: SealedCrossSigning, at: datetime) -> bool:
        """Store the account's first keys; False (and nothing changes) if it has some."""
        ...

    async def replace(self, keys: SealedCrossSigning, at: datetime) -> None: ...


class NullDirectory:
    """A platform that knows nothing beyond ids (the terminal)."""

    async def timezone(self, user: UserRef, tenant: str) -> str | None:
        return None

    async def is_admin(self, user: UserRef, place: ChannelRef | None, tenant: str) -> bool:
        return False
