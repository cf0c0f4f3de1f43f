"""aiosqlite with one worker-thread round trip per statement.

aiosqlite runs every call on its sqlite3 connection in a worker thread, and each call is a
round trip: the call is queued, the thread runs it, and the result wakes the event loop
through its self-pipe. SQLAlchemy's aiosqlite adapter makes four such calls per statement
(open a cursor, execute, fetch the rows, close the cursor). A lone command of a handful of
statements spends more time in these hand-offs than in SQLite.

The cursor here executes a statement and fetches all its rows in one call, and opening and
closing it costs no call at all: one round trip per statement. Commit and rollback make none
when there is no transaction (the pool rolls back every connection it takes back, nearly
always after a commit). Everything else is aiosqlite's own: its thread, its queue, its
connection. The semantics stay the same, as SQLAlchemy fetches every row of a result at once
on this dialect anyway. It is plugged in through `create_async_engine(async_creator=...)`.

It must not run anything on the event loop's thread: a statement may wait for a lock
(`busy_timeout`), and the loop must go on serving the platforms meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.engine import URL, make_url

T = TypeVar("T")


class FusedCursor:
    """The part of aiosqlite's `Cursor` that SQLAlchemy uses, one worker call a statement."""

    def __init__(self, conn: FusedConnection) -> None:
        self._conn = conn
        self._cursor: sqlite3.Cursor | None = None
        self._rows: deque[Any] = deque()
        self.arraysize = 1

    async def __aenter__(self) -> FusedCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _run(self, call: Callable[[sqlite3.Cursor], object]) -> list[Any]:
        # In the worker thread: a fresh sqlite3 cursor, the statement, and all its rows.
        cursor = self._conn._conn.cursor()
        try:
            call(cursor)
            rows = cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()  # (description, rowcount and lastrowid stay readable)
        self._cursor = cursor
        return rows

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> FusedCursor:
        params = () if parameters is None else parameters
        rows = await self._conn.call(lambda: self._run(lambda c: c.execute(sql, params)))
        self._rows = deque(rows)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> FusedCursor:
        rows = await self._conn.call(lambda: self._run(lambda c: c.executemany(sql, parameters)))
        self._rows = deque(rows)
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = list(self._rows), deque()
        return rows

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(n, len(self._rows)))]

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    async def close(self) -> None:
        self._rows.clear()

    @property
    def description(self) -> Any:
        return None if self._cursor is None else self._cursor.description

    @property
    def rowcount(self) -> int:
        return -1 if self._cursor is None else self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return None if self._cursor is None else self._cursor.lastrowid


class FusedConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors are `FusedCursor`s."""

    def cursor(self) -> FusedCursor:  # type: ignore[override]
        return FusedCursor(self)

    async def commit(self) -> None:
        if self._in_transaction():
            await super().commit()

    async def rollback(self) -> None:
        if self._in_transaction():
            await super().rollback()

    def _in_transaction(self) -> bool:
        # Read between statements (SQLAlchemy runs one at a time on a connection), so the
        # worker thread is not using the connection. A closed connection goes on to
        # aiosqlite, which raises as it always did.
        conn = self._connection
        return conn is None or conn.in_transaction

    async def call(self, fn: Callable[[], T]) -> T:
        """`fn()` in the worker thread."""
        result: T = await self._execute(fn)  # type: ignore[no-untyped-call]
        return result


def async_creator(url: str | URL) -> Callable[[], Awaitable[FusedConnection]]:
    """What `create_async_engine(async_creator=...)` calls for a new connection to `url`,
    with the arguments the aiosqlite dialect would give sqlite3 for it."""
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    u = make_url(url)
    [database], options = SQLiteDialect_aiosqlite().create_connect_args(u)
    kwargs: dict[str, Any] = dict(options)

    def connect() -> sqlite3.Connection:
        conn: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return conn

    async def create() -> FusedConnection:
        conn = FusedConnection(connect, iter_chunk_size=64)
        conn._thread.daemon = True  # as the dialect does: never hold the process up at exit
        await conn
        return conn

    return create
