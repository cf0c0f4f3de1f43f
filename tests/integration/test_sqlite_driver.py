"""The SQLite driver (bot/db/sqlite_driver.py) through SQLAlchemy, as the bot uses it: the
same results as aiosqlite's own cursor, one worker call per statement, and no call for a
commit or rollback without a transaction."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.engine import create_engine
from bot.db.sqlite_driver import FusedConnection


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def worker_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """What runs in aiosqlite's worker thread, by name."""
    calls: Counter[str] = Counter()
    original = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", "?")
        calls["statement" if name == "<lambda>" else name] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_the_engine_uses_the_fused_connection(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, FusedConnection)


async def test_results_rowcount_lastrowid_and_executemany(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert first.lastrowid == 1
        await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}])
        changed = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > 1"))
        assert changed.rowcount == 2
        rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        returned = (await conn.execute(
            text("INSERT INTO t (v) VALUES ('d') RETURNING id, v"))).one()
        assert tuple(returned) == (4, "d")
        empty = await conn.execute(text("SELECT v FROM t WHERE id = 99"))
        assert empty.first() is None


async def test_one_worker_call_per_statement_and_none_for_an_idle_rollback(
        engine: AsyncEngine, worker_calls: Counter[str]) -> None:
    async with engine.connect() as conn:  # (a pooled connection: no connect call below)
        pass
    worker_calls.clear()
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
        await conn.commit()
    # Two statements, the commit, and nothing for the pool's rollback on return.
    assert worker_calls == Counter({"statement": 2, "commit": 1})


async def test_a_rollback_with_a_transaction_still_rolls_back(
        engine: AsyncEngine, worker_calls: Counter[str]) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('kept?')"))
        await conn.rollback()
    assert worker_calls["rollback"] == 1
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('left open')"))
    # (returned to the pool mid-transaction: the pool's rollback must still happen)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0


async def test_errors_are_sqlalchemy_errors_and_leave_the_connection_usable(
        engine: AsyncEngine) -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'a')"))
        with pytest.raises(IntegrityError):
            await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'b')"))
        with pytest.raises(OperationalError):
            await conn.execute(text("SELECT nonesuch FROM t"))
        assert (await conn.execute(text("SELECT v FROM t"))).scalar() == "a"


async def test_a_statement_waiting_for_a_lock_leaves_the_event_loop_free(
        engine: AsyncEngine, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "d.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    loop_turns = 0

    async def turn_the_loop(times: int) -> None:
        nonlocal loop_turns
        for _ in range(times):
            await asyncio.sleep(0)
            loop_turns += 1

    try:
        async with engine.connect() as conn:
            insert = asyncio.create_task(conn.execute(text("INSERT INTO t (v) VALUES ('x')")))
            await turn_the_loop(1000)
            # The loop went round a thousand times while the insert waits for the lock
            # (busy_timeout, 5 s): it is not blocked.
            assert loop_turns == 1000 and not insert.done()
            other.execute("ROLLBACK")
            await insert
            await conn.commit()
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
    finally:
        other.close()
