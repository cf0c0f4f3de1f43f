"""Leadership among instances on one PostgreSQL database, against the real server: one
leader at a time, a takeover within seconds when the leader's connection dies, and a
follower's change waking the leader."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from bot.db.engine import create_engine
from bot.scheduling.leader import NAMESPACE, PostgresLeader, lock_key
from tests.conftest import PG_URL

FAST = {"retry_seconds": 0.2, "check_seconds": 0.2}


class Instance:
    def __init__(self, name: str) -> None:
        self.engine = create_engine(PG_URL)
        self.events: list[str] = []
        self.woken = asyncio.Event()
        self.leader = PostgresLeader(self.engine, name, on_wake=self.woken.set, **FAST)
        self.stop = asyncio.Event()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.leader.run(self.stop, self._elected,
                                                        self._deposed))

    async def _elected(self) -> None:
        self.events.append("elected")
        self.changed.set()

    async def _deposed(self) -> None:
        self.events.append("deposed")
        self.changed.set()

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
        await self.engine.dispose()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Instance, Instance, str]]:
    name = f"test-{uuid.uuid4().hex}"  # a lock of this test's own
    a, b = Instance(name), Instance(name)
    try:
        yield a, b, name
    finally:
        await a.close()
        await b.close()


async def _until(condition: object, seconds: float = 10) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)  # polling state, not waiting for a scheduled event

    await asyncio.wait_for(poll(), seconds)


async def test_one_leader_then_a_takeover_when_its_connection_dies(
        pair: tuple[Instance, Instance, str]) -> None:
    a, b, name = pair
    a.start()
    await _until(lambda: a.leader.leading)
    b.start()
    await _until(lambda: b.leader.attempts >= 3)  # b finds the lock taken, again and again
    assert a.events == ["elected"] and b.events == [] and not b.leader.leading

    # The leader's process "dies": the server ends its session, the lock goes with it.
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        killed = conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = :ns AND objid = :key"), {"ns": NAMESPACE, "key": lock_key(name)}
        ).scalars().all()
    admin.dispose()
    assert killed == [True]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await _until(lambda: b.leader.leading)
    assert loop.time() - t0 < 5  # taken over within seconds
    await _until(lambda: "deposed" in a.events)
    assert b.events == ["elected"]
    # Never two at once: a stepped down and stays a follower while b holds the lock.
    await _until(lambda: a.task is not None and not a.leader.leading)
    assert a.events == ["elected", "deposed"]


async def test_a_followers_change_wakes_the_leader(pair: tuple[Instance, Instance, str]) -> None:
    a, b, _ = pair
    a.start()
    await _until(lambda: a.leader.leading)
    b.start()
    assert not a.woken.is_set()
    await b.leader.wake_leader()
    await asyncio.wait_for(a.woken.wait(), 5)
