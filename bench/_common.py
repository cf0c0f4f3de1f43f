"""Shared set-up for the cohortbot benchmarks (bench/*.py).

Everything here goes through the real code paths of the bot: Alembic migrations
(`bot.bootstrap.ensure_schema`), the composition root (`bot.bootstrap.build`), the mapped
tables of `bot.db.tables`, and the domain objects that the `cohort create` / `cohort schedule`
commands themselves use to fill a cohort row. Only the *bulk* seeding bypasses the command bus,
so that 10,000 cohorts can be set up in seconds (setup time is never part of a measurement).

Databases: SQLite files live in a fresh temporary directory; PostgreSQL benchmarks create and
drop their *own* database (``cohortbot_bench_<label>_<pid>``) next to the one in ``--pg-url``,
which is only used to connect for CREATE/DROP DATABASE. Nothing is ever dropped in the database
named by ``--pg-url``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import logging
import os
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

#: The simulated "now" every benchmark starts at: Saturday 2026-03-07 13:00 UTC. With the
#: schedule below the first session is Tue 2026-03-10 14:00 UTC, and the first thing that falls
#: due is that session's role announcement (72 h before: Sat 2026-03-07 14:00 UTC), one hour on.
START = datetime(2026, 3, 7, 13, 0, tzinfo=UTC)
SCHEDULE_SPEC = "weekly tue 14:00 UTC for 90m"
PLATFORM = "terminal"
ADMIN_ID = "bench-admin"


# --------------------------------------------------------------------------- CLI helpers


def add_common_args(parser: argparse.ArgumentParser, *, default_db: str = "sqlite") -> None:
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default=default_db,
                        help=f"database backend(s) to run against (default: {default_db})")
    parser.add_argument("--pg-url", default=os.environ.get("COHORTBOT_BENCH_PG_URL",
                                                           DEFAULT_PG_URL),
                        help="PostgreSQL server to use; the benchmark creates and drops its own "
                             "database there (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="scheduler.batch_size override (default: the bot's default)")
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="give up a measured step after this long (default: %(default)s)")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="run the measured steps under cProfile, dump stats to FILE and print "
                             "the top functions (timings are then inflated)")
    parser.add_argument("--sql-stats", action="store_true",
                        help="also time every SQL statement and print the costliest ones")
    parser.add_argument("--verbose", action="store_true", help="show the bot's log output")


def backends(choice: str) -> list[str]:
    return ["sqlite", "postgres"] if choice == "both" else [choice]


def quiet_logs(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        # The dispatcher warns about each late/stale row; the benches report counts instead.
        logging.getLogger("bot").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- databases


def _pg_connect_kwargs(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    kw: dict[str, Any] = {"dbname": u.database or "postgres"}
    if u.host:
        kw["host"] = u.host
    if u.port:
        kw["port"] = u.port
    if u.username:
        kw["user"] = u.username
    if u.password:
        kw["password"] = u.password
    return kw


def _pg_admin(pg_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(**_pg_connect_kwargs(pg_url), autocommit=True) as conn:
        conn.execute(sql)


def _pg_url_for(pg_url: str, dbname: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(pg_url).set(drivername="postgresql+psycopg", database=dbname) \
        .render_as_string(hide_password=False)


_NAME_RE = re.compile(r"[^a-z0-9_]+")


class BenchDatabases:
    """Creates throw-away databases for one benchmark run and removes them all at the end.

    `tmpdir` (SQLite: where the files go) and `tag` (PostgreSQL: the suffix of database names,
    default this process id) let a parent process own databases a child process creates;
    `detach()` makes this object forget them, so that only the parent cleans up."""

    def __init__(self, kind: str, pg_url: str = DEFAULT_PG_URL, *, tmpdir: str | None = None,
                 tag: str | None = None) -> None:
        self.kind = kind
        self.pg_url = pg_url
        self._tmp = tmpdir
        self._own_tmp = tmpdir is None
        self._tag = tag or str(os.getpid())
        self._pg_names: list[str] = []

    def __enter__(self) -> BenchDatabases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop_all()

    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="cohortbot-bench-")
        return self._tmp

    def _pg_name(self, label: str) -> str:
        return f"cohortbot_bench_{label}_{self._tag}"

    def create(self, label: str) -> str:
        """A new, empty database; returns its async SQLAlchemy URL."""
        label = _NAME_RE.sub("_", label.lower())
        if self.kind == "sqlite":
            path = Path(self._tmpdir()) / f"{label}.db"
            if path.exists():
                raise RuntimeError(f"{path} exists already")
            return f"sqlite+aiosqlite:///{path}"
        name = self._pg_name(label)
        _pg_admin(self.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg_admin(self.pg_url, f'CREATE DATABASE "{name}"')
        self._pg_names.append(name)
        return _pg_url_for(self.pg_url, name)

    def clone(self, url: str, label: str) -> str:
        """A copy of the database at `url` (no connection to it may be open)."""
        from sqlalchemy.engine import make_url

        label = _NAME_RE.sub("_", label.lower())
        if self.kind == "sqlite":
            src = Path(str(make_url(url).database))
            dst = src.with_name(f"{label}.db")
            for suffix in ("", "-wal", "-shm"):
                if Path(str(src) + suffix).exists():
                    shutil.copyfile(str(src) + suffix, str(dst) + suffix)
            return f"sqlite+aiosqlite:///{dst}"
        src_name = make_url(url).database
        name = self._pg_name(label)
        _pg_admin(self.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg_admin(self.pg_url, f'CREATE DATABASE "{name}" TEMPLATE "{src_name}"')
        self._pg_names.append(name)
        return _pg_url_for(self.pg_url, name)

    def detach(self) -> None:
        self._pg_names.clear()
        self._own_tmp = False

    def drop_all(self) -> None:
        for name in reversed(self._pg_names):
            with contextlib.suppress(Exception):
                _pg_admin(self.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._pg_names.clear()
        if self._tmp is not None and self._own_tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def drop_pg_database(pg_url: str, url: str) -> None:
    """Drop the benchmark database at `url` (only ever one named cohortbot_bench_*)."""
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if not name.startswith("cohortbot_bench_"):
        raise ValueError(f"refusing to drop {name!r}: not a benchmark database")
    _pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- the app


class NullMessenger:
    """A messenger that delivers nowhere and counts what it was given."""

    platform = PLATFORM

    def __init__(self) -> None:
        self.sent = 0
        self.direct = 0
        self.targets: set[str] = set()

    async def send(self, out: Any) -> str:
        self.sent += 1
        self.direct += bool(out.direct)
        self.targets.add(out.target)
        return f"null-{out.outbox_id}"

    async def edit(self, out: Any, message_id: str) -> None:
        pass

    async def delete(self, out: Any, message_id: str) -> None:
        pass

    async def whisper(self, user: Any, tenant: Any, place: Any, message: Any) -> None:
        self.direct += 1


def settings_for(url: str, *, batch_size: int | None = None) -> Any:
    """The bot's settings for `url`: defaults plus environment-style overrides, read from an
    explicitly empty config file (so a stray ./cohortbot.toml can never leak in)."""
    from bot.config import load_settings

    # Commands come as fast as the core takes them: the per-person flood limit is not what
    # is measured.
    environ = {"COHORTBOT_DATABASE__URL": url, "COHORTBOT_BOT__COMMANDS_PER_MINUTE": "1000000"}
    if batch_size is not None:
        environ["COHORTBOT_SCHEDULER__BATCH_SIZE"] = str(batch_size)
    fd, empty = tempfile.mkstemp(prefix="cohortbot-bench-", suffix=".toml")
    os.close(fd)
    try:
        return load_settings(empty, environ=environ)
    finally:
        os.unlink(empty)


def make_app(url: str, *, batch_size: int | None = None, start: datetime = START,
             migrate: bool = True) -> tuple[Any, NullMessenger]:
    """Migrate (Alembic) and build the real app with a simulated clock and a null messenger."""
    from bot.bootstrap import build, ensure_schema
    from bot.domain.refs import UserRef
    from bot.scheduling.clock import SimulatedClock

    if migrate:
        ensure_schema(url)
    messenger = NullMessenger()
    app = build(settings_for(url, batch_size=batch_size), clock=SimulatedClock(start),
                messengers={PLATFORM: messenger},
                extra_admins=(UserRef(PLATFORM, ADMIN_ID),))
    return app, messenger


# --------------------------------------------------------------------------- bulk seeding


def cohort_template(now: datetime = START, spec: str = SCHEDULE_SPEC) -> dict[str, Any]:
    """Column values of a cohort as `cohort create` + `cohort schedule <spec>` leave it (the
    same domain calls those handlers make), minus name/slug/channel."""
    from bot.domain.cohort_settings import DEFAULT_REMINDERS_MIN, DEFAULT_ROLES, CohortSettings
    from bot.domain.model import ACTIVE
    from bot.domain.schedule import parse_schedule_spec

    sched = parse_schedule_spec(spec, default_zone="UTC")
    return {
        "zone": sched.zone,
        "created_at": now,
        "tenant": PLATFORM,
        "platform": PLATFORM,
        "schedule": sched.to_json(),
        "roles": list(DEFAULT_ROLES),
        "reminder_offsets": list(DEFAULT_REMINDERS_MIN),
        "settings": CohortSettings().to_json(),
        "status": ACTIVE,
        "archived_at": None,
        "question_seq": 0,
    }


def channel_of(i: int) -> str:
    return f"bench-{i:05d}"


def member_id(cohort: int, k: int) -> str:
    return f"u{cohort:05d}-{k}"


def seed_cohorts(url: str, cohorts: int, members: int, *, now: datetime = START,
                 chunk: int = 2000) -> float:
    """Bulk-insert `cohorts` scheduled, channel-linked cohorts of `members` members each into the
    (migrated) database at `url`, through the mapped tables with a synchronous driver.
    Returns the seconds it took."""
    from sqlalchemy import create_engine, select

    from bot.db import tables as t
    from bot.db.engine import sync_url

    started = time.perf_counter()
    template = cohort_template(now)
    engine = create_engine(sync_url(url))
    try:
        for lo in range(0, cohorts, chunk):
            hi = min(cohorts, lo + chunk)
            with engine.begin() as conn:
                conn.execute(t.cohorts.insert(), [
                    {**template, "name": f"Bench {i:05d}", "slug": f"bench-{i:05d}",
                     "channel_id": channel_of(i)}
                    for i in range(lo, hi)
                ])
                ids = dict(conn.execute(
                    select(t.cohorts.c.slug, t.cohorts.c.id)
                    .where(t.cohorts.c.slug.in_([f"bench-{i:05d}" for i in range(lo, hi)]))
                ).all())
                conn.execute(t.members.insert(), [
                    {"cohort_id": ids[f"bench-{i:05d}"], "platform": PLATFORM,
                     "user_id": member_id(i, k), "joined_at": now + timedelta(microseconds=k),
                     "is_member": True, "is_facilitator": False, "share_checkins": False}
                    for i in range(lo, hi) for k in range(members)
                ])
        if engine.dialect.name == "postgresql":
            # Statistics for the tables seeded, as autovacuum would soon have them. Empty tables
            # are left never-analysed: statistics taken while they are empty would claim 0 rows
            # for good where autovacuum is off (as on the benchmark server) and push the planner
            # to sequential scans as they fill.
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE cohorts, members")
    finally:
        engine.dispose()
    return time.perf_counter() - started


def count_rows(url: str, *tables: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    from bot.db.engine import sync_url

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return {name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
                    for name in tables}
    finally:
        engine.dispose()


def count_by(url: str, table: str, column: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    from bot.db.engine import sync_url

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT {column}, count(*) FROM {table} GROUP BY {column}"))
            return {str(k): int(v) for k, v in rows}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- measuring


class SqlCounter:
    """Counts SQL statements on an app's engine; with `detail`, also times each one, grouped by
    statement text (literals are bound parameters, so one text is one query shape)."""

    def __init__(self, engine: Any, *, detail: bool = False) -> None:
        from sqlalchemy import event

        self.count = 0
        self.detail = detail
        self.by_sql: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self._sync = engine.sync_engine
        self._event = event
        self._starts: list[float] = []
        event.listen(self._sync, "before_cursor_execute", self._before)
        event.listen(self._sync, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        self.count += 1
        if self.detail:
            self._starts.append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        if self.detail and self._starts:
            spent = time.perf_counter() - self._starts.pop()
            key = " ".join(statement.split())
            entry = self.by_sql[key]
            entry[0] += 1
            entry[1] += spent

    def reset(self) -> None:
        self.count = 0
        self.by_sql.clear()

    def close(self) -> None:
        self._event.remove(self._sync, "before_cursor_execute", self._before)
        self._event.remove(self._sync, "after_cursor_execute", self._after)

    def report(self, title: str, top: int = 12, width: int = 150) -> str:
        if not self.by_sql:
            return ""
        total = sum(v[1] for v in self.by_sql.values())
        rows = sorted(self.by_sql.items(), key=lambda kv: kv[1][1], reverse=True)[:top]
        out = [f"-- SQL by total time: {title} ({self.count} statements, "
               f"{total:.2f} s inside the driver) --"]
        out.append(table(["calls", "total s", "mean ms", "statement"], [
            [int(v[0]), f"{v[1]:.3f}", f"{v[1] / v[0] * 1e3:.3f}",
             (sql[: width - 3] + "...") if len(sql) > width else sql]
            for sql, v in rows
        ]))
        return "\n".join(out)


class Profiler:
    """cProfile around the measured steps only, if asked for (`--profile FILE`): one profile per
    step label, dumped to FILE.<label>.prof, reported as a breakdown of own time by component
    plus the top functions. cProfile sees the main thread only: time SQLite spends in
    aiosqlite's worker thread shows up as the event loop idling in epoll."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.profiles: dict[str, cProfile.Profile] = {}

    @contextlib.contextmanager
    def measure(self, label: str = "main") -> Iterator[None]:
        if self.path is None:
            yield
            return
        prof = self.profiles.setdefault(label, cProfile.Profile())
        prof.enable()
        try:
            yield
        finally:
            prof.disable()

    def report(self, top: int = 20, labels: Sequence[str] | None = None) -> str:
        if self.path is None:
            return ""
        out = []
        for label, prof in self.profiles.items():
            if labels is not None and label not in labels:
                continue
            dump = f"{self.path}.{_NAME_RE.sub('_', label.lower())}.prof"
            prof.dump_stats(dump)
            stats = pstats.Stats(prof)
            out.append(f"== cProfile: {label} (stats: {dump}) ==")
            out.append(components_table(stats))
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
            out.append(f"-- top {top} functions by own time --")
            out.append(_trim_pstats(buf.getvalue()))
            out.append("-- cohortbot functions by cumulative CPU time (awaits excluded) --")
            out.append(bot_functions_table(stats, top))
            out.append("")
        return "\n".join(out)


_ASYNCIO_FILES = ("base_events.py", "events.py", "selector_events.py", "selectors.py",
                  "locks.py", "queues.py", "tasks.py", "futures.py", "unix_events.py",
                  "runners.py", "timeouts.py")


def component(func: tuple[str, int, str]) -> str:
    """Which part of the stack a profiled function belongs to."""
    path, _, name = func
    if path == "~":
        if "epoll" in name:
            return "event loop idle in epoll (waiting for the database)"
        return "builtins"
    p = path.replace("\\", "/")
    label = _first_match(p)
    if label is not None:
        return label
    if "/asyncio/" in p and p.rsplit("/", 1)[-1] in _ASYNCIO_FILES:
        return "asyncio scheduling"
    return "other (stdlib, …)"


#: Path fragments → component, first match wins (order matters: specific before general).
_COMPONENTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("sqlalchemy generated",), "SQLAlchemy other (util, events, generated)"),
    (("/sqlalchemy/sql/",), "SQLAlchemy Core: build statements, cache keys, compile"),
    (("/sqlalchemy/orm/",), "SQLAlchemy ORM: session, flush, identity map, loading"),
    (("/sqlalchemy/engine/",), "SQLAlchemy engine: execute, cursor results"),
    (("/sqlalchemy/ext/asyncio/", "/sqlalchemy/util/_concurrency", "greenlet"),
     "async bridge (greenlet, AsyncSession)"),
    (("/sqlalchemy/dialects/", "/sqlalchemy/connectors/"),
     "SQLAlchemy dialect + async DBAPI adapter"),
    (("/sqlalchemy/",), "SQLAlchemy other (util, events, generated)"),
    (("/aiosqlite/", "/psycopg"), "driver (aiosqlite / psycopg)"),
    (("/bot/domain/", "/bot/chat/"), "cohortbot domain + chat (pure code)"),
    (("/bot/",), "cohortbot service + db layer"),
    (("/dateutil/", "zoneinfo"), "dateutil / zoneinfo"),
    (("/bench/",), "benchmark harness"),
    (("/json/",), "json"),
)


def _first_match(p: str) -> str | None:
    for fragments, label in _COMPONENTS:
        if any(f in p for f in fragments):
            return label
    return None


def components_table(stats: pstats.Stats) -> str:
    """Own (tottime) seconds per component; a builtin's own time is charged to its callers'
    components in proportion (so `isinstance` called by SQLAlchemy counts as SQLAlchemy)."""
    per: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for func, (_cc, _nc, tt, _ct, callers) in raw.items():
        comp = component(func)
        if comp != "builtins" or not callers:
            per[comp] += tt
            continue
        edge_total = sum(v[2] for v in callers.values()) or 1.0
        for caller, edge in callers.items():
            per[component(caller)] += tt * edge[2] / edge_total
    total = sum(per.values()) or 1.0
    rows = [[name, secs, f"{secs / total * 100:.1f}%"]
            for name, secs in sorted(per.items(), key=lambda kv: kv[1], reverse=True)
            if secs >= 0.0005]
    rows.append(["total (profiled main thread)", total, "100%"])
    return table(["component (own time)", "s", "share"], rows)


def bot_functions_table(stats: pstats.Stats, top: int) -> str:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_cc, nc, tt, ct, _callers) in raw.items():
        if "/bot/" in path.replace("\\", "/") and "/site-packages/" not in path:
            short = path.replace("\\", "/").split("/bot/", 1)[1]
            rows.append([f"bot/{short}:{line}({name})", nc, tt, ct])
    rows.sort(key=lambda r: r[3], reverse=True)
    return table(["function", "calls/resumes", "own s", "cumulative s"], rows[:top])


def _trim_pstats(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("ncalls"):
            return "\n".join(lines[i:]).rstrip()
    return text.rstrip()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of `values`."""
    if not values:
        return float("nan")
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0  # process CPU time over the run (all threads)

    def add(self, s: float) -> None:
        self.seconds.append(s)

    @property
    def n(self) -> int:
        return len(self.seconds)

    def ms(self, q: float) -> float:
        return percentile(self.seconds, q) * 1e3

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.seconds) * 1e3 if self.seconds else float("nan")

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.n * 1e3 if self.n else float("nan")

    @property
    def rate(self) -> float:
        return self.n / self.wall if self.wall else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for j, r in enumerate(cells):
        out.append("  ".join(c.rjust(w) if _numeric(c) and j else c.ljust(w)
                             for c, w in zip(r, widths, strict=True)).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+(e[-+]?\d+)?[a-z%x]*|n/a", text))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def machine_line() -> str:
    cpus = os.cpu_count() or 0
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    import platform as _p

    return (f"machine: {cpus} CPUs{mem}, {_p.system()} {_p.release()}, "
            f"Python {_p.python_version()}, {sys.executable}\n{code_state()}\n{load_line()}")


def load_line() -> str:
    """The 1/5/15-minute load averages: on a shared 2-CPU machine anything else running shows
    up in the wall-clock figures (CPU-time columns are less affected)."""
    one, five, fifteen = os.getloadavg()
    return f"load average: {one:.2f} {five:.2f} {fifteen:.2f} (at {time.strftime('%H:%M:%S')})"


def code_state() -> str:
    """Which code was measured: HEAD plus a fingerprint of uncommitted changes to bot/."""
    import hashlib
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        diff = subprocess.run(["git", "-C", str(root), "diff", "HEAD", "--", "bot", "migrations"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "code: (not a git checkout)"
    if not diff:
        return f"code: {head} (bot/ and migrations/ as committed)"
    files = sum(1 for line in diff.splitlines() if line.startswith("diff --git"))
    digest = hashlib.sha1(diff.encode()).hexdigest()[:10]
    return f"code: {head} + uncommitted changes to {files} files in bot/ (diff sha1 {digest})"


def versions_line(kind: str, url: str) -> str:
    import sqlalchemy

    if kind == "sqlite":
        import sqlite3

        return f"sqlalchemy {sqlalchemy.__version__}, aiosqlite, SQLite {sqlite3.sqlite_version}"
    import psycopg
    from sqlalchemy import create_engine, text

    from bot.db.engine import sync_url

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            v = conn.execute(text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()
    return f"sqlalchemy {sqlalchemy.__version__}, psycopg {psycopg.__version__}, PostgreSQL {v}"


def rss_mb() -> float:
    """Current resident set size (VmRSS) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss, KiB on Linux) in MB. On Linux it
    also covers the parent's RSS at fork time (kept across exec): measure in a child started
    by a small parent, and compare with `hwm_mb()`."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hwm_mb() -> float:
    """Peak RSS of this process image since exec (VmHWM in /proc/self/status) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
