"""Sustained load: people using the bot on both platforms while 10,000 cohorts' notifications
fall due, for minutes on end, on SQLite or PostgreSQL, with one or two instances.

Everything is real but Slack: `cohortbot run` processes (Slack in HTTP mode on the fake Web
API of tests/support/slack, Matrix on a local Synapse that the bench starts), configured as
the fault tests configure them. Set-up goes through commands where people would type them:

- Slack: `--users` people in `--users / 10` channels, each channel a cohort (created,
  scheduled and filled by the admin's slash commands);
- Matrix: as many people in as many rooms, each a cohort set up by the admin's `!cohort`
  commands;
- load: `--cohorts` more Slack cohorts, each in its own channel, with one `prompt` each,
  the due instants spread evenly over the measured window after the warm-up, and on Matrix
  one prompt per room every 10 s (planted straight into the database, as the tests do).

Then, for `--minutes`: every person sends `next` again and again (an exponential pause of
`--think` seconds on average between two, open loop: nobody waits for an answer): Slack slash
commands, signed, to the instances in turn; Matrix messages in the person's room, sent with
their own access token. An observer client syncs every Matrix room.

Measured:
- per platform: commands answered per second, and the latency from sending to the answer
  (Slack: the ephemeral answer recorded by the fake; Matrix: the reply arriving at the
  observer), p50/p99/max; the Slack acknowledgement time too (Slack's limit is 3 s);
- notifications: delivered, missing, duplicated, and the outbox lag (arrival − due instant)
  p50/p99/max;
- each instance's resident memory every 10 s: at the end of the warm-up and at the end (the
  target is flat after warm-up), and its CPU time.

    .venv/bin/python bench/sustained.py --db sqlite --instances 1 [--minutes 10]
    .venv/bin/python bench/sustained.py --db postgres --instances 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as c

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from matrix import Watcher, make_client  # noqa: E402

from bot.bootstrap import ensure_schema  # noqa: E402
from tests.matrix.support import matrix_environ  # noqa: E402
from tests.support.planting import Planted, plant  # noqa: E402
from tests.support.slack import WORKSPACE as W  # noqa: E402
from tests.support.slack import FakeSlack, seed_workspace  # noqa: E402
from tests.support.slack.process import SlackProcess  # noqa: E402
from tests.support.slack.signing import post_signed  # noqa: E402
from tests.support.synapse import RegisteredUser, SynapseServer  # noqa: E402

PER_CIRCLE = 10
MATRIX_PROMPT_EVERY = 10.0  # seconds, per room
SAMPLE_EVERY = 10.0


@dataclass
class Sent:
    who: str
    at: float  # wall clock
    ack: float | None = None  # Slack: seconds until the HTTP answer


@dataclass
class Run:
    slack: list[Sent] = field(default_factory=list)
    matrix: dict[str, Sent] = field(default_factory=dict)  # by event id
    errors: Counter[str] = field(default_factory=Counter)
    rss: dict[int, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks
    return float("nan")


async def slack_answer(fake: FakeSlack, proc: SlackProcess, text: str, channel: str) -> str:
    """The admin's command in `channel`; its answer (private, or posted in the channel)."""
    private, public = len(fake.ephemerals(user=W.admin)), len(fake.posts(channel))
    await proc.command(W.admin, text, channel=channel)
    found = await fake.wait_for(
        lambda: fake.ephemerals(user=W.admin)[private:] + fake.posts(channel)[public:],
        timeout=30, what=f"the answer to {text!r}")
    return str(found[0]["text"])


def next_weekday() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%a").lower()


async def set_up_slack(fake: FakeSlack, proc: SlackProcess, people: list[str]
                       ) -> list[tuple[str, str]]:
    """Cohorts in channels of PER_CIRCLE people each; returns (person, channel)."""
    placed = []
    for k in range(0, len(people), PER_CIRCLE):
        group = people[k:k + PER_CIRCLE]
        ch = fake.add_channel(f"circle-{k // PER_CIRCLE}",
                              members=[W.admin, fake.bot_user_id, *group])
        await slack_answer(fake, proc, f"cohort create Circle {k // PER_CIRCLE}", ch)
        await slack_answer(fake, proc, f"cohort schedule weekly {next_weekday()} 14:00 UTC "
                           "for 90m", ch)
        mentions = " ".join(f"<@{p}>" for p in group)
        assert "Added" in await slack_answer(fake, proc, f"cohort members add {mentions}", ch)
        placed += [(p, ch) for p in group]
    return placed


async def set_up_matrix(server: SynapseServer, watcher: Watcher, bot_user: str,
                        people: list[RegisteredUser], http: aiohttp.ClientSession
                        ) -> list[tuple[RegisteredUser, str]]:
    """Rooms of PER_CIRCLE people, each a cohort; returns (person, room)."""
    client = watcher.client
    placed = []
    for k in range(0, len(people), PER_CIRCLE):
        group = people[k:k + PER_CIRCLE]
        resp = await client.room_create(invite=[bot_user, *(p.user_id for p in group)])
        room = resp.room_id  # type: ignore[union-attr]
        for p in group:
            async with http.post(f"{server.base_url}/_matrix/client/v3/join/{room}", json={},
                                 headers={"Authorization": f"Bearer {p.access_token}"}) as r:
                assert r.status == 200, await r.text()
        await watcher.wait(lambda room=room: room in client.rooms
                           and bot_user in client.rooms[room].users, 60, "the bot to join")
        for text in (f"!cohort cohort create Room {k // PER_CIRCLE}",
                     f"!cohort cohort schedule weekly {next_weekday()} 14:00 UTC for 90m",
                     "!cohort cohort members add " + " ".join(p.user_id for p in group)):
            await watcher.round_trip(room, text, timeout=60)
        placed += [(p, room) for p in group]
    return placed


async def slack_person(person: str, channel: str, procs: list[SlackProcess], fake: FakeSlack,
                       run: Run, stop_at: float, think: float, rng: random.Random) -> None:
    build = fake.requests()
    turn = rng.randrange(len(procs))
    while True:
        await asyncio.sleep(min(rng.expovariate(1 / think), stop_at - time.monotonic()))
        if time.monotonic() >= stop_at:
            return
        proc = procs[turn % len(procs)]
        turn += 1
        sent = Sent(person, time.time())
        try:
            result = await post_signed(proc.url, build.slash_command(
                "/cohort", "next", user_id=person, channel_id=channel))
            sent.ack = result.elapsed
            if result.status != 200:
                run.errors[f"slack http {result.status}"] += 1
        except (aiohttp.ClientError, TimeoutError) as e:
            run.errors[f"slack {type(e).__name__}"] += 1
        run.slack.append(sent)


async def matrix_person(person: RegisteredUser, room: str, base_url: str,
                        http: aiohttp.ClientSession, run: Run, stop_at: float, think: float,
                        rng: random.Random) -> None:
    while True:
        await asyncio.sleep(min(rng.expovariate(1 / think), stop_at - time.monotonic()))
        if time.monotonic() >= stop_at:
            return
        url = (f"{base_url}/_matrix/client/v3/rooms/{room}/send/m.room.message/"
               f"{uuid.uuid4().hex}")
        at = time.time()
        try:
            async with http.put(url, json={"msgtype": "m.text", "body": "!cohort next"},
                                headers={"Authorization": f"Bearer {person.access_token}"}
                                ) as r:
                data = await r.json()
            run.matrix[data["event_id"]] = Sent(person.user_id, at)
        except (aiohttp.ClientError, TimeoutError, KeyError) as e:
            run.errors[f"matrix {type(e).__name__}"] += 1


async def sample(procs: list[SlackProcess], run: Run, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        for p in procs:
            if p.proc.poll() is None:
                run.rss[p.proc.pid].append((time.monotonic(), rss_mb(p.proc.pid)))
        await asyncio.sleep(SAMPLE_EVERY)


def summary(name: str, seconds: list[float]) -> list[Any]:
    ms = [s * 1e3 for s in seconds]
    if not ms:
        return [name, 0, "-", "-", "-"]
    return [name, len(ms), round(c.percentile(ms, 50), 1), round(c.percentile(ms, 99), 1),
            round(max(ms), 1)]


async def bench(args: argparse.Namespace) -> int:
    print(c.machine_line(), flush=True)  # (the code as the processes start)
    tmp = Path(tempfile.mkdtemp(prefix="cohortbot-sustained-"))
    synapse = SynapseServer(tmp / "synapse", rate_limits="relaxed")
    fake = FakeSlack(team_id=W.team_id, app_id=W.app_id,
                     signing_secret=W.signing_secret).start_in_thread()
    procs: list[SlackProcess] = []
    watcher: Watcher | None = None
    try:
        synapse.start()
        seed_workspace(fake)
        fake.set_latency(0.005, 0.03)
        slack_people = [fake.add_user(None, f"person{i:03d}") for i in range(args.users)]
        load = {f"load-{i:05d}": ("slack", fake.add_channel(f"load-{i:05d}",
                                                            members=[fake.bot_user_id]))
                for i in range(args.cohorts)}
        bot_account = synapse.register_user()
        admin = synapse.register_user()
        matrix_people = [synapse.register_user() for _ in range(args.users)]

        with c.BenchDatabases(args.db, args.pg_url) as dbs:
            url = dbs.create("sustained")
            ensure_schema(url)

            def instance(n: int) -> SlackProcess:
                root = tmp / f"instance-{n}"
                root.mkdir()
                return SlackProcess(fake, root, "http", environ={
                    **matrix_environ(synapse, bot_account, root / "matrix-store"),
                    "COHORTBOT_DATABASE__URL": url, "COHORTBOT_SCHEDULER__SWEEP_SECONDS": "5",
                    "COHORTBOT_BOT__LOG_LEVEL": "WARNING",
                    "COHORTBOT_BOT__COMMANDS_PER_MINUTE": "1000000"},
                    admins=(f"slack:{W.admin}", f"matrix:{admin.user_id}"))

            procs = [instance(n) for n in range(args.instances)]
            for p in procs:
                await p.ready()
            watcher = Watcher(await make_client(synapse, admin, tmp / "observer"))
            watcher.start()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                print("setting up cohorts through commands …", flush=True)
                slack_placed = await set_up_slack(fake, procs[0], slack_people)
                matrix_placed = await set_up_matrix(synapse, watcher, bot_account.user_id,
                                                    matrix_people, http)
                rooms = list(dict.fromkeys(room for _, room in matrix_placed))
                room_slugs = {room: f"room-{k}" for k, room in enumerate(rooms)}  # "Room k"

                duration = args.minutes * 60
                warm = min(60.0, duration * 0.2)
                t0 = time.monotonic()
                wall0 = datetime.now(UTC)
                first = wall0 + timedelta(seconds=warm)
                span = duration - warm - 30
                due: dict[str, datetime] = {}
                items = []
                for i, slug in enumerate(load):
                    at = first + timedelta(seconds=span * i / len(load))
                    due[f"np-{i:05d}"] = at
                    items.append(Planted(slug, f"np-{i:05d}", at))
                for k, room in enumerate(rooms):
                    for j in range(int(span // MATRIX_PROMPT_EVERY)):
                        at = first + timedelta(seconds=MATRIX_PROMPT_EVERY * j + k * 0.37)
                        due[f"mp-{k:02d}-{j:04d}"] = at
                        items.append(Planted(room_slugs[room], f"mp-{k:02d}-{j:04d}", at))
                print(f"planting {len(items)} notifications …", flush=True)
                await plant(url, items, load)
                planted = time.monotonic() - t0
                print(f"load for {args.minutes} min ({planted:.0f} s went to planting) …",
                      flush=True)

                run = Run()
                stop_at = time.monotonic() + duration - planted
                cpu0 = {p.proc.pid: cpu_seconds(p.proc.pid) for p in procs}
                rng = random.Random(args.seed)
                tasks = [asyncio.create_task(slack_person(
                    p, ch, procs, fake, run, stop_at, args.think, random.Random(rng.random())))
                    for p, ch in slack_placed]
                tasks += [asyncio.create_task(matrix_person(
                    p, room, synapse.base_url, http, run, stop_at, args.think, random.Random(
                        rng.random()))) for p, room in matrix_placed]
                tasks.append(asyncio.create_task(sample(procs, run, stop_at)))
                await asyncio.gather(*tasks)
                cpu = {p.proc.pid: cpu_seconds(p.proc.pid) - cpu0[p.proc.pid] for p in procs}
                print("draining …", flush=True)
                drain_until = time.monotonic() + 60
                while time.monotonic() < drain_until:
                    answered = sum(e in watcher.replies for e in run.matrix)
                    if answered == len(run.matrix) and len(fake.ephemerals()) >= len(
                            run.slack) + 3 * len(slack_placed) // PER_CIRCLE:
                        break
                    await asyncio.sleep(1)

        # ------------------------------------------------------------------ results
        window = duration - planted
        answers: dict[str, list[float]] = defaultdict(list)
        for e in fake.ephemerals():
            if e["user"] != W.admin:
                answers[e["user"]].append(float(e["message_ts"]))
        slack_lat: list[float] = []
        by_person: dict[str, list[Sent]] = defaultdict(list)
        for s in run.slack:
            by_person[s.who].append(s)
        for who, sends in by_person.items():
            for s, ts in zip(sends, sorted(answers.get(who, [])), strict=False):
                slack_lat.append(ts - s.at)
        slack_acks = [s.ack for s in run.slack if s.ack is not None]
        matrix_lat = [watcher.replies[e].wall - s.at for e, s in run.matrix.items()
                      if e in watcher.replies]

        arrived: Counter[str] = Counter()
        lag: list[float] = []
        for _, ch in load.values():
            for post in fake.posts(ch):
                for word in post["text"].split():
                    if word.startswith("np-") and word in due:
                        arrived[word] += 1
                        if arrived[word] == 1:
                            lag.append(float(post["ts"]) - due[word].timestamp())
        for m in watcher.messages:
            for word in m.body.split():
                if word.startswith("mp-") and word in due:
                    arrived[word] += 1
                    if arrived[word] == 1:
                        lag.append(m.wall - due[word].timestamp())
        missing = [k for k in due if k not in arrived]
        twice = [k for k, n in arrived.items() if n > 1]

        print()
        print(c.load_line())
        print(f"db={args.db} instances={args.instances} minutes={args.minutes} "
              f"people={args.users}/platform think={args.think}s cohorts={args.cohorts} "
              f"(+{len(slack_placed) // PER_CIRCLE} Slack, {len(rooms)} Matrix)")
        print()
        print(c.table(["commands", "answered", "p50 ms", "p99 ms", "max ms"], [
            summary("slack next (answer)", slack_lat),
            summary("slack next (ack)", slack_acks),
            summary("matrix !cohort next", matrix_lat),
        ]))
        print(f"throughput: slack {len(slack_lat) / window:.1f}/s of {len(run.slack)} sent, "
              f"matrix {len(matrix_lat) / window:.1f}/s of {len(run.matrix)} sent; "
              f"errors: {dict(run.errors) or 'none'}")
        print()
        print(c.table(["notifications", "due", "arrived", "missing", "twice", "lag p50 ms",
                       "lag p99 ms", "lag max ms"], [[
            "all", len(due), len(arrived), len(missing), len(twice),
            round(c.percentile(lag, 50) * 1e3, 1), round(c.percentile(lag, 99) * 1e3, 1),
            round(max(lag) * 1e3, 1) if lag else "-"]]))
        print(f"delivered {len(arrived) / span:.1f} notifications/s over the {span:.0f} s "
              "window they fell due in")
        print()
        rows = []
        for p in procs:
            samples = run.rss.get(p.proc.pid, [])
            after = [mb for at, mb in samples if at - t0 >= warm]
            if not after:
                continue
            quarters = " / ".join(f"{after[min(len(after) - 1, len(after) * q // 4)]:.0f}"
                                  for q in range(1, 4))
            rows.append([p.proc.pid, round(after[0], 1), quarters, round(after[-1], 1),
                         round(after[-1] - after[0], 1),
                         round(100 * (after[-1] - after[0]) / after[0], 1),
                         round(max(mb for _, mb in samples), 1),
                         round(cpu.get(p.proc.pid, float("nan")), 1)])
        print(c.table(["instance pid", "RSS after warm-up MB", "at 1/4 / 1/2 / 3/4",
                       "at end MB", "growth MB", "growth %", "peak MB", "CPU s"], rows))
        ok = not missing and not twice
        print(f"\nnothing lost, nothing twice: {c.verdict(ok)}")
        return 0 if ok else 1
    finally:
        if watcher is not None:
            await watcher.stop()
            await watcher.client.close()
        for p in procs:
            if p.proc.poll() is None:
                p.proc.terminate()
                with contextlib.suppress(Exception):
                    p.proc.wait(30)
        fake.stop_thread()
        synapse.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    parser.add_argument("--instances", type=int, default=1, choices=[1, 2, 3])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=100, help="people per platform")
    parser.add_argument("--think", type=float, default=10.0,
                        help="mean seconds between one person's commands")
    parser.add_argument("--cohorts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.db == "sqlite" and args.instances > 1:
        parser.error("SQLite is for one process: use --db postgres for several instances")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
