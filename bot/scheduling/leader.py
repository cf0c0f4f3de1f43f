"""One leader among the instances that share a PostgreSQL database.

Several `cohortbot run` processes may serve one bot: any of them answers Slack's HTTP
requests, but the Matrix sync loop and the scheduler's wake-ups must run in exactly one at a
time. That one holds a PostgreSQL session-level advisory lock, on a connection of its own.
When the process dies, the server drops the connection and the lock with it; another
instance, trying every few seconds, takes over.

The same connection LISTENs for `WAKE_CHANNEL`: an instance that is not the leader, after a
command changed what is due, NOTIFYs it, so the leader's scheduler looks again at once
instead of at its next sweep.

On SQLite there is one process by definition: it always leads (`SoleLeader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

WAKE_CHANNEL = "cohortbot_wake"
NAMESPACE = 0x636F68  # the first key of the two-key advisory lock: "coh"

Hook = Callable[[], Awaitable[None]]


class Leadership(Protocol):
    async def run(self, stop: asyncio.Event, elected: Hook, deposed: Hook) -> None:
        """Until `stop` is set: call `elected` when this instance becomes the leader and
        `deposed` when it stops being one (also on the way out, if it was leading)."""
        ...

    async def wake_leader(self) -> None:
        """Tell whichever instance leads that what is due has changed."""
        ...


class SoleLeader:
    async def run(self, stop: asyncio.Event, elected: Hook, deposed: Hook) -> None:
        await elected()
        try:
            await stop.wait()
        finally:
            await deposed()

    async def wake_leader(self) -> None:  # (the only instance pokes its own scheduler)
        return None


def lock_key(name: str) -> int:
    """A stable 31-bit key for the second half of the advisory lock."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


class PostgresLeader:
    def __init__(self, engine: AsyncEngine, name: str, *, on_wake: Callable[[], None],
                 retry_seconds: float = 2.0, check_seconds: float = 2.0) -> None:
        self._engine = engine
        # The bot's SQLAlchemy URL, as the libpq URI psycopg connects with.
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._key = lock_key(name)
        self._on_wake = on_wake
        self._retry = retry_seconds
        self._check = check_seconds
        self.leading = False
        self.attempts = 0  # tries to take the lead so far

    async def run(self, stop: asyncio.Event, elected: Hook, deposed: Hook) -> None:
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    if await self._acquire(conn, stop):
                        await self._lead(conn, stop, elected, deposed)
            except psycopg.Error as e:
                log.warning("leadership: database connection lost (%s); trying again in "
                            "%.0f s", type(e).__name__, self._retry)
            if self.leading:
                self.leading = False
                log.warning("leadership: lost; the scheduler and Matrix stop here")
                await deposed()
            await _wait(stop, self._retry)

    async def _acquire(self, conn: psycopg.AsyncConnection[tuple[object, ...]],
                       stop: asyncio.Event) -> bool:
        while not stop.is_set():
            self.attempts += 1
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                     (NAMESPACE, self._key))
            row = await cur.fetchone()
            if row is not None and row[0] is True:
                return True
            await _wait(stop, self._retry)
        return False

    async def _lead(self, conn: psycopg.AsyncConnection[tuple[object, ...]],
                    stop: asyncio.Event, elected: Hook, deposed: Hook) -> None:
        await conn.execute(f"LISTEN {WAKE_CHANNEL}")
        self.leading = True
        log.info("leadership: this instance leads (scheduler and Matrix run here)")
        await elected()
        while not stop.is_set():
            # Notifications as they come; every `check` seconds, a look at the connection:
            # a leader that cannot reach the database must not go on as one.
            async for _ in conn.notifies(timeout=self._check):
                self._on_wake()
            await conn.execute("SELECT 1")
        self.leading = False
        await deposed()
        await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (NAMESPACE, self._key))

    async def wake_leader(self) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.exec_driver_sql(f"NOTIFY {WAKE_CHANNEL}")
        except Exception as e:  # noqa: BLE001 - the leader's sweep finds the change anyway
            log.warning("leadership: could not wake the leader (%s)", type(e).__name__)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
