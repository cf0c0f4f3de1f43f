"""Matrix adapter on a real Synapse: round trip of `!cohort next`, and the lateness of 100
cohorts' reminders falling due together, each next to a bare matrix-nio bot as the floor.

Everything runs on one local Synapse (tests/support/synapse.py: SQLite, 127.0.0.1, relaxed rate
limits) that the bench starts in a temporary directory and stops at the end. Two bot processes
run side by side for the whole bench:

- cohortbot: the real `cohortbot run` (Matrix enabled, SQLite, default settings unless
  `--sweep` is given), configured as tests/matrix/support.py's BotProcess does;
- the echo bot (bench/_echo_bot.py): bare matrix-nio with cohortbot's client settings and sync
  loop (encryption-enabled store, 30 s long polls, key upload/query/claim after each sync),
  answering `!echo <text>` with an `m.notice` replying to it, and, on a signal, sending a given
  list of events at a given instant one after the other.

A member client (matrix-nio, encryption-enabled store) watches with its own 30 s long polls,
in a background task that stamps every event with the time its sync response came back.

1. Round trip. In a direct room the member opens with cohortbot (the member belongs to a
   scheduled cohort), the member sends `!cohort next` and waits for the bot's `m.notice` replying
   to it (a real "Next session of …" answer); in a direct room with the echo bot, the same with
   `!echo next`. Measured from just before `room_send` to the sync that brings the reply
   (time.perf_counter()). For reference, cohortbot also answers `!cohort nonesuch` (an unknown
   word: the reply comes from the parser, no database, no wake-up), which isolates the adapter.
   The commands take turns run by run (which goes first rotates), after warm-up runs. Reported:
   p50/p90/p99, the ratio to the echo bot with a 95% bootstrap interval, and each bot's CPU
   time per run (all its threads, /proc schedstat). Target: `next` p50 and p99 ≤ 1.1x.
   With `--repeat K`, K rounds of `--runs` runs each follow one another in the same
   processes: each round's ratios are shown, and the table (and the verdict) pools them. The
   p99 of 200 runs is their second-slowest, which moves by tens of percent between
   identical rounds; K rounds show that spread, and the pooled p99 is the steadier figure.

2. Lateness. N rooms (default 100), each with cohortbot, the echo bot and the member, and one
   cohort linked to each room (set up through `!cohort cohort create` commands). In each round,
   one sender: for cohortbot, one `prompt` notification per cohort, all due at the same instant
   T a few seconds ahead, written straight into the bot's database (as tests/matrix/support.py's
   plant_prompts does), then a command so that the bot's wake-up is re-armed for T (a handled
   command that plans something, `!cohort prompt next …`, pokes the waker; the DB's `fired_at`
   shows it fired on time); for the echo bot, the
   same N events (rendered by the adapter's own `render`) to the same rooms at T, sequentially
   as fast as it can. Lateness = arrival at the member's client − T. A small uncounted round of
   each comes first (warm caches), then `--rounds` rounds of each, back to back, the order
   alternating. Reported per round and pooled: p50/p99/max, the senders' own view (cohortbot:
   `fired_at`, the outbox rows' `sent_at`; echo bot: its send times), and CPU time of both
   bots and Synapse. Target: cohortbot's pooled p99 ≤ 1.1x the echo bot's.

Diagnostics: `--probe` runs cohortbot through bench/matrix_probe.py and the echo bot with time
stamps, and shows where a round trip's time goes; `--py-spy PATH` samples the sending bot in
each measured phase; `--core-timing` reads cohortbot's own per-command time from its DEBUG log.

    .venv/bin/python bench/matrix.py [--runs 200] [--repeat 1] [--warmup 20] [--cohorts 100]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as c

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nio import (  # noqa: E402
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    KeysUploadResponse,
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
)

from tests.matrix.support import BotProcess, Member  # noqa: E402
from tests.support.synapse import RegisteredUser, SynapseServer  # noqa: E402

TARGET_RATIO = 1.1
#: Sent before each round so that cohortbot re-arms its wake-up: it plans a prompt (for the
#: round-trip cohort's next session, a week away), as a command that only reads would not.
POKE = "!cohort prompt next wake-up"
ECHO_BOT = str(Path(__file__).with_name("_echo_bot.py"))
PROBE = str(Path(__file__).with_name("matrix_probe.py"))
COHORTBOT = str(Path(sys.executable).with_name("cohortbot"))
LONG_POLL_MS = 30_000
CHUNK = 10  # concurrent requests during set-up


# --------------------------------------------------------------------------- processes

_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: let the kernel SIGKILL it if the bench dies."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COHORTBOT_", "ECHO_")) and "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    return proc.returncode


class CohortBot(BotProcess):
    """BotProcess, started so that it dies with the bench even if the bench is killed; with
    `probe`, run through bench/matrix_probe.py (the same code, with time stamps)."""

    probe: Path | None = None
    what_if: str | None = None

    def start(self) -> None:
        parent = os.getpid()
        env = _clean_env()
        env["COHORTBOT_BOT__COMMANDS_PER_MINUTE"] = "1000000"  # (not what is measured)
        argv = [COHORTBOT]
        if self.probe is not None:
            argv = [sys.executable, PROBE]
            env["COHORTBOT_PROBE_FILE"] = str(self.probe)
            if self.what_if:
                env["COHORTBOT_PROBE_WHAT_IF"] = self.what_if
        with self.logfile.open("ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--config", str(self.config), "run"], stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root,
                env=env, start_new_session=True,
                preexec_fn=lambda: _die_with_parent(parent))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return _stop_group(self.proc) or 0


class EchoProcess:
    """bench/_echo_bot.py in its own process."""

    def __init__(self, root: Path, server: SynapseServer, account: RegisteredUser,
                 admins: list[str], probe: Path | None = None) -> None:
        self.root = root
        self.account = account
        self.logfile = root / "echo.log"
        self.plan = root / "burst.json"
        self.probe = probe
        self.argv = [sys.executable, ECHO_BOT, "--homeserver", server.base_url,
                     "--store", str(root / "store"), "--plan", str(self.plan),
                     *(a for admin in admins for a in ("--admin", admin)),
                     *(["--probe", str(probe)] if probe else [])]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def user_id(self) -> str:
        return self.account.user_id

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = _clean_env()
        env.update(ECHO_USER_ID=self.account.user_id, ECHO_DEVICE_ID=self.account.device_id,
                   ECHO_ACCESS_TOKEN=self.account.access_token)
        parent = os.getpid()
        with self.logfile.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.argv], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root, env=env, start_new_session=True,
                preexec_fn=lambda: _die_with_parent(parent))

    def stop(self) -> None:
        _stop_group(self.proc)

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    async def wait_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"the echo bot exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no {text!r} in the echo bot's log:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.1)

    def burst(self, at: float, sends: list[dict[str, Any]], lanes: int = 1) -> None:
        done = self.plan.with_name(self.plan.name + ".done")
        done.unlink(missing_ok=True)
        tmp = self.plan.with_name(self.plan.name + ".tmp")
        tmp.write_text(json.dumps({"at": at, "lanes": lanes, "sends": sends}))
        tmp.replace(self.plan)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)

    async def burst_result(self, timeout: float) -> dict[str, Any]:
        done = self.plan.with_name(self.plan.name + ".done")
        deadline = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"the echo bot never finished its burst:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.1)
        return dict(json.loads(done.read_text()))


async def bot_wait_log(bot: BotProcess, text: str, timeout: float = 60) -> None:
    """BotProcess.wait_log without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while text not in bot.log():
        assert bot.proc is not None
        if bot.proc.poll() is not None:
            raise SystemExit(f"cohortbot exited ({bot.proc.returncode}):\n{bot.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"no {text!r} in cohortbot's log:\n{bot.log()[-3000:]}")
        await asyncio.sleep(0.1)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int | None) -> float:
    """CPU seconds of all live threads of a process, to the nanosecond (schedstat)."""
    if pid is None:
        return float("nan")
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except OSError:
        return cpu_seconds(pid)
    return total / 1e9


class CpuMeter:
    """CPU seconds used by each process between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.used: dict[str, float] = {}
        self._t0: dict[str, float] = {}
        self.wall = 0.0
        self._w0 = 0.0

    def start(self) -> CpuMeter:
        self._t0 = {k: cpu_seconds(p) if p != os.getpid() else time.process_time()
                    for k, p in self.pids.items()}
        self._w0 = time.perf_counter()
        return self

    def stop(self) -> CpuMeter:
        self.wall = time.perf_counter() - self._w0
        self.used = {k: (cpu_seconds(p) if p != os.getpid() else time.process_time())
                     - self._t0[k] for k, p in self.pids.items()}
        return self


class PySpy:
    """`py-spy record` of a process during one measured phase. py-spy pauses the process for
    each sample (consistent stacks); at 100 Hz that inflates timings a little."""

    RATE = 100
    #: Where a sample's time went, by the first pattern its stack matches (in this order).
    CATEGORIES = (
        ("waiting (epoll, aiosqlite queue)", "idle"),
        ("aiosqlite worker: running SQL", "_connection_worker_thread"),
        ("nio store (peewee/SQLite): sync token", "save_sync_token"),
        ("nio store (peewee/SQLite): other", "nio/store/"),
        ("core: Bot.handle (command)", "Bot.handle"),
        ("scheduler: Waker.wake / Dispatcher", "Waker.wake"),
        ("adapter: reply/send (render, room_send)", "MatrixPlatform._handle"),
        ("adapter: reply/send (render, room_send)", "MatrixMessenger.send"),
        ("echo bot: answer/burst (room_send)", "EchoBot._answer"),
        ("echo bot: answer/burst (room_send)", "EchoBot._burst"),
        ("nio sync (HTTP, parsing, callbacks)", "AsyncClient.sync"),
        ("APScheduler machinery", "apscheduler/"),
        ("logging", "logging/"),
    )

    def __init__(self, binary: str | None, out_dir: Path) -> None:
        self.binary = binary
        self.out_dir = out_dir
        self.files: dict[str, Path] = {}
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, label: str, pid: int | None) -> None:
        if self.binary is None or pid is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        out = self.out_dir / f"{label}.txt"
        self.files[label] = out
        self._procs.append(subprocess.Popen(
            [self.binary, "record", "--pid", str(pid), "--rate", str(self.RATE), "--format",
             "raw", "--output", str(out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(self.out_dir / f"{label}.log").open("wb")))

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self._procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._procs.clear()

    @classmethod
    def category(cls, frames: list[str]) -> str:
        leaf = frames[-1]
        if leaf.startswith(("EpollSelector.select", "SimpleQueue.get")) or (
                leaf.startswith("_connection_worker_thread") and "core.py:59)" in leaf):
            return cls.CATEGORIES[0][0]
        stack = ";".join(frames)
        for name, pattern in cls.CATEGORIES[1:]:
            if pattern in stack:
                return name
        return "other (event loop, aiohttp, …)"

    def report(self, label: str, top: int = 10) -> str:
        path = self.files.get(label)
        if path is None or not path.exists():
            return f"   (no py-spy samples for {label})"
        cats: dict[str, int] = {}
        own: dict[str, int] = {}
        incl: dict[str, int] = {}
        total = busy = 0
        for line in path.read_text(errors="replace").splitlines():
            stack, _, n = line.rpartition(" ")
            frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
            if not n.isdigit() or not frames:
                continue
            count = int(n)
            total += count
            cat = self.category(frames)
            cats[cat] = cats.get(cat, 0) + count
            if cat == self.CATEGORIES[0][0]:
                continue
            busy += count
            leaf = _frame(frames[-1])
            own[leaf] = own.get(leaf, 0) + count
            for name in {_frame(f) for f in frames}:
                if "bot/" in name or "adapters/" in name or "_echo_bot" in name:
                    incl[name] = incl.get(name, 0) + count
        if not busy:
            return f"   (no py-spy samples for {label})"

        def rows(d: dict[str, int], of: int) -> list[list[Any]]:
            return [[name[:100], f"{k / of:.0%}", k / self.RATE]
                    for name, k in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

        return "\n".join([
            f"\n   py-spy, {label}: {busy} busy samples ≈ {busy / self.RATE:.2f} s of running "
            f"Python, any thread ({total - busy} waiting samples left out; raw stacks: {path})",
            c.table(["where", "share of busy", "≈ s"],
                    rows({k: v for k, v in cats.items() if k != self.CATEGORIES[0][0]}, busy)),
            "",
            c.table(["own time (leaf frame)", "share of busy", "≈ s"], rows(own, busy)),
            "",
            c.table(["inclusive: bot/, adapters/ (and the echo bot)", "share of busy", "≈ s"],
                    rows(incl, busy)),
        ])


def _frame(frame: str) -> str:
    """'func (path/to/file.py:123)' → 'func (package/file.py)'."""
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("/site-packages/", f"{ROOT}/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


# --------------------------------------------------------------------------- clients


async def make_client(server: SynapseServer, user: RegisteredUser, store: Path) -> AsyncClient:
    """A logged-in nio client as tests/matrix/conftest.py makes them (e2e store, keys up)."""
    store.mkdir(parents=True)
    client = AsyncClient(server.base_url, user.user_id, device_id=user.device_id,
                         store_path=str(store),
                         config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True,
                                                  request_timeout=LONG_POLL_MS / 1000 + 30))
    client.restore_login(user.user_id, user.device_id, user.access_token)
    if client.olm is not None and client.should_upload_keys:
        resp = await client.keys_upload()
        assert isinstance(resp, KeysUploadResponse), f"keys_upload failed: {resp}"
    return client


@dataclass
class Arrival:
    room_id: str
    sender: str
    event_id: str
    content: dict[str, Any]
    perf: float  # time.perf_counter() when the sync response that carried it came back
    wall: float  # time.time() at the same moment
    mono: float  # time.monotonic() at the same moment (the probes' clock)

    @property
    def body(self) -> str:
        return str(self.content.get("body", ""))


@dataclass
class Watcher:
    """The member's sync loop: 30 s long polls, every message event stamped on arrival."""

    client: AsyncClient
    replies: dict[str, Arrival] = field(default_factory=dict)  # by the event they answer
    messages: list[Arrival] = field(default_factory=list)
    syncs: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _error: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="member-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        c_ = self.client
        try:
            while True:
                resp = await c_.sync(timeout=LONG_POLL_MS)
                perf, wall, mono = time.perf_counter(), time.time(), time.monotonic()
                if not isinstance(resp, SyncResponse):
                    raise RuntimeError(f"the member's sync failed: {resp}")
                self.syncs += 1
                for room_id, info in resp.rooms.join.items():
                    for ev in info.timeline.events:
                        src = getattr(ev, "source", None) or {}
                        if src.get("type") != "m.room.message":
                            continue
                        content = src.get("content", {})
                        a = Arrival(room_id, src.get("sender", ""), src.get("event_id", ""),
                                    content, perf, wall, mono)
                        self.messages.append(a)
                        rel = (content.get("m.relates_to") or {}).get("m.in_reply_to") or {}
                        if rel.get("event_id"):
                            self.replies[rel["event_id"]] = a
                self._changed.set()
                if c_.should_upload_keys:
                    await c_.keys_upload()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits
            self._error = e
            self._changed.set()

    async def wait(self, done: Any, timeout: float, what: str) -> None:
        """Until `done()` is true (checked after every sync)."""
        deadline = time.monotonic() + timeout
        while not done():
            if self._error is not None:
                raise SystemExit(f"the member's sync loop failed: {self._error!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"timed out waiting for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=left)

    async def round_trip(self, room_id: str, text: str, timeout: float
                         ) -> tuple[float, Arrival, dict[str, Any]]:
        """Send `text`, wait for the reply; (seconds, the reply, monotonic stamps)."""
        mono = time.monotonic()
        started = time.perf_counter()
        resp = await self.client.room_send(room_id, "m.room.message",
                                           {"msgtype": "m.text", "body": text},
                                           ignore_unverified_devices=True)
        sent = time.monotonic()
        if not isinstance(resp, RoomSendResponse):
            raise SystemExit(f"the member could not send: {resp}")
        eid = resp.event_id
        await self.wait(lambda: eid in self.replies, timeout, f"the reply to {text!r}")
        reply = self.replies.pop(eid)
        return reply.perf - started, reply, {"ev": eid, "start": mono, "sent": sent,
                                             "arrive": reply.mono}


# --------------------------------------------------------------------------- set-up


async def gather_chunked(coros: Iterable[Any], size: int = CHUNK) -> list[Any]:
    items, out = list(coros), []
    for i in range(0, len(items), size):
        out += await asyncio.gather(*items[i:i + size])
    return out


async def admin_command(admin: Member, bot: BotProcess, room: str, text: str,
                        expect: str) -> None:
    eid = await admin.say(room, f"!cohort {text}")
    await admin.wait_for(lambda s: s.sender == bot.user_id and s.room_id == room
                         and s.content.get("m.relates_to", {}).get("m.in_reply_to", {})
                         .get("event_id") == eid,
                         timeout=60, what=f"the reply to {text!r}")
    got = next(s for s in reversed(admin.seen) if s.sender == bot.user_id and s.room_id == room)
    if expect not in got.body:
        raise SystemExit(f"unexpected reply to {text!r}: {got.body!r}")


async def wait_members(admin: Member, rooms: list[str], users: list[str],
                       timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        missing = [r for r in rooms if (room := admin.client.rooms.get(r)) is None
                   or any(u not in room.users for u in users)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(missing)} rooms still lack one of {users}")
        await admin.sync()


async def setup_round_trip(admin: Member, member: Member, bot: BotProcess,
                           echo: EchoProcess) -> tuple[str, str]:
    rt_bot = await admin.create_room([bot.user_id, member.user_id])
    rt_echo = await admin.create_room([echo.user_id, member.user_id])
    for room in (rt_bot, rt_echo):
        resp = await member.client.join(room)
        assert isinstance(resp, JoinResponse), resp
    await wait_members(admin, [rt_bot], [bot.user_id, member.user_id])
    await wait_members(admin, [rt_echo], [echo.user_id, member.user_id])
    # A weekly session 5 days ahead: nothing of it (announcement 72 h before, reminders 24 h
    # and 1 h before) falls due while the bench runs.
    day = (datetime.now(UTC) + timedelta(days=5)).strftime("%a").lower()
    await admin_command(admin, bot, rt_bot, "cohort create Bench Round Trip", "Created")
    await admin_command(admin, bot, rt_bot, f"cohort schedule weekly {day} 14:00 UTC for 90m",
                        "Schedule")
    await admin_command(admin, bot, rt_bot, f"cohort members add {member.user_id}", "Added")
    # The member (who sends every measured command) may post prompts: see POKE.
    await admin_command(admin, bot, rt_bot, f"cohort facilitators add {member.user_id}",
                        "facilitate")
    # Measured in direct rooms the member opens: cohortbot answers a command typed in a shared
    # room in the caller's direct room, so its round trip is taken where the answer comes.
    dm_bot = await member.open_direct(bot.user_id, encrypted=False)
    dm_echo = await member.open_direct(echo.user_id, encrypted=False)
    await member.joined(dm_bot, bot.user_id)
    await member.joined(dm_echo, echo.user_id)
    return dm_bot, dm_echo


async def setup_lateness_rooms(n: int, admin: Member, member: Member, bot: BotProcess,
                               echo: EchoProcess) -> dict[str, int]:
    """N rooms, each with both bots and the member, each linked to its own cohort.
    Returns room id → cohort id."""
    async def create(i: int) -> str:
        resp = await admin.client.room_create(
            name=f"Bench late {i:03d}", invite=[bot.user_id, echo.user_id, member.user_id])
        if not isinstance(resp, RoomCreateResponse):
            raise SystemExit(f"room_create failed: {resp}")
        return str(resp.room_id)

    rooms = await gather_chunked(create(i) for i in range(n))

    async def join(room: str) -> None:
        resp = await member.client.join(room)
        if not isinstance(resp, JoinResponse):
            raise SystemExit(f"the member could not join {room}: {resp}")

    await gather_chunked(join(r) for r in rooms)
    await wait_members(admin, rooms, [bot.user_id, echo.user_id, member.user_id])

    sent: dict[str, str] = {}

    async def create_cohort(i: int, room: str) -> None:
        sent[room] = await admin.say(room, f"!cohort cohort create Bench Late {i:03d}")

    await gather_chunked(create_cohort(i, r) for i, r in enumerate(rooms))
    answered: set[str] = set()

    def all_answered() -> bool:
        for s in admin.seen:
            rel = s.content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
            if s.sender == bot.user_id and rel == sent.get(s.room_id):
                if "Created" not in s.body:
                    raise SystemExit(f"unexpected reply in {s.room_id}: {s.body!r}")
                answered.add(s.room_id)
        return len(answered) == len(rooms)

    deadline = time.monotonic() + 120
    while not all_answered():
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(answered)} of {n} cohorts were created")
        await admin.sync()
    with sqlite3.connect(bot.db) as db:
        linked = dict(db.execute(
            "SELECT channel_id, id FROM cohorts WHERE platform = 'matrix' AND channel_id IN "
            f"({','.join('?' * len(rooms))})", rooms).fetchall())
    if len(linked) != n:
        raise SystemExit(f"{len(linked)} of {n} rooms are linked to a cohort")
    return {r: int(linked[r]) for r in rooms}


async def plant(db: Path, cohorts: dict[str, int], due: datetime, tag: str) -> None:
    """One `prompt` notification per cohort, all due at `due`, in one transaction through the
    bot's own unit of work (what tests/matrix/support.py's plant_prompts does per cohort)."""
    from bot.db.engine import create_engine, session_factory
    from bot.db.uow import SqlUnitOfWorkFactory
    from bot.domain.model import Notification

    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
            for i, cohort_id in enumerate(cohorts.values()):
                await uow.add_notification(Notification(
                    key=f"bench:{tag}:{i:03d}", kind="prompt", cohort_id=cohort_id, due_at=due,
                    stale_at=due + timedelta(hours=1), payload={"text": f"{tag}-{i:03d}"}))
            await uow.commit()
    finally:
        await engine.dispose()


def prompt_content(text: str) -> dict[str, Any]:
    """Exactly the content cohortbot sends for a prompt (the adapter's own renderer)."""
    from adapters.matrix.render import render
    from bot.chat.message import Message, Strong

    return render(Message.of(Strong("Prompt: "), text), ping=True)


def median_gap(times_ms: list[float]) -> float:
    """The median time between one send's completion and the next's."""
    t = sorted(x for x in times_ms if x == x)
    return statistics.median(b - a for a, b in itertools.pairwise(t)) if len(t) > 1 \
        else float("nan")


def bot_side(db: Path, tag: str, due: float) -> dict[str, Any]:
    """cohortbot's own record of a round, in ms after the due instant."""
    def ms(value: str | None) -> float:
        if value is None:
            return float("nan")
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return (at.timestamp() - due) * 1e3

    with sqlite3.connect(db) as conn:
        fired = [ms(r[0]) for r in conn.execute(
            "SELECT fired_at FROM notifications WHERE key LIKE ?", (f"bench:{tag}:%",))]
        outbox = conn.execute(
            "SELECT created_at, sent_at, status, attempts FROM outbox WHERE key LIKE ?",
            (f"bench:{tag}:%",)).fetchall()
    sent = [ms(r[1]) for r in outbox]
    return {"gap": median_gap(sent), "sends_ms": sorted(sent),
            "fired_first": min(fired, default=float("nan")),
            "fired_last": max(fired, default=float("nan")),
            "sent_first": min(sent, default=float("nan")),
            "sent_last": max(sent, default=float("nan")),
            "outbox": len(outbox), "sent": sum(1 for r in outbox if r[2] == "sent"),
            "retries": sum(max(0, int(r[3]) - 1) for r in outbox)}


# --------------------------------------------------------------------------- measuring


@dataclass
class RoundTrips:
    label: str
    pid: int | None
    lat: c.Latencies = field(default_factory=c.Latencies)
    sample: str = ""
    cpu: float = 0.0  # the bot's CPU seconds over the measured runs, each up to its gap's end
    stamps: list[dict[str, Any]] = field(default_factory=list)


async def measure_round_trips(watcher: Watcher, runs: int, gap: float, verbose: bool,
                              targets: list[tuple[RoundTrips, str, str]], *,
                              record: bool) -> None:
    """`runs` round trips per target, taking turns (which goes first rotates)."""
    for i in range(runs):
        k = i % len(targets)
        order = targets[k:] + targets[:k]
        for rt, room, text in order:
            cpu0 = thread_cpu_seconds(rt.pid)
            seconds, reply, stamps = await watcher.round_trip(room, text, timeout=60)
            rt.sample = reply.body
            if gap:
                await asyncio.sleep(gap)
            if record:
                rt.lat.add(seconds)
                rt.cpu += thread_cpu_seconds(rt.pid) - cpu0
                rt.stamps.append(stamps)
        if verbose and (i + 1) % 50 == 0:
            print(f"  round trips: {i + 1}/{runs}{'' if record else ' (warm-up)'}", flush=True)


@dataclass
class LateRound:
    index: int
    sender: str
    due: float
    late_ms: list[float]
    expected: int
    side: dict[str, Any]
    cpu: dict[str, float] = field(default_factory=dict)
    due_mono: float = float("nan")  # T on the probes' clock
    end_mono: float = float("nan")  # when the round's last message arrived (or it gave up)


async def lateness_round(index: int, who: str, watcher: Watcher, bot: BotProcess,
                         echo: EchoProcess, cohorts: dict[str, int], poke: tuple[str, str],
                         args: argparse.Namespace, meter: CpuMeter, spy: PySpy) -> LateRound:
    tag = f"r{index}{'c' if who == 'cohortbot' else 'e'}"
    watcher.messages.clear()
    due = time.time() + args.lead
    due = float(int(due * 1000)) / 1000  # whole milliseconds, as stored
    due_mono = time.monotonic() + (due - time.time())
    due_dt = datetime.fromtimestamp(due, UTC)
    texts = {room: f"{tag}-{i:03d}" for i, room in enumerate(cohorts)}
    if who == "cohortbot":
        sender = bot.user_id
        await plant(bot.db, cohorts, due_dt, tag)
        # A handled command that plans something pokes the waker, which re-arms its wake-up
        # at the new earliest due instant (otherwise the rows are only seen at the next
        # sweep). A prompt for the round-trip cohort's next session (a week away) does.
        await watcher.round_trip(poke[0], f"{poke[1]} {tag}", timeout=60)
    else:
        sender = echo.user_id
        echo.burst(due, [{"room_id": room, "content": prompt_content(text)}
                         for room, text in texts.items()], lanes=args.floor_lanes)
    wanted = {(room, f"Prompt: {text}") for room, text in texts.items()}
    seen: dict[tuple[str, str], float] = {}
    spy.start(f"lateness-round{index}-{'cohortbot' if who == 'cohortbot' else 'echo'}",
              bot.proc.pid if who == "cohortbot" and bot.proc else
              echo.proc.pid if who != "cohortbot" and echo.proc else None)
    meter.start()

    def arrived() -> bool:
        for a in watcher.messages:
            key = (a.room_id, a.body)
            if a.sender == sender and key in wanted and key not in seen:
                seen[key] = a.wall
        return len(seen) == len(wanted)

    with contextlib.suppress(SystemExit):
        await watcher.wait(arrived, timeout=args.lead + args.max_seconds,
                           what=f"{len(wanted)} messages from {who}")
    meter.stop()
    spy.stop()
    end_mono = time.monotonic()
    late = [(t - due) * 1e3 for t in seen.values()]
    if who == "cohortbot":
        await asyncio.sleep(0.5)  # the last sends' bookkeeping may trail their arrival
        side = bot_side(bot.db, tag, due)
    else:
        res = await echo.burst_result(timeout=30)
        sends = [s["sent"] for s in res["sends"]]
        side = {"gap": median_gap([x * 1e3 for x in sends]),
                "sends_ms": sorted((x - due) * 1e3 for x in sends),
                "fired_first": float("nan"), "fired_last": float("nan"),
                "sent_first": (min(sends) - due) * 1e3, "sent_last": (max(sends) - due) * 1e3,
                "started": (res["started"] - due) * 1e3,
                "sent": sum(1 for s in res["sends"] if s["ok"])}
    watcher.messages.clear()
    return LateRound(index, who, due, late, len(wanted), side, dict(meter.used), due_mono,
                     end_mono)


# --------------------------------------------------------------------------- report


def core_times(log: str, since: int = 0) -> list[float]:
    """'handled 'next' in X ms' lines of cohortbot's DEBUG log."""
    return [float(m.group(1)) for m in
            re.finditer(r"handled 'next' in ([\d.]+) ms", log[since:])]


def ratio_ci(a: list[float], b: list[float], q: float, iters: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of percentile(a, q) / percentile(b, q) (fixed seed)."""
    rng = random.Random(1234)
    ratios = sorted(
        c.percentile(rng.choices(a, k=len(a)), q) / c.percentile(rng.choices(b, k=len(b)), q)
        for _ in range(iters))
    return ratios[int(0.025 * iters)], ratios[int(0.975 * iters) - 1]


def round_ratios(results: list[RoundTrips], marks: list[int]) -> list[float]:
    """`next` / echo bot at p50 and p99 over the runs since `marks` (one round)."""
    bot, floor = (r.lat.seconds[m:] for r, m in ((results[0], marks[0]),
                                                  (results[-1], marks[-1])))
    return [c.percentile(bot, q) / c.percentile(floor, q) for q in (50, 99)]


def report_rounds(per_round: list[list[float]]) -> None:
    rows = [[i + 1, f"{p50:.2f}x", f"{p99:.2f}x"] for i, (p50, p99) in enumerate(per_round)]
    print(f"   each round of the {len(per_round)} on its own (`!cohort next` / echo bot):")
    print(c.table(["round", "p50", "p99"], rows))
    p99s = sorted(r[1] for r in per_round)
    print(f"   p99 ratio over the rounds: median {statistics.median(p99s):.2f}x, "
          f"{p99s[0]:.2f}–{p99s[-1]:.2f}x; within {TARGET_RATIO}x in "
          f"{sum(1 for x in p99s if x <= TARGET_RATIO)} of {len(p99s)}")


def report_round_trips(results: list[RoundTrips], args: argparse.Namespace,
                       core_ms: list[float], meter: CpuMeter) -> bool:
    bot, floor = results[0], results[-1]
    rounds = (f"{args.repeat} rounds of {args.runs} runs each, pooled ({args.runs * args.repeat}"
              " runs each)" if args.repeat > 1 else f"{args.runs} runs each")
    print(f"\n1. round trip of a command on the local Synapse: the member sends, the reply "
          f"(m.notice, in reply to it) arrives in its long-poll sync; {rounds}, "
          f"taking turns, after {args.warmup} warm-up runs each")
    rows = []
    for r in results:
        lat = r.lat
        lo50, hi50 = ratio_ci(lat.seconds, floor.lat.seconds, 50)
        lo99, hi99 = ratio_ci(lat.seconds, floor.lat.seconds, 99)
        rows.append([r.label, lat.n, lat.ms(50), lat.ms(90), lat.ms(99), max(lat.seconds) * 1e3,
                     lat.mean_ms, r.cpu * 1e3 / lat.n,
                     f"{lat.ms(50) / floor.lat.ms(50):.2f}x ({lo50:.2f}–{hi50:.2f})",
                     f"{lat.ms(99) / floor.lat.ms(99):.2f}x ({lo99:.2f}–{hi99:.2f})"])
    print(c.table(["bot, command", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms",
                   "bot CPU ms/run", "p50 / echo (95% CI)", "p99 / echo (95% CI)"], rows))
    for r in results[:-1]:
        print(f"   {r.label.split(',')[0]} replied: {r.sample.splitlines()[0][:90]!r}")
    if core_ms:
        print(f"   cohortbot's core (Bot.handle, from its DEBUG log), {len(core_ms)} commands: "
              f"p50 {c.percentile(core_ms, 50):.1f} ms, p99 {c.percentile(core_ms, 99):.1f} ms")
    used, n = meter.used, sum(r.lat.n for r in results)
    print(f"   CPU per round trip, all {n} measured: Synapse {used['synapse'] / n * 1e3:.1f} ms, "
          f"this bench's member client {used['bench'] / n * 1e3:.1f} ms; "
          f"wall {meter.wall:.0f} s")
    r50 = bot.lat.ms(50) / floor.lat.ms(50)
    r99 = bot.lat.ms(99) / floor.lat.ms(99)
    ok = max(r50, r99) <= TARGET_RATIO
    print(f"target: cohortbot's `!cohort next` ≤ {TARGET_RATIO}x the echo bot, p50 and p99: "
          f"p50 {r50:.2f}x, p99 {r99:.2f}x: {c.verdict(ok)}")
    return ok


def read_probe(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def report_decomposition(results: list[RoundTrips], bot_probe: list[dict[str, Any]],
                         echo_probe: list[dict[str, Any]]) -> None:
    """Where each round trip's time went, from the probes' monotonic stamps (means, in ms:
    means add up; a stage can be negative when two things overlap)."""
    stages = [
        ("member's room_send (request → response)", "start", "sent"),
        ("event reaches the bot (start → bot's sync response in)", "start", "sync"),
        ("bot: nio processes the sync → message callback", "sync", "cb"),
        ("bot: callback → core starts", "cb", "h0"),
        ("bot: core (Bot.handle)", "h0", "h1"),
        ("  of which: its CPU time (main thread)", None, "cpu"),
        ("  of which: in SQL statements (driver round trips included)", None, "sql"),
        ("  of which: in garbage collection", None, "gc"),
        ("bot: core ends → reply send starts", "h1", "s0"),
        ("bot: callback → reply send starts (echo: no core)", "cb", "s0"),
        ("bot: reply room_send (request → response)", "s0", "s1"),
        ("reply reaches the member (send start → member's sync in)", "s0", "arrive"),
        ("total (start → member's sync in)", "start", "arrive"),
    ]
    columns: list[tuple[str, dict[str, dict[str, float]]]] = []
    for r, probe in zip(results, [bot_probe, bot_probe, echo_probe], strict=True):
        by_ev: dict[str, dict[str, float]] = {}
        for p in probe:
            ev = p.get("ev")
            if not ev:
                continue
            d = by_ev.setdefault(ev, {})
            if p["k"] == "cb":
                d["cb"] = p["t"]
                if p.get("sync") is not None:
                    d["sync"] = p["sync"]
            elif p["k"] == "h":
                d["h0"], d["h1"] = p["t0"], p["t1"]
                for part in ("cpu", "gc", "sql"):
                    if part in p:
                        d[part] = p[part]
            elif p["k"] == "send":
                d["s0"], d["s1"] = p["t0"], p["t1"]
        runs = {}
        for st in r.stamps:
            runs[st["ev"]] = {**by_ev.get(st["ev"], {}), **st}
        columns.append((r.label.split(",", 1)[1].strip(), runs))
    rows = []
    for name, a, b in stages:
        row: list[Any] = [name]
        for _, runs in columns:
            vals = [(d[b] - (d[a] if a else 0.0)) * 1e3 for d in runs.values()
                    if (a is None or a in d) and b in d]
            row.append(statistics.fmean(vals) if vals else "-")
        rows.append(row)
    print("\n   where a round trip's time goes (means over the measured runs, ms; from "
          "time stamps inside both bots, --probe)")
    print(c.table(["stage", *(label for label, _ in columns)], rows))
    wakes = [(p["t0"], p["t1"]) for p in bot_probe if p["k"] == "wake"]
    runs = columns[0][1]
    overlap = sum(1 for d in runs.values() if "h1" in d and "s1" in d
                  and any(w0 < d["s1"] and w1 > d["h1"] for w0, w1 in wakes))
    durations = [(w1 - w0) * 1e3 for w0, w1 in wakes]
    if durations and runs:
        print(f"   cohortbot's wake-ups (Waker.wake, run after every handled command): "
              f"{len(wakes)}, mean {statistics.fmean(durations):.1f} ms; one was running "
              f"between the end of the core and the reply's send response in "
              f"{overlap}/{len(runs)} `next` round trips")


def report_send_loop(rounds: list[LateRound], bot_probe: list[dict[str, Any]],
                     echo_probe: list[dict[str, Any]]) -> None:
    """The senders' loops from the probes: until the first send, each send's request, and the
    time between one send's response and the next send's request."""
    rows = []
    for r in rounds:
        probe, prefix = ((bot_probe, "cohortbot.") if r.sender == "cohortbot"
                         else (echo_probe, "echo."))
        sends = sorted((p["t0"], p["t1"]) for p in probe
                       if p["k"] == "send" and str(p.get("tx") or "").startswith(prefix)
                       and r.due_mono - 1 <= p["t0"] <= r.end_mono)
        if not sends:
            continue
        between = [b0 - a1 for (_, a1), (b0, _) in itertools.pairwise(sends)]
        rows.append([r.index, r.sender, len(sends), (sends[0][0] - r.due_mono) * 1e3,
                     statistics.fmean((t1 - t0) * 1e3 for t0, t1 in sends),
                     statistics.fmean(between) * 1e3 if between else float("nan"),
                     (sends[-1][1] - r.due_mono) * 1e3])
    if rows:
        print("\n   the send loops, from time stamps inside both bots (--probe; between sends: "
              "from one send's response to the next send's request, negative when sends "
              "overlap)")
        print(c.table(["round", "sender", "sends", "T → 1st send starts ms",
                       "mean room_send ms", "mean between sends ms", "T → last send done ms"],
                      rows))


def report_lateness(rounds: list[LateRound], args: argparse.Namespace) -> bool:
    how = ("one after the other" if args.floor_lanes <= 1
           else f"to up to {args.floor_lanes} rooms side by side")
    print(f"\n2. lateness of {args.cohorts} messages due at the same instant T (one per cohort, "
          f"one room each): arrival at the member's client − T, {len(rounds) // 2} round(s) "
          f"each; the echo bot sends {how}")
    rows = []
    for r in rounds:
        s = r.side
        rows.append([r.index, r.sender, f"{len(r.late_ms)}/{r.expected}",
                     c.percentile(r.late_ms, 50), c.percentile(r.late_ms, 99),
                     max(r.late_ms, default=float("nan")), min(r.late_ms, default=float("nan")),
                     s.get("fired_first", float("nan")) if r.sender == "cohortbot"
                     else s.get("started", float("nan")),
                     s["sent_first"], s["sent_last"], s["gap"], int(s["sent"]),
                     r.cpu.get("cohortbot", float("nan")), r.cpu.get("echo bot", float("nan")),
                     r.cpu.get("synapse", float("nan"))])
    print(c.table(["round", "sender", "arrived", "p50 ms", "p99 ms", "max ms", "first ms",
                   "fired/started ms", "1st send done ms", "last send done ms",
                   "median ms between sends", "sent",
                   "CPU s cohortbot", "CPU s echo", "CPU s synapse"], rows))
    pooled: dict[str, list[float]] = {}
    complete: dict[str, bool] = {}
    for r in rounds:
        pooled.setdefault(r.sender, []).extend(r.late_ms)
        complete[r.sender] = complete.get(r.sender, True) and len(r.late_ms) == r.expected
    print()
    echo99 = c.percentile(pooled.get("echo bot", []), 99)
    rows = [[who, len(v), c.percentile(v, 50), c.percentile(v, 99), max(v, default=float("nan")),
             f"{c.percentile(v, 50) / c.percentile(pooled['echo bot'], 50):.2f}x",
             f"{c.percentile(v, 99) / echo99:.2f}x"] for who, v in pooled.items()]
    print(c.table(["sender (pooled)", "n", "p50 ms", "p99 ms", "max ms", "p50 / echo p50",
                   "p99 / echo p99"], rows))
    paired = []
    for i in sorted({r.index for r in rounds}):
        mine = [r for r in rounds if r.index == i]
        bot = next((r for r in mine if r.sender == "cohortbot"), None)
        echo = next((r for r in mine if r.sender == "echo bot"), None)
        if bot and echo and bot.late_ms and echo.late_ms:
            paired.append(c.percentile(bot.late_ms, 99) / c.percentile(echo.late_ms, 99))
    if paired:
        print("   p99 ratio within each round (the two senders back to back): "
              + ", ".join(f"{x:.2f}x" for x in paired)
              + f"; median {statistics.median(paired):.2f}x")
    ratio = c.percentile(pooled.get("cohortbot", []), 99) / echo99
    ok = ratio <= TARGET_RATIO and all(complete.values())
    print(f"target: cohortbot's p99 ≤ {TARGET_RATIO}x the echo bot's floor, all delivered: "
          f"{ratio:.2f}x, {'all' if all(complete.values()) else 'NOT all'} delivered: "
          f"{c.verdict(ok)}")
    print("   fired/started: cohortbot's notifications.fired_at (first), the echo bot's start; "
          "send done: the sender's own clock after the homeserver accepted the event; CPU: "
          "each process's CPU time from planting/handing over the round to the last arrival")
    return ok


# --------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace, tmp: Path, procs: list[Any]) -> int:
    t_setup = time.monotonic()
    server = SynapseServer(tmp / "synapse", rate_limits="relaxed")
    procs.append(server)
    server.start()  # on the main thread: Synapse then dies with the bench if it is killed
    print(f"synapse {server.install.version if server.install else '?'} on {server.base_url} "
          f"(started in {server.last_start_seconds or 0:.1f} s, relaxed rate limits)", flush=True)
    admin_u, member_u, bot_u, echo_u = (server.register_user(p) for p in
                                        ("admin", "member", "cohortbot", "echobot"))
    admin = Member(await make_client(server, admin_u, tmp / "clients" / "admin"))
    member = Member(await make_client(server, member_u, tmp / "clients" / "member"))
    procs.extend([admin.client, member.client])

    (tmp / "cohortbot").mkdir()
    bot = CohortBot(tmp / "cohortbot", server, bot_u, admins=[admin.user_id])
    bot_probe = echo_probe = None
    if args.probe:
        bot_probe, echo_probe = tmp / "cohortbot-probe.jsonl", tmp / "echo-probe.jsonl"
        bot.probe = bot_probe
        bot.what_if = args.what_if
        if args.what_if:
            print(f"EXPERIMENT --what-if {args.what_if}: cohortbot is patched at run time by "
                  "bench/matrix_probe.py; these figures are not those of cohortbot as it is",
                  flush=True)
    config = bot.config.read_text()
    if args.core_timing:
        config = config.replace('log_level = "INFO"', 'log_level = "DEBUG"')
    if args.sweep is not None:
        config += f"[scheduler]\nsweep_seconds = {args.sweep}\n"
    bot.config.write_text(config)
    echo = EchoProcess(tmp / "echo", server, echo_u, admins=[admin.user_id, member.user_id],
                       probe=echo_probe)
    procs.extend([bot, echo])
    bot.start()
    echo.start()
    await bot_wait_log(bot, "matrix: logged in")
    await echo.wait_log("ready as")

    rt_bot, rt_echo = await setup_round_trip(admin, member, bot, echo)
    cohorts: dict[str, int] = {}
    if not args.skip_lateness:
        cohorts = await setup_lateness_rooms(args.cohorts, admin, member, bot, echo)
    await member.sync()
    watcher = Watcher(member.client)
    watcher.start()
    procs.append(watcher)
    print(f"set-up: 2 round-trip rooms, {len(cohorts)} cohort rooms in "
          f"{time.monotonic() - t_setup:.0f} s (not measured)", flush=True)
    print(c.load_line(), flush=True)

    pids = {"synapse": server.pid, "cohortbot": bot.proc.pid if bot.proc else None,
            "echo bot": echo.proc.pid if echo.proc else None, "bench": os.getpid()}
    spy = PySpy(args.py_spy, tmp / "py-spy")
    procs.append(spy)
    ok = True
    if not args.skip_round_trip:
        results = [RoundTrips("cohortbot, !cohort next", pids["cohortbot"]),
                   RoundTrips("cohortbot, !cohort nonesuch (adapter only)", pids["cohortbot"]),
                   RoundTrips("echo bot, !echo next", pids["echo bot"])]
        targets = [(results[0], rt_bot, "!cohort next"), (results[1], rt_bot, "!cohort nonesuch"),
                   (results[2], rt_echo, "!echo next")]
        t0 = time.monotonic()
        await measure_round_trips(watcher, args.warmup, args.gap, args.verbose, targets,
                                  record=False)
        log_mark = len(bot.log())
        meter = CpuMeter(pids).start()
        spy.start("round-trip-cohortbot", pids["cohortbot"])
        spy.start("round-trip-echo", pids["echo bot"])
        per_round: list[list[float]] = []
        for _ in range(args.repeat):
            marks = [r.lat.n for r in results]
            await measure_round_trips(watcher, args.runs, args.gap, args.verbose, targets,
                                      record=True)
            per_round.append(round_ratios(results, marks))
        spy.stop()
        meter.stop()
        if "Next session of" not in results[0].sample:
            raise SystemExit(f"cohortbot's answer is not a session: {results[0].sample!r}")
        if "Unknown command" not in results[1].sample:
            raise SystemExit(f"unexpected answer to an unknown word: {results[1].sample!r}")
        core = core_times(bot.log(), log_mark)
        ok &= report_round_trips(results, args, core, meter)
        if args.repeat > 1:
            report_rounds(per_round)
        if args.probe:
            report_decomposition(results, read_probe(bot_probe), read_probe(echo_probe))
        print(f"   ({time.monotonic() - t0:.0f} s)")
        for label in ("round-trip-cohortbot", "round-trip-echo"):
            if label in spy.files:
                print(spy.report(label))
        print(c.load_line(), flush=True)

    if not args.skip_lateness:
        rounds: list[LateRound] = []
        t0 = time.monotonic()
        if args.late_warmup:
            # Not counted: the first firing and sending in a process compiles and caches its
            # statements; both senders get one small round first.
            few = dict(list(cohorts.items())[:min(10, len(cohorts))])
            off = PySpy(None, tmp)
            for who in ("cohortbot", "echo bot"):
                warm = await lateness_round(0, who, watcher, bot, echo, few,
                                            (rt_bot, POKE), args, CpuMeter(pids), off)
                if len(warm.late_ms) != warm.expected:
                    raise SystemExit(f"the warm-up round of {who} lost messages")
                await asyncio.sleep(1.0)
        log_mark = len(bot.log())
        for i in range(args.rounds):
            order = ("cohortbot", "echo bot") if i % 2 == 0 else ("echo bot", "cohortbot")
            for who in order:
                rounds.append(await lateness_round(i + 1, who, watcher, bot, echo, cohorts,
                                                   (rt_bot, POKE), args,
                                                   CpuMeter(pids), spy))
                if args.verbose:
                    r = rounds[-1]
                    print(f"  round {r.index} {who}: {len(r.late_ms)}/{r.expected} arrived, "
                          f"max {max(r.late_ms, default=float('nan')):.0f} ms", flush=True)
                await asyncio.sleep(1.0)  # let both bots' syncs settle
        ok &= report_lateness(rounds, args)
        if args.probe:
            report_send_loop(rounds, read_probe(bot_probe), read_probe(echo_probe))
        print(f"   ({time.monotonic() - t0:.0f} s)")
        if args.keep:
            (tmp / "lateness.json").write_text(json.dumps(
                [{"round": r.index, "sender": r.sender, "due": r.due, "late_ms": r.late_ms,
                  "side": r.side, "cpu": r.cpu} for r in rounds], default=str))
        for label in spy.files:
            if label.startswith("lateness-"):
                print(spy.report(label))
        late_lines = [line for line in bot.log()[log_mark:].splitlines()
                      if "late notification" in line or "dropped" in line]
        if late_lines:
            print(f"   cohortbot logged {len(late_lines)} late/dropped lines in the rounds")

    log = bot.log()
    problems = [line for line in log.splitlines()
                if " ERROR " in line or " WARNING " in line or "Traceback" in line]
    skipped = [line for line in problems if "maximum number of running instances" in line]
    others = [line for line in problems if line not in skipped]
    print(f"\ncohortbot's log: {len(others)} warning/error lines"
          + ("" if not others else ":\n  " + "\n  ".join(others[:10])))
    if skipped:
        print(f"   (and {len(skipped)} APScheduler warnings 'Waker.wake … skipped: maximum number "
              "of running instances reached', from pokes while a wake-up was running)")
    if args.what_if:
        print(f"EXPERIMENT --what-if {args.what_if}: the figures above are of a patched cohortbot")
    print(c.load_line())
    return 0 if ok else 1


async def _run(args: argparse.Namespace, tmp: Path) -> int:
    procs: list[Any] = []
    try:
        return await main_async(args, tmp, procs)
    finally:
        for p in reversed(procs):
            with contextlib.suppress(Exception):
                if isinstance(p, Watcher):
                    await p.stop()
                elif isinstance(p, PySpy):
                    p.stop()
                elif isinstance(p, AsyncClient):
                    await p.close()
                elif isinstance(p, SynapseServer):
                    await asyncio.to_thread(p.stop)
                else:
                    await asyncio.to_thread(p.stop)


def tree_state() -> str:
    """Uncommitted changes in the code this bench runs (the line above covers bot/ only)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "bot",
                              "adapters", "migrations"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "tree: (not a git checkout)"
    changed = sorted(line[3:] for line in out.splitlines() if line.strip())
    return ("tree: bot/, adapters/, migrations/ as committed" if not changed else
            f"tree: uncommitted changes in {', '.join(changed)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=200, help="measured round trips per bot")
    p.add_argument("--warmup", type=int, default=20, help="warm-up round trips per bot")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds of --runs round trips per bot, back to back in the same "
                        "processes: each round's ratios are shown, the table pools them")
    p.add_argument("--gap", type=float, default=0.05,
                   help="seconds between two round trips (default: %(default)s)")
    p.add_argument("--cohorts", type=int, default=100, help="cohorts falling due together")
    p.add_argument("--rounds", type=int, default=3,
                   help="lateness rounds per sender, alternating which goes first "
                        "(default: %(default)s)")
    p.add_argument("--lead", type=float, default=6.0,
                   help="seconds between planting a round and its due instant")
    p.add_argument("--floor-lanes", type=int, default=1,
                   help="the echo bot's floor sends to this many rooms side by side (default: "
                        "1, one after the other, as the target defines the floor)")
    p.add_argument("--late-warmup", type=int, choices=(0, 1), default=1,
                   help="a small uncounted lateness round per sender first (default: 1)")
    p.add_argument("--max-seconds", type=float, default=90.0,
                   help="give up waiting for a round's messages this long after T")
    p.add_argument("--sweep", type=float, default=None,
                   help="cohortbot's scheduler.sweep_seconds (default: the bot's own default)")
    p.add_argument("--core-timing", action="store_true",
                   help="run cohortbot at log level DEBUG and report its own per-command time "
                        "(DEBUG also makes nio's store log every SQL statement: slower)")
    p.add_argument("--probe", action="store_true",
                   help="run cohortbot through bench/matrix_probe.py and the echo bot with "
                        "--probe (time stamps at each step) and show where a round trip's "
                        "time goes")
    p.add_argument("--py-spy", metavar="PATH", default=None,
                   help="record each measured phase of the sending bot with this py-spy "
                        "executable (on-CPU samples, the process not paused) and print where "
                        "its CPU time goes (timings are then slightly inflated)")
    p.add_argument("--what-if", choices=("defer-poke",), default=None,
                   help="with --probe: an experiment on a patched cohortbot (see "
                        "bench/matrix_probe.py); never part of the target figures")
    p.add_argument("--skip-round-trip", action="store_true")
    p.add_argument("--skip-lateness", action="store_true")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (logs, databases) and print its path")
    p.add_argument("--verbose", action="store_true", help="progress lines")
    args = p.parse_args(argv)
    if min(args.rounds, args.runs, args.repeat) < 1:
        p.error("--rounds, --runs and --repeat must be at least 1")
    if args.what_if and not args.probe:
        p.error("--what-if needs --probe")
    print(c.machine_line(), flush=True)
    print(tree_state(), flush=True)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="cohortbot-bench-matrix-"))
    try:
        return asyncio.run(_run(args, tmp))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
