"""One platform goes away while the bot serves both from one process: the homeserver stopped,
or Slack answering 5xx, then 429, then not at all. The bot stays up, knocks on the absent
platform only now and then, keeps serving the other one, and delivers the backlog once the
platform is back: each message once.

The outages are real time (the process has no simulated clock); each phase is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.matrix.support import ConnectionCounter, Member, Seen, matrix_environ
from tests.support.matrix_fixtures import ClientFactory
from tests.support.planting import Planted, plant
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack
from tests.support.slack.process import SlackProcess
from tests.support.synapse import SynapseServer


async def _both(fake: FakeSlack, server: SynapseServer, admin: Member, tmp_path: Path
                ) -> tuple[SlackProcess, str, str]:
    """The bot on both platforms, a cohort on each: (process, room, matrix bot user id)."""
    account = server.register_user()
    bot = SlackProcess(fake, tmp_path, "http", environ={
        **matrix_environ(server, account, tmp_path / "matrix-store"),
        "COHORTBOT_SCHEDULER__SWEEP_SECONDS": "5"},
        admins=(f"slack:{W.admin}", f"matrix:{admin.user_id}"))
    await bot.ready()
    room = await admin.create_room([account.user_id])
    await admin.joined(room, account.user_id)
    await admin.say(room, "!cohort cohort create Peer M")
    await admin.wait_for(lambda s: s.sender == account.user_id and "Created Peer M" in s.body)
    await bot.command(W.admin, "cohort create Peer S")
    await bot.post("Created *Peer S*", timeout=15)
    return bot, room, account.user_id


def from_bot_user(user_id: str, room: str | None, text: str) -> Callable[[Seen], bool]:
    """The bot's messages holding `text`, in `room` (None: anywhere, its direct room too)."""
    return lambda s: s.sender == user_id and room in (None, s.room_id) and text in s.body


def _burst(slug: str, tag: str, first: datetime, n: int = 5) -> list[Planted]:
    return [Planted(slug, f"{tag}-{i:02d}", first + timedelta(seconds=i)) for i in range(n)]


def _slack_copies(fake: FakeSlack, tag: str) -> Counter[str]:
    return Counter(word for p in fake.posts(W.channel) for word in p["text"].split()
                   if word.startswith(tag + "-"))


async def test_homeserver_down_slack_still_served_matrix_backlog_arrives_once(
    synapse_server_factory: Callable[..., SynapseServer], matrix_client_factory: ClientFactory,
    fake_slack_thread: FakeSlack, tmp_path: Path,
) -> None:
    server = synapse_server_factory()
    fake = fake_slack_thread
    admin = Member(await matrix_client_factory(server))
    bot, room, bot_user = await _both(fake, server, admin, tmp_path)
    try:
        server.stop()
        now = datetime.now(UTC)
        await plant(bot.db, _burst("peer-m", "away", now + timedelta(seconds=2))
                    + _burst("peer-s", "here", now + timedelta(seconds=2)))
        outage = 40.0
        began = time.monotonic()
        async with ConnectionCounter(server.port) as counter:
            # Slack goes on as if nothing happened: commands answered, messages posted.
            listed = await bot.answer(W.admin, "cohort list")
            assert "Peer S" in listed and "Peer M" not in listed  # (Slack's cohorts only)
            await fake.wait_for(lambda: len(_slack_copies(fake, "here")) == 5, timeout=20,
                                interval=0.2, what="the Slack messages during the outage")
            await asyncio.sleep(outage - (time.monotonic() - began))  # the rest of the outage
        print(f"connections to the stopped homeserver in {outage:.0f} s: {counter.count}")
        # Sync and sends back off (to a minute); each try is at most two connections.
        assert 2 <= counter.count <= 24, counter.count
        server.start()
        for i in range(5):
            await admin.wait_for(from_bot_user(bot_user, room, f"away-{i:02d}"), timeout=90,
                                 what=f"Matrix message {i} after the outage")
        await admin.sync()
    finally:
        log = bot.stop()
    away = Counter(s.body.split()[-1] for s in admin.seen
                   if s.sender == bot_user and "away-" in s.body)
    assert away == {f"away-{i:02d}": 1 for i in range(5)}, away
    assert _slack_copies(fake, "here") == {f"here-{i:02d}": 1 for i in range(5)}
    assert "failed for good" not in log


async def test_slack_failing_matrix_still_served_few_requests_slack_backlog_arrives_once(
    synapse: SynapseServer, matrix_client_factory: ClientFactory,
    fake_slack_thread: FakeSlack, tmp_path: Path,
) -> None:
    fake = fake_slack_thread
    admin = Member(await matrix_client_factory())
    bot, room, bot_user = await _both(fake, synapse, admin, tmp_path)
    phase_seconds = 20.0
    # (A hang outlasts the bot's 15 s timeout, then answers 504 without posting.)
    phases = {"5xx": lambda: fake.fail_next("*", 503, count=100_000),
              "429": lambda: fake.ratelimit_next("*", retry_after=3, count=100_000),
              "no answer": lambda: fake.hang_next("*", 16, count=100_000, process=False)}
    windows: dict[str, tuple[float, float]] = {}
    try:
        for n, (name, fail) in enumerate(phases.items()):
            fake.clear_faults()
            fail()
            began = time.time()
            await plant(bot.db, _burst("peer-s", f"slack{n}", datetime.now(UTC)))
            # Matrix goes on as if nothing happened.
            # (answered in the admin's direct room, which the bot opens)
            admin.join_invites_from.add(bot_user)
            await admin.say(room, "!cohort cohort list")
            listed = await admin.wait_for(from_bot_user(bot_user, None, "Cohorts:\nPeer M"),
                                          timeout=15,
                                          what=f"a Matrix reply while Slack fails ({name})")
            admin.seen.remove(listed)
            await asyncio.sleep(phase_seconds - (time.time() - began))  # the phase itself
            windows[name] = (began, time.time())
        fake.clear_faults()
        for n in range(len(phases)):
            await fake.wait_for(lambda n=n: len(_slack_copies(fake, f"slack{n}")) == 5,
                                timeout=120, interval=0.5, what=f"the backlog of phase {n}")
    finally:
        log = bot.stop()  # (a graceful stop lands any send in flight: a copy would be counted)
    for n in range(len(phases)):
        assert _slack_copies(fake, f"slack{n}") == {f"slack{n}-{i:02d}": 1 for i in range(5)}
    calls = fake.calls
    for name, (start, end) in windows.items():
        count = sum(start <= c.time < end for c in calls)
        print(f"Slack API calls during {phase_seconds:.0f} s of {name}: {count}")
        # Five messages waiting: a tight retry loop would be hundreds of calls.
        assert count <= 30, (name, count)
    assert "failed for good" not in log
