"""SIGKILL the real `cohortbot run` while a burst of notifications is going out, on Matrix (a
real Synapse) and on Slack (the fake Web API), and restart it: twenty times, each with its own
seed. Every notification arrives, none twice.

Each cycle plants a burst due just after the process will be up, starts the process, waits
until a seed-chosen number of that burst has arrived, and kills it a seed-chosen moment later
(the next send is then in flight or about to be). The next cycle's process inherits what is
left. What makes a resend harmless differs by platform: a Matrix send uses the outbox id as
its transaction id, so the homeserver drops a repeat; a Slack post carries the outbox id in
its metadata, and a send whose outcome was never learnt is looked up in the conversation's
history before it is posted again.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

from bot.bootstrap import ensure_schema
from tests.matrix.support import BotProcess, Member
from tests.support.matrix_fixtures import ClientFactory
from tests.support.planting import Planted, plant
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack
from tests.support.slack.process import SlackProcess
from tests.support.synapse import SynapseServer

SEEDS = range(20)
BURST = 8
TAG = re.compile(r"crash-\d\d-\d\d")


@dataclass
class Bot:
    """One platform's way to run the bot process and see what reached the members."""

    start: Callable[[], Awaitable[None]]  # returns once the process is up
    kill: Callable[[], None]  # SIGKILL, and wait for the process to be gone
    stop: Callable[[], None]  # graceful stop (finishes a send in flight)
    arrived: Callable[[], Awaitable[list[str]]]  # every copy of every burst text seen so far
    gap: float  # between two due instants of a burst


async def kill_and_restart(bot: Bot, db: Path, slugs: list[str],
                           channels: dict[str, tuple[str, str]]) -> None:
    planted: list[str] = []
    startup = 4.0  # until the first start is measured
    for seed in SEEDS:
        rng = Random(seed)
        base = datetime.now(UTC) + timedelta(seconds=startup + 0.3)
        burst = [Planted(slugs[i % len(slugs)], f"crash-{seed:02d}-{i:02d}",
                         base + timedelta(seconds=bot.gap * i)) for i in range(BURST)]
        await plant(db, burst, channels)
        planted += [p.text for p in burst]
        began = time.monotonic()
        await bot.start()
        startup = max(1.0, time.monotonic() - began)
        enough = rng.randint(1, BURST - 2)
        mine = {p.text for p in burst}
        deadline = time.monotonic() + startup + 30
        while len(mine & set(await bot.arrived())) < enough:
            assert time.monotonic() < deadline, f"seed {seed}: the burst never started"
        await asyncio.sleep(rng.uniform(0, bot.gap))  # fault timing: the moment of the kill
        bot.kill()
        left = set(planted) - set(await bot.arrived())
        assert left, f"seed {seed}: the kill came after the whole burst"

    await bot.start()
    deadline = time.monotonic() + 90
    while not set(planted) <= set(await bot.arrived()):
        assert time.monotonic() < deadline, sorted(set(planted) - set(await bot.arrived()))
    bot.stop()  # anything still in flight lands before the count below
    copies = Counter(await bot.arrived())
    assert set(copies) == set(planted)
    assert [t for t, n in copies.items() if n > 1] == [], "sent twice"


async def test_matrix_sigkill_mid_burst_twenty_seeds_each_notification_exactly_once(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    admin = Member(await matrix_client_factory())
    proc = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id])
    starts = 0

    async def start() -> None:
        nonlocal starts
        starts += 1
        proc.start()
        proc.wait_log("matrix: logged in", count=starts)

    async def arrived() -> list[str]:
        await admin.sync(timeout_ms=200)
        return [m.group() for s in admin.seen if s.sender == proc.user_id
                for m in [TAG.search(s.body)] if m]

    await start()
    room = await admin.create_room([proc.user_id])
    await admin.joined(room, proc.user_id)
    proc.stop()
    ensure_schema(f"sqlite+aiosqlite:///{proc.db}")
    try:
        await kill_and_restart(
            Bot(start, lambda: proc.stop(signal.SIGKILL), proc.stop, arrived, gap=0.08),
            proc.db, ["crash"], {"crash": ("matrix", room)})
    finally:
        proc.stop()
    log = proc.log()
    assert "Traceback" not in log and "failed for good" not in log, log[-3000:]


async def test_slack_sigkill_mid_burst_twenty_seeds_each_notification_exactly_once(
    fake_slack_thread: FakeSlack, tmp_path: Path
) -> None:
    fake = fake_slack_thread
    fake.set_latency(0.02, 0.12)  # a kill often lands while a post is on its way
    # One channel per cohort: Slack's one-post-a-second pace per channel stays out of the way.
    channels = {f"crash-{i}": ("slack", fake.add_channel(f"crash-{i}", members=[
        W.admin, fake.bot_user_id])) for i in range(BURST)}
    running: list[SlackProcess] = []

    async def start() -> None:
        running.append(SlackProcess(fake, tmp_path, "http"))
        await running[-1].ready()

    def kill() -> None:
        running[-1].proc.kill()
        running[-1].proc.wait(10)

    def stop() -> None:
        running[-1].stop()

    async def arrived() -> list[str]:
        await asyncio.sleep(0.01)  # the fake records from its own thread: poll it
        return [m.group() for _, channel in channels.values() for p in fake.posts(channel)
                for m in [TAG.search(p["text"])] if m]

    db = tmp_path / "cohortbot.db"
    ensure_schema(f"sqlite+aiosqlite:///{db}")
    try:
        await kill_and_restart(Bot(start, kill, stop, arrived, gap=0.1), db, list(channels),
                               channels)
    finally:
        for p in running:
            if p.proc.poll() is None:
                p.proc.kill()
    posted = [c for c in fake.calls_to("chat.postMessage") if c.ok]
    assert all(c.params.get("metadata") for c in posted), "a post without its outbox id"


async def test_slack_a_post_whose_answer_was_lost_is_found_by_its_metadata_not_resent(
    fake_slack_thread: FakeSlack, tmp_path: Path
) -> None:
    """Slack took the post, but the process died before the answer came: the restarted
    process finds the post in the channel's history instead of posting it again."""
    fake = fake_slack_thread
    db = tmp_path / "cohortbot.db"
    ensure_schema(f"sqlite+aiosqlite:///{db}")
    due = datetime.now(UTC) + timedelta(seconds=4)
    await plant(db, [Planted("lost", "crash-99-00", due)], {"lost": ("slack", W.channel)})
    fake.hang_next("chat.postMessage", 1.0, process=True)
    first = SlackProcess(fake, tmp_path, "http")
    try:
        await first.ready()
        kill_at = due + timedelta(seconds=0.4)  # the post is hanging in the fake
        await asyncio.sleep(max(0.0, (kill_at - datetime.now(UTC)).total_seconds()))
        first.proc.kill()
        first.proc.wait(10)
        # Slack carries the post out after all: the answer just never reached anyone.
        await fake.wait_for(lambda: fake.posts(W.channel), timeout=5, what="the hung post")
        second = SlackProcess(fake, tmp_path, "http")
        await second.ready()
        await fake.wait_for(lambda: "found by its metadata" in second.log.read_text(),
                            timeout=30, what="the lookup of the earlier post")
        log = second.stop()
    finally:
        for p in (first, locals().get("second")):
            if isinstance(p, SlackProcess) and p.proc.poll() is None:
                p.proc.kill()
    assert [TAG.findall(p["text"]) for p in fake.posts(W.channel)] == [["crash-99-00"]]
    assert any(c.params.get("include_all_metadata") in (True, "true", "1")
               for c in fake.calls_to("conversations.history"))
    assert re.search(r"message test:crash-99-00\S* was posted before", log), log
