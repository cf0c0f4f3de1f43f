"""Three real `cohortbot run` processes on one PostgreSQL database serve one bot, on Slack
(the fake, HTTP mode) and Matrix (a real Synapse). Any instance answers Slack's requests;
exactly one, the leader, runs the Matrix sync and the scheduler. The leader is killed
(SIGKILL) in the middle of a burst: another takes over within seconds, and every
notification arrives exactly once on both platforms."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy as sa

from bot.db.engine import create_engine
from bot.scheduling.leader import WAKE_CHANNEL
from bot.service.dispatcher import LEASE
from tests.conftest import PG_URL, pg_schema
from tests.matrix.support import Member, matrix_environ
from tests.support.matrix_fixtures import ClientFactory
from tests.support.planting import Planted, plant
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack
from tests.support.slack.process import SlackProcess
from tests.support.synapse import SynapseServer

LEADS = "leadership: this instance leads"
TAG = re.compile(r"inst-\d\d")
BURST = 36


async def _pending(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text(
                "SELECT count(*) FROM outbox WHERE status = 'pending'")) or 0)
    finally:
        await engine.dispose()


async def _leader(procs: list[SlackProcess], timeout: float = 20) -> SlackProcess:
    """The one instance that says it leads (after waiting for one to)."""
    deadline = time.monotonic() + timeout
    while True:
        leading = [p for p in procs if LEADS in p.log.read_text()]
        assert len(leading) <= 1, "two instances lead at once"
        if leading:
            return leading[0]
        assert time.monotonic() < deadline, "no instance leads"
        await asyncio.sleep(0.1)  # polling the logs


async def test_three_instances_share_the_work_and_outlive_the_leader_killed_mid_burst(
    synapse: SynapseServer, matrix_client_factory: ClientFactory,
    fake_slack_thread: FakeSlack, tmp_path: Path,
) -> None:
    fake = fake_slack_thread
    fake.set_latency(0.02, 0.08)
    admin = Member(await matrix_client_factory())
    account = synapse.register_user()  # one bot account; each instance is its own device
    channels = {f"inst-{i}": ("slack", fake.add_channel(f"inst-{i}", members=[
        W.admin, fake.bot_user_id])) for i in range(5)}

    with pg_schema() as url:
        def instance(n: int) -> SlackProcess:
            root = tmp_path / f"instance-{n}"
            root.mkdir()
            return SlackProcess(fake, root, "http", environ={
                **matrix_environ(synapse, account, root / "matrix-store"),
                "COHORTBOT_DATABASE__URL": url, "COHORTBOT_SCHEDULER__SWEEP_SECONDS": "5"},
                admins=(f"slack:{W.admin}", f"matrix:{admin.user_id}"))

        procs = [instance(n) for n in range(3)]
        try:
            for p in procs:
                await p.ready()
            leader = await _leader(procs)
            room = await admin.create_room([account.user_id])
            await admin.joined(room, account.user_id)
            await admin.say(room, "!cohort cohort create Peer M")
            await admin.wait_for(lambda s: s.sender == account.user_id
                                 and "Created Peer M" in s.body, what="the Matrix reply")
            # Every instance answers Slack from the one database; only the leader runs
            # Matrix. (The Slack workspace is a tenant of its own: Peer M is not its cohort.)
            await leader.command(W.admin, "cohort create Peer S")
            await leader.post("Created *Peer S*", timeout=15)
            for p in procs:
                listed = await p.answer(W.admin, "cohort list")
                assert "Peer S" in listed and "Peer M" not in listed, listed
            assert [("matrix: started" in p.log.read_text()) for p in procs] == \
                [p is leader for p in procs]

            slugs = [*channels, "peer-m"]
            first = datetime.now(UTC) + timedelta(seconds=1)
            burst = [Planted(slugs[k % len(slugs)], f"inst-{k:02d}",
                             first + timedelta(seconds=0.1 * k)) for k in range(BURST)]
            await plant(url, burst, channels)
            async with await psycopg.AsyncConnection.connect(
                    PG_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
                await c.execute(f"NOTIFY {WAKE_CHANNEL}")  # as a follower's change would

            async def arrived() -> list[str]:
                await admin.sync(timeout_ms=100)
                slack = [p["text"] for _, ch in channels.values() for p in fake.posts(ch)]
                matrix = [s.body for s in admin.seen if s.sender == account.user_id]
                return [m.group() for text in slack + matrix for m in [TAG.search(text)] if m]

            deadline = time.monotonic() + 30
            while len(await arrived()) < BURST // 3:
                assert time.monotonic() < deadline, "the burst never started"
            # The next Slack post hangs, and Slack carries it out after all: the leader dies
            # with it in flight, its outcome unknown to everyone else.
            fake.hang_next("chat.postMessage", 1.0, process=True)
            await fake.wait_for(fake.hanging, timeout=10, what="a post in flight")
            leader.proc.kill()
            leader.proc.wait(10)
            killed = time.monotonic()
            survivors = [p for p in procs if p is not leader]
            before = len(set(await arrived()))
            assert before < BURST, "the kill came after the whole burst"
            successor = await _leader(survivors)
            took = time.monotonic() - killed
            print(f"takeover {took:.1f} s after the kill; {before}/{BURST} had arrived")
            assert took < 10
            await fake.wait_for(lambda: "matrix: started" in successor.log.read_text(),
                                timeout=20, what="Matrix in the new leader")

            deadline = time.monotonic() + 120  # messages in flight wait out their lease
            while len(set(await arrived())) < BURST:
                assert time.monotonic() < deadline, sorted(
                    {b.text for b in burst} - set(await arrived()))
            for p in survivors:  # Slack still served by both
                assert "Peer S" in await p.answer(W.admin, "cohort list")
            # The post that was in flight is settled within seconds (not when its lease
            # would have ended): found by its metadata, not posted again.
            await fake.wait_for(lambda: "was posted before" in successor.log.read_text(),
                                timeout=30, interval=0.2, what="the in-flight post settled")
            settled = time.monotonic() - killed
            print(f"the in-flight post settled {settled:.1f} s after the kill")
            assert settled < LEASE.total_seconds() / 2
            assert await _pending(url) == 0
            for p in survivors:
                p.stop()
            copies = Counter(await arrived())
        finally:
            for p in procs:
                if p.proc.poll() is None:
                    p.proc.kill()
                    p.proc.wait(10)
    assert copies == {b.text: 1 for b in burst}
    created = [s for s in admin.seen if s.sender == account.user_id and "Created Peer M" in s.body]
    assert len(created) == 1, "a command answered again after the takeover"
