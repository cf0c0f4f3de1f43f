"""The SQLAlchemy unit of work: one `AsyncSession`, one transaction, the queries the service needs.

Claims use `FOR UPDATE SKIP LOCKED` so that several instances on one PostgreSQL database never
take the same row; SQLite ignores it (one process writes at a time there anyway).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import (
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from bot.db import tables as t
from bot.domain.model import (
    ACTIVE,
    CANCELLED,
    PENDING,
    SCHEDULED,
    VOID,
    Absence,
    Assignment,
    Cohort,
    Member,
    Notification,
    OutboxMessage,
    Person,
    Session,
)
from bot.domain.refs import UserRef
from bot.service.ports import NewNotification, PlanTarget, SessionInfo

T = TypeVar("T")

IN_CHUNK = 2000  # ids per IN (…) list: well inside every backend's parameter limit
BULK_ROWS = 5000  # rows per bulk INSERT on PostgreSQL


class SqlUnitOfWork:
    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._session: AsyncSession | None = None
        self.schedule_changed = False

    @property
    def s(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside 'async with'")
        return self._session

    async def __aenter__(self) -> SqlUnitOfWork:
        self._session = self._factory()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            await session.rollback()  # a no-op after commit; discards anything uncommitted
        finally:
            await session.close()

    async def commit(self) -> None:
        await self.s.commit()

    async def rollback(self) -> None:
        await self.s.rollback()

    def add(self, entity: object) -> None:
        self.s.add(entity)

    async def flush(self) -> None:
        await self.s.flush()

    async def delete(self, entity: object) -> None:
        await self.s.delete(entity)

    async def get(self, cls: type[T], ident: int) -> T | None:
        return await self.s.get(cls, ident)

    def _where(self, cls: type[Any], eq: dict[str, Any]) -> list[Any]:
        table = t.MAPPING[cls]
        clauses = []
        for name, value in eq.items():
            col = table.c[name]
            kind = _kind(value)
            clauses.append(col.in_(list(value)) if kind == "in" else
                           col.is_(None) if kind == "null" else col == value)
        return clauses

    # The hot reads are built once per shape, with bound parameters, and kept: a statement
    # object memoises its cache key, so running it again costs SQLAlchemy no rebuilding.

    async def find(self, cls: type[T], *, order_by: str | None = None, **eq: Any) -> list[T]:
        shape, params = _shape(eq)
        entity: Any = cls  # (a mapped class: hashable, whatever its type says)
        return list((await self.s.scalars(_find(entity, shape, order_by), params)).all())

    async def cohort_and_caller(self, user: UserRef, **eq: Any
                                ) -> tuple[Cohort | None, Member | None, Person | None]:
        shape, params = _shape(eq)
        params.update(caller_platform=user.platform, caller_id=user.id)
        row = (await self.s.execute(_cohort_and_caller(shape), params)).first()
        return (row[0], row[1], row[2]) if row is not None else (None, None, None)

    async def memberships(self, user: UserRef, tenant: str) -> list[tuple[Cohort, Member]]:
        params = {"platform": user.platform, "user_id": user.id, "tenant": tenant}
        return [(cohort, member) for cohort, member in
                await self.s.execute(_memberships(), params)]

    async def roster_rows(self, cohort_id: int) -> list[tuple[Member, Absence | None]]:
        rows = await self.s.execute(_roster_rows(), {"cohort_id": cohort_id})
        return [(member, absence) for member, absence in rows]

    async def sessions_with_roles(
        self, cohort_id: int, session_ids: Sequence[int], announced_before: datetime | None
    ) -> list[tuple[Session, Assignment | None]]:
        params = {"cohort_id": cohort_id, "ids": list(session_ids), "before": announced_before}
        rows = await self.s.execute(_sessions_with_roles(announced_before is not None), params)
        return [(session, role) for session, role in rows]

    async def delete_where(self, cls: type[Any], **eq: Any) -> int:
        # "fetch" keeps the identity map true to the database without expiring everything
        # (an expired object would need I/O on its next attribute read, which async forbids).
        result = await self.s.execute(
            delete(cls).where(*self._where(cls, eq)),
            execution_options={"synchronize_session": "fetch"},
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def sessions_between(
        self, cohort_id: int, start: datetime, end: datetime, *, include_cancelled: bool = False,
        or_slot: bool = False,
    ) -> list[Session]:
        stmt = _sessions_between(include_cancelled, or_slot)
        params = {"cohort_id": cohort_id, "start": start, "end": end}
        return list((await self.s.scalars(stmt, params)).all())

    async def plan_targets(self, after_id: int, limit: int) -> list[PlanTarget]:
        c = t.cohorts.c
        # The JSON columns as their stored text: parsing is the planner's (cached) business.
        raw = [cast(col, Text) for col in (c.schedule, c.settings, c.reminder_offsets)]
        stmt = (select(c.id, *raw, c.planned_through)
                .where(c.status == ACTIVE, c.id > after_id, c.schedule.is_not(None))
                .order_by(c.id).limit(limit))
        return [
            PlanTarget(id=cid, schedule_json=sched, settings_json=settings,
                       reminder_offsets=_offsets(offsets), planned_through=through)
            for cid, sched, settings, offsets, through in await self.s.execute(stmt)
            if sched not in (None, "null")
        ]

    async def set_planned_through(self, cohort_ids: Sequence[int], instant: datetime) -> None:
        c = t.cohorts.c
        for i in range(0, len(cohort_ids), IN_CHUNK):
            await self.s.execute(
                update(t.cohorts).where(self._in(c.id, cohort_ids[i:i + IN_CHUNK]))
                .values(planned_through=instant),
                execution_options={"synchronize_session": False},
            )

    async def sessions_window(
        self, cohort_ids: Sequence[int], start: datetime, end: datetime
    ) -> list[SessionInfo]:
        c = t.sessions.c
        out: list[SessionInfo] = []
        for i in range(0, len(cohort_ids), IN_CHUNK):
            stmt = select(c.id, c.cohort_id, c.slot, c.starts_at, c.duration_min, c.rev,
                          c.status).where(
                self._in(c.cohort_id, cohort_ids[i:i + IN_CHUNK]),
                or_(and_(c.starts_at >= start, c.starts_at < end),
                    and_(c.slot >= start, c.slot < end)),
            ).order_by(c.cohort_id, c.starts_at, c.id)
            out += [SessionInfo(*row) for row in await self.s.execute(stmt)]
        return out

    async def sessions_with_notices(self, session_ids: Sequence[int]) -> set[int]:
        c = t.notifications.c
        out: set[int] = set()
        for i in range(0, len(session_ids), IN_CHUNK):
            stmt = select(c.session_id).distinct().where(
                self._in(c.session_id, session_ids[i:i + IN_CHUNK]), c.status != VOID)
            out.update(await self.s.scalars(stmt))
        return out

    async def insert_sessions(self, rows: Sequence[tuple[int, datetime, int]]) -> list[int]:
        if not rows:
            return []
        instant, false = self._instant(), self._false()
        columns = (("cohort_id", "int"), ("starts_at", "timestamptz"), ("slot", "timestamptz"),
                   ("duration_min", "int"), ("origin", "text"), ("status", "text"),
                   ("rev", "int"), ("announced", "bool"), ("phase_run", "int"),
                   ("summarised", "bool"))
        values = [(cohort_id, instant(slot), instant(slot), minutes, "schedule", SCHEDULED, 0,
                   false, 0, false) for cohort_id, slot, minutes in rows]
        if self._dialect() == "postgresql":
            # Ids drawn from the sequence up front, then the rows COPYed with them: no
            # RETURNING to match back, and COPY is PostgreSQL's fast path for bulk writes.
            conn = await self.s.connection()
            drawn = await conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('sessions', 'id')) "
                "FROM generate_series(1, %s)", (len(values),))
            new_ids = [sid for (sid,) in drawn]
            await self._copy_rows("sessions", ("id", *(name for name, _ in columns)),
                                  [(sid, *row) for sid, row in zip(new_ids, values,
                                                                   strict=True)])
            return new_ids
        await self._insert_rows("sessions", columns, values)
        ids: dict[tuple[int, datetime], int] = {}
        # Then the ids by their unique (cohort, slot), a chunk at a time (RETURNING in
        # parameter order would cost one statement per row on SQLite).
        c = t.sessions.c
        cohort_ids = sorted({cohort_id for cohort_id, _, _ in rows})
        first = min(slot for _, slot, _ in rows)
        last = max(slot for _, slot, _ in rows)
        for i in range(0, len(cohort_ids), IN_CHUNK):
            found = await self.s.execute(
                select(c.id, c.cohort_id, c.slot).where(
                    self._in(c.cohort_id, cohort_ids[i:i + IN_CHUNK]), c.slot >= first,
                    c.slot <= last
                )
            )
            ids.update({(cid, slot): sid for sid, cid, slot in found})
        return [ids[(cohort_id, slot)] for cohort_id, slot, _ in rows]

    async def insert_notifications(self, rows: Sequence[NewNotification]) -> int:
        self.schedule_changed = True
        if not rows:
            return 0
        # The hot path of planning: plain tuples at driver level. Going through SQLAlchemy's
        # per-value type processing costs several times the write itself.
        instant, false = self._instant(), self._false()
        columns = (("key", "text"), ("kind", "text"), ("cohort_id", "int"),
                   ("session_id", "int"), ("due_at", "timestamptz"), ("stale_at", "timestamptz"),
                   ("payload", "json"), ("status", "text"), ("late", "bool"))
        # A key that exists is left alone, unless it was voided by a re-plan: then it is due
        # again (as add_notification does one row at a time).
        upsert = (" ON CONFLICT (key) DO UPDATE SET due_at = excluded.due_at, "
                  "stale_at = excluded.stale_at, payload = excluded.payload, "
                  f"status = excluded.status WHERE notifications.status = '{VOID}'")
        values = [(n.key, n.kind, cohort_id, session_id, instant(n.due_at), instant(n.stale_at),
                   json.dumps(n.payload), PENDING, false) for cohort_id, session_id, n in rows]
        if self._dialect() == "sqlite":
            return await self._insert_rows("notifications", columns, values, suffix=upsert)
        # COPY has no ON CONFLICT: the rows go to a transaction-scoped staging table first,
        # and from there into place with the upsert, in one statement.
        names = ", ".join(name for name, _ in columns)
        conn = await self.s.connection()
        await conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE IF NOT EXISTS staged_notifications ("
            + ", ".join(f"{name} {kind}" for name, kind in columns)
            + ") ON COMMIT DELETE ROWS")
        await self._copy_rows("staged_notifications", [name for name, _ in columns], values)
        result = await conn.exec_driver_sql(
            f"INSERT INTO notifications ({names}) SELECT {names} FROM staged_notifications"
            f"{upsert}")
        await conn.exec_driver_sql("TRUNCATE staged_notifications")
        return result.rowcount

    async def _insert_rows(self, table: str, columns: Sequence[tuple[str, str]],
                           values: Sequence[tuple[Any, ...]], suffix: str = "") -> int:
        """Insert plain tuples, given (name, PostgreSQL type) per column; returns how many rows
        were written. SQLite takes one executemany (in process, that is cheap); PostgreSQL
        takes one array per column and `unnest`s them: one round trip and one parameter per
        column for a whole batch, instead of a round trip per row."""
        conn = await self.s.connection()
        names = ", ".join(name for name, _ in columns)
        if self._dialect() == "sqlite":
            marks = ", ".join(["?"] * len(columns))
            result = await conn.exec_driver_sql(
                f"INSERT INTO {table} ({names}) VALUES ({marks}){suffix}", list(values))
            # sqlite3 sums an executemany's rowcount.
            return result.rowcount if result.rowcount >= 0 else len(values)
        written = 0
        for sql, params in self._unnest(table, columns, values, suffix):
            written += (await conn.exec_driver_sql(sql, params)).rowcount
        return written

    async def _copy_rows(self, table: str, names: Sequence[str],
                         values: Sequence[tuple[Any, ...]]) -> None:
        """PostgreSQL only: write plain tuples with COPY, inside the unit's transaction."""
        conn = await self.s.connection()
        raw = (await conn.get_raw_connection()).driver_connection
        if raw is None:
            raise RuntimeError("the unit of work's connection is closed")
        async with raw.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in values:
                await copy.write_row(row)

    @staticmethod
    def _unnest(table: str, columns: Sequence[tuple[str, str]],
                values: Sequence[tuple[Any, ...]], suffix: str
                ) -> Iterator[tuple[str, tuple[list[Any], ...]]]:
        names = ", ".join(name for name, _ in columns)
        arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
        sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}){suffix}"
        for i in range(0, len(values), BULK_ROWS):
            batch = values[i:i + BULK_ROWS]
            yield sql, tuple(list(col) for col in zip(*batch, strict=True))

    def _instant(self) -> Callable[[datetime], Any]:
        """How bulk inserts pass an instant: SQLite's stored text; for PostgreSQL ISO text,
        which the driver sends several times faster than datetime objects."""
        convert = t.sqlite_instant if self._dialect() == "sqlite" else datetime.isoformat
        # Memoised per bulk write: sessions and their notices share a few instants.
        return lru_cache(maxsize=4096)(convert)

    def _in(self, column: Any, ids: Sequence[int]) -> Any:
        """`column IN ids`; on PostgreSQL `= ANY(array)`: one parameter, not one per id."""
        if self._dialect() == "postgresql":
            return column == any_(literal(list(ids), ARRAY(Integer)))
        return column.in_(list(ids))

    def _false(self) -> bool | int:
        return 0 if self._dialect() == "sqlite" else False

    def _dialect(self) -> str:
        bind = self.s.bind
        if bind is None:
            raise RuntimeError("the session factory has no engine bound")
        return bind.dialect.name

    async def _insert_ignore(self, table: Any, values: dict[str, Any], key: str) -> bool:
        dialect = self._dialect()
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            ins(table).values(**values).on_conflict_do_nothing(index_elements=[key])
            .returning(table.c[key])
        )
        # RETURNING tells reliably whether a row went in (rowcount is -1 on some drivers).
        return (await self.s.execute(stmt)).first() is not None

    @staticmethod
    def _values(entity: object, table: Any) -> dict[str, Any]:
        return {c.name: getattr(entity, c.name) for c in table.columns if c.name != "id"}

    async def add_notification(self, n: Notification) -> bool:
        self.schedule_changed = True
        # Re-planning revives a voided row and moves a pending one; a fired or dropped row is
        # history and never changes (that is what makes "nothing twice" hold).
        dialect = self._dialect()
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        values = self._values(n, t.notifications)
        stmt = ins(t.notifications).values(**values)
        c = t.notifications.c
        upsert = stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"due_at": stmt.excluded.due_at, "stale_at": stmt.excluded.stale_at,
                  "payload": stmt.excluded.payload, "status": PENDING},
            where=c.status.in_([PENDING, VOID]),
        ).returning(c.id)
        return (await self.s.execute(upsert)).first() is not None

    async def add_outbox(self, m: OutboxMessage) -> bool:
        self.schedule_changed = True
        return await self._insert_ignore(t.outbox, self._values(m, t.outbox), "key")

    async def claim_notifications(self, now: datetime, limit: int) -> list[Notification]:
        c = t.notifications.c
        stmt = (
            select(Notification)
            .where(c.status == PENDING, c.due_at <= now)
            .order_by(c.due_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.s.scalars(stmt)).all())

    async def finish_outbox(self, row_id: int, *, status: str, sent_at: datetime | None,
                            message_id: str | None, error: str | None) -> None:
        # One UPDATE, no load: every message sent costs one, so it is on the hot path of a
        # burst (and on SQLite, writes take turns).
        await self.s.execute(
            update(t.outbox).where(t.outbox.c.id == row_id).values(
                status=status, claimed_until=None, sent_at=sent_at,
                platform_message_id=message_id, error=error),
            execution_options={"synchronize_session": False})

    async def claim_outbox(
        self, now: datetime, limit: int, lease_until: datetime, platforms: Sequence[str]
    ) -> list[OutboxMessage]:
        c = t.outbox.c
        due = (
            select(c.id)
            .where(
                c.status == PENDING,
                c.due_at <= now,
                c.platform.in_(list(platforms)),
                or_(c.claimed_until.is_(None), c.claimed_until <= now),
            )
            .order_by(c.due_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # One UPDATE … RETURNING makes the claim atomic on SQLite too (no row locks there).
        claimed = await self.s.execute(
            update(t.outbox)
            .where(c.id.in_(due.scalar_subquery()))
            .values(claimed_until=lease_until, attempts=c.attempts + 1)
            .returning(c.id)
        )
        ids = [row[0] for row in claimed]
        if not ids:
            return []
        stmt = (
            select(OutboxMessage).where(c.id.in_(ids)).order_by(c.due_at, c.id)
            .execution_options(populate_existing=True)
        )
        return list((await self.s.scalars(stmt)).all())

    async def next_due(self, platforms: Sequence[str] | None = None) -> datetime | None:
        n, o = t.notifications.c, t.outbox.c
        first_n = await self.s.scalar(select(func.min(n.due_at)).where(n.status == PENDING))
        # A leased message falls due again when its lease ends (its sender may have died).
        messages = select(func.min(func.coalesce(o.claimed_until, o.due_at))).where(
            o.status == PENDING)
        if platforms is not None:
            messages = messages.where(o.platform.in_(list(platforms)))
        first_o = await self.s.scalar(messages)
        found = [_aware(v) for v in (first_n, first_o) if v is not None]
        return min(found) if found else None

    async def outbox_backlog(self, now: datetime) -> tuple[int, datetime | None]:
        """How many messages wait to be sent, and the due instant of the oldest due one."""
        o = t.outbox.c
        depth = await self.s.scalar(select(func.count()).where(o.status == PENDING))
        oldest = await self.s.scalar(select(func.min(o.due_at)).where(
            o.status == PENDING, o.due_at <= now))
        return int(depth or 0), _aware(oldest) if oldest is not None else None

    async def void_pending(self, *, session_id: int, kinds: Sequence[str] | None = None) -> int:
        self.schedule_changed = True
        c = t.notifications.c
        cond = and_(c.session_id == session_id, c.status == PENDING)
        if kinds is not None:
            cond = and_(cond, c.kind.in_(list(kinds)))
        result = await self.s.execute(
            update(Notification).where(cond).values(status=VOID),
            execution_options={"synchronize_session": "fetch"},
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def seen(self, event_id: str, now: datetime) -> bool:
        params = {"event_id": event_id, "seen_at": now}
        return (await self.s.execute(_seen(self._dialect()), params)).first() is not None

    async def forget_events(self, before: datetime) -> int:
        result = await self.s.execute(
            delete(t.seen_events).where(t.seen_events.c.seen_at < before),
            execution_options={"synchronize_session": False})
        return int(getattr(result, "rowcount", 0) or 0)

    async def unsee(self, event_id: str) -> None:
        await self.s.execute(delete(t.seen_events).where(t.seen_events.c.event_id == event_id),
                             execution_options={"synchronize_session": False})

    async def salt(self, scope: str, fresh: str) -> str:
        await self._insert_ignore(t.key_salts, {"scope": scope, "salt": fresh}, "scope")
        found = await self.s.scalar(select(t.key_salts.c.salt)
                                    .where(t.key_salts.c.scope == scope))
        if found is None:
            raise RuntimeError("a salt vanished while it was read")
        return str(found)

    async def count_question(self, day: str, key_hash: str, limit: int) -> bool:
        c = t.rate_counts.c
        ins = pg_insert if self._dialect() == "postgresql" else sqlite_insert
        first = ins(t.rate_counts).values(day=day, key_hash=key_hash, count=1)
        # One statement: two instances counting at once cannot both see room for one more.
        stmt = first.on_conflict_do_update(
            index_elements=["day", "key_hash"], set_={"count": c.count + 1},
            where=c.count < limit).returning(c.count)
        return limit > 0 and (await self.s.execute(stmt)).first() is not None

    async def forget_sent(self, before: datetime) -> int:
        o = t.outbox.c
        result = await self.s.execute(
            delete(t.outbox).where(o.status != PENDING, o.keep.is_(False),
                                   func.coalesce(o.sent_at, o.created_at) < before),
            execution_options={"synchronize_session": False})
        return int(getattr(result, "rowcount", 0) or 0)

    async def forget_messages(self, user: UserRef, tenant: str) -> int:
        o = t.outbox.c
        mentioned = f'"{user}"'  # a mention in a stored body: {"m": "platform:id"}
        result = await self.s.execute(
            delete(t.outbox).where(
                or_(o.tenant == tenant, o.tenant.is_(None)),
                or_(and_(o.direct.is_(True), o.platform == user.platform,
                         o.target == user.id),
                    cast(o.body, Text).contains(mentioned, autoescape=True))),
            execution_options={"synchronize_session": False})
        return int(getattr(result, "rowcount", 0) or 0)

    async def forget_question_keys(self, today: str, now: datetime) -> int:
        q, s = t.questions.c, t.key_salts.c
        removed = 0
        for stmt in (
            delete(t.key_salts).where(s.scope.like("day:%"), s.scope < f"day:{today}"),
            delete(t.rate_counts).where(t.rate_counts.c.day < today),
            delete(t.upvotes).where(t.upvotes.c.question_id.in_(
                select(q.id).where(q.votes_until <= now))),
            update(t.questions).where(q.votes_until <= now, q.vote_salt.is_not(None))
            .values(vote_salt=None),
        ):
            result = await self.s.execute(stmt, execution_options={"synchronize_session": False})
            removed += int(getattr(result, "rowcount", 0) or 0)
        return removed


Shape = tuple[tuple[str, str], ...]  # (column, "eq" | "in" | "null") per condition


def _shape(eq: dict[str, Any]) -> tuple[Shape, dict[str, Any]]:
    """`find`-style conditions as a statement shape and its parameters."""
    return tuple((name, _kind(value)) for name, value in eq.items()), _params(eq)


def _kind(value: Any) -> str:
    if isinstance(value, tuple | list | set | frozenset):
        return "in"
    return "null" if value is None else "eq"


def _params(eq: dict[str, Any]) -> dict[str, Any]:
    return {f"w_{name}": list(value) if _kind(value) == "in" else value
            for name, value in eq.items() if value is not None}


def _clauses(cls: type[Any], shape: Shape) -> list[ColumnElement[bool]]:
    table = t.MAPPING[cls]
    out: list[ColumnElement[bool]] = []
    for name, kind in shape:
        col = table.c[name]
        if kind == "null":
            out.append(col.is_(None))
        else:
            out.append(col.in_(bindparam(f"w_{name}", expanding=True)) if kind == "in"
                       else col == bindparam(f"w_{name}"))
    return out


@lru_cache(maxsize=512)
def _find(cls: type[Any], shape: Shape, order_by: str | None) -> Any:
    table = t.MAPPING[cls]
    stmt = select(cls).where(*_clauses(cls, shape))
    if order_by:
        col = table.c[order_by.lstrip("-")]
        return stmt.order_by(col.desc() if order_by.startswith("-") else col,
                             *table.primary_key.columns)
    return stmt.order_by(*table.primary_key.columns)


@lru_cache(maxsize=2)
def _seen(dialect: str) -> Any:
    """Records an event id; returns it only if it was new (every command runs it)."""
    ins = pg_insert if dialect == "postgresql" else sqlite_insert
    return (ins(t.seen_events)
            .values(event_id=bindparam("event_id"), seen_at=bindparam("seen_at"))
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(t.seen_events.c.event_id))


@lru_cache(maxsize=64)
def _cohort_and_caller(shape: Shape) -> Any:
    m, p = t.members.c, t.persons.c
    platform: Any = bindparam("caller_platform")
    user_id: Any = bindparam("caller_id")
    return (select(Cohort, Member, Person)
            .outerjoin(Member, and_(m.cohort_id == t.cohorts.c.id, m.platform == platform,
                                    m.user_id == user_id))
            .outerjoin(Person, and_(p.tenant == t.cohorts.c.tenant, p.platform == platform,
                                    p.user_id == user_id))
            .where(*_clauses(Cohort, shape)).order_by(t.cohorts.c.id).limit(1))


@lru_cache(maxsize=1)
def _memberships() -> Any:
    m, co = t.members.c, t.cohorts.c
    return (select(Cohort, Member).join(Member, m.cohort_id == co.id)
            .where(m.platform == bindparam("platform"), m.user_id == bindparam("user_id"),
                   co.tenant == bindparam("tenant"))
            .order_by(co.id))


@lru_cache(maxsize=1)
def _roster_rows() -> Any:
    m = t.members.c
    return (select(Member, Absence).outerjoin(Absence, t.absences.c.member_id == m.id)
            .where(m.cohort_id == bindparam("cohort_id"), m.is_member.is_(True))
            .order_by(m.joined_at, m.id, t.absences.c.id))


@lru_cache(maxsize=2)
def _sessions_with_roles(with_history: bool) -> Any:
    c, a = t.sessions.c, t.assignments.c
    wanted: ColumnElement[bool] = c.id.in_(bindparam("ids", expanding=True))
    if with_history:
        wanted = or_(wanted, and_(c.starts_at < bindparam("before"), c.announced.is_(True),
                                  c.status != CANCELLED))
    return (select(Session, Assignment).outerjoin(Assignment, a.session_id == c.id)
            .where(c.cohort_id == bindparam("cohort_id"), wanted)
            .order_by(c.starts_at, c.id, a.id))


@lru_cache(maxsize=4)
def _sessions_between(include_cancelled: bool, or_slot: bool) -> Any:
    c = t.sessions.c
    start: Any = bindparam("start")
    end: Any = bindparam("end")
    starts = and_(c.starts_at >= start, c.starts_at < end)
    stmt = select(Session).where(
        c.cohort_id == bindparam("cohort_id"),
        or_(starts, and_(c.slot >= start, c.slot < end)) if or_slot else starts)
    if not include_cancelled:
        stmt = stmt.where(c.status != CANCELLED)
    return stmt.order_by(c.starts_at, c.id)


def _aware(value: datetime | str) -> datetime:
    """Aggregates over a zone-less SQLite column come back naive (or as text): make them UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlUnitOfWorkFactory:
    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._factory)

    def unavailable(self, error: BaseException) -> bool:
        return storage_unavailable(error)

    async def checkpoint(self) -> None:
        async with self._factory() as session:
            bind = session.bind
            if bind is None or bind.dialect.name != "sqlite":
                return
            conn = await session.connection()
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def storage_unavailable(error: BaseException) -> bool:
    """Whether `error` is the database being unreachable or busy, not a fault of ours:
    a lost or refused connection, a pool that ran dry, SQLite locked by another writer."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError | sa_exc.InterfaceError | sa_exc.DisconnectionError):
        return True
    if isinstance(error, sa_exc.OperationalError):
        # SQLite reports a missing table as an OperationalError too: that one is a bug.
        text = str(error.orig).lower()
        return not any(word in text for word in ("no such", "syntax error", "has no column"))
    return False


@lru_cache(maxsize=1024)
def _offsets(text: str) -> tuple[int, ...]:
    """A cohort's reminder offsets from their stored JSON (few distinct lists exist)."""
    return tuple(json.loads(text))
