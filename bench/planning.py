"""Scheduling at scale: `Planner.plan_all()` and the first `Dispatcher.run_due()` for 1,000 and
10,000 cohorts.

Set-up (not measured): a fresh database per size, migrated by Alembic, then bulk-inserted
through the mapped tables of `bot.db.tables`: N active cohorts of 8 members each, every one
linked to its own channel with the schedule `weekly tue 14:00 UTC for 90m` and the default
roles, reminders (24 h, 1 h) and settings — the row `cohort create` + `cohort schedule` leave.
No session or notification rows exist yet.

Measured, with a SimulatedClock at Sat 2026-03-07 13:00 UTC and the default 14-day horizon:
  1. `plan_all()`: materialise every session of the horizon and upsert all its notifications
     (2 sessions and 13 notifications per cohort here);
  2. the first due instant (Sat 14:00 UTC: every cohort's role announcement falls due in the
     same minute): the clock is set to it and `run_due()` fires everything due and sends the
     resulting messages through a counting null messenger;
  3. optionally (`--replan`) a second `plan_all()` at the same instant, which finds nothing new:
     the steady-state cost of the planner's periodic pass.

    python bench/planning.py [--db sqlite|postgres|both] [--sizes 1000,10000] [--plan-only]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import _common as c

TARGET_PLAN_S = 1.0  # for 10,000 cohorts
TARGET_RATIO = 12.0  # plan_all(10k) / plan_all(1k)


async def measure(kind: str, url: str, size: int, args: argparse.Namespace,
                  prof: c.Profiler) -> dict[str, Any]:
    app, messenger = c.make_app(url, batch_size=args.batch_size, migrate=False)
    sql = c.SqlCounter(app.engine, detail=args.sql_stats)
    out: dict[str, Any] = {"size": size}
    try:
        with prof.measure(f"{kind} plan_all {size}"):
            t0, cpu0 = time.perf_counter(), time.process_time()
            planned = await asyncio.wait_for(app.planner.plan_all(), args.max_seconds)
            out["plan_s"] = time.perf_counter() - t0
            out["plan_cpu"] = time.process_time() - cpu0
        out["planned"], out["plan_sql"] = planned, sql.count
        if args.sql_stats:
            print(sql.report(f"{size} cohorts / plan_all"), end="\n\n")
        sql.reset()

        first = await app.dispatcher.next_due()
        assert first is not None, "nothing was planned"
        out["first_due"] = first
        if args.plan_only:
            return out
        app.clock.set(first)
        with prof.measure(f"{kind} run_due {size}"):
            t0, cpu0 = time.perf_counter(), time.process_time()
            stats = await asyncio.wait_for(app.dispatcher.run_due(), args.max_seconds)
            out["run_s"] = time.perf_counter() - t0
            out["run_cpu"] = time.process_time() - cpu0
        out["stats"], out["received"], out["run_sql"] = stats, messenger.sent, sql.count
        if args.sql_stats:
            print(sql.report(f"{size} cohorts / run_due at {first:%a %H:%M}"), end="\n\n")
        sql.reset()

        if args.replan:
            with prof.measure(f"{kind} re-plan {size}"):
                t0 = time.perf_counter()
                again = await asyncio.wait_for(app.planner.plan_all(), args.max_seconds)
                out["replan_s"] = time.perf_counter() - t0
            out["replanned"], out["replan_sql"] = again, sql.count
            if args.sql_stats:
                print(sql.report(f"{size} cohorts / second plan_all"), end="\n\n")
        return out
    finally:
        sql.close()
        await app.close()


def domain_floor(size: int) -> float:
    """Seconds the pure domain code takes to compute every session and notification plan_all
    writes for `size` identical cohorts (no database at all)."""
    from datetime import timedelta

    from bot.domain.cohort_settings import CohortSettings
    from bot.domain.planning import session_notices
    from bot.domain.schedule import Schedule, occurrences

    tpl = c.cohort_template()
    horizon = timedelta(days=14)
    t0 = time.perf_counter()
    count = 0
    for i in range(size):
        sched = Schedule.from_json(tpl["schedule"])
        settings = CohortSettings.from_json(tpl["settings"])
        for k, slot in enumerate(occurrences(sched, after=c.START, before=c.START + horizon)):
            for notice in session_notices(session_id=i * 10 + k, rev=0, starts_at=slot,
                                          duration=sched.duration, settings=settings,
                                          reminder_offsets_min=tpl["reminder_offsets"]):
                count += c.START <= notice.due_at < c.START + horizon
    return time.perf_counter() - t0


async def write_floor(src_url: str, dst_url: str) -> tuple[float, int, int]:
    """Seconds to write the sessions and notifications plan_all produced in `src_url` into the
    fresh, seeded database `dst_url` with one executemany each (the notification statement is
    add_notification's upsert, built once), in one transaction, through the bot's engine."""
    from sqlalchemy import create_engine, or_, select

    from bot.db import tables as t
    from bot.db.engine import create_engine as create_async
    from bot.db.engine import sync_url
    from bot.domain.model import PENDING, VOID

    src = create_engine(sync_url(src_url))
    with src.connect() as conn:
        sessions = [dict(r._mapping) for r in conn.execute(select(t.sessions))]
        notes = [dict(r._mapping) for r in conn.execute(select(t.notifications))]
    src.dispose()
    for n in notes:
        del n["id"]
        n.update(status=PENDING, fired_at=None, late=False)
    for s in sessions:
        s.update(announced=False, roster=None)

    engine = create_async(dst_url)
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(t.notifications)
    col = t.notifications.c
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"due_at": stmt.excluded.due_at, "stale_at": stmt.excluded.stale_at,
              "payload": stmt.excluded.payload, "status": PENDING},
        # add_notification's `status IN (pending, void)`, spelled without an expanding IN
        # (which executemany cannot take).
        where=or_(col.status == PENDING, col.status == VOID))
    try:
        async with engine.connect() as conn:  # connect (and run the pragmas) outside the timing
            await conn.rollback()
        t0 = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(t.sessions.insert(), sessions)
            await conn.execute(stmt, notes)
        return time.perf_counter() - t0, len(sessions), len(notes)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_common_args(p)
    p.add_argument("--sizes", default="1000,10000",
                   help="comma-separated cohort counts, smallest first (default: %(default)s)")
    p.add_argument("--members", type=int, default=8, help="members per cohort (default: 8)")
    p.add_argument("--replan", action="store_true",
                   help="also time a second plan_all() that has nothing new to plan")
    p.add_argument("--floor", action="store_true",
                   help="also time two lower bounds for plan_all: the pure domain computation "
                        "of the same sessions/notifications, and writing plan_all's rows back "
                        "with one executemany per table into a fresh database")
    p.add_argument("--plan-only", action="store_true",
                   help="time plan_all only (no run_due, no re-plan): a quick check of the "
                        "planning target")
    args = p.parse_args(argv)
    if args.plan_only:
        args.replan = False
    c.quiet_logs(args.verbose)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(c.machine_line())
    prof = c.Profiler(args.profile)

    results: dict[str, list[dict[str, Any]]] = {}
    for kind in c.backends(args.db):
        results[kind] = []
        with c.BenchDatabases(kind, args.pg_url) as dbs:
            for size in sizes:
                url = dbs.create(f"planning_{size}")
                from bot.bootstrap import ensure_schema

                ensure_schema(url)
                seed_s = c.seed_cohorts(url, size, args.members)
                if size == sizes[0]:
                    print(f"{kind}: {c.versions_line(kind, url)}")
                print(f"{kind}: seeded {size:,} cohorts × {args.members} members in {seed_s:.1f} s"
                      " (not measured)", flush=True)
                res = asyncio.run(measure(kind, url, size, args, prof))
                res["rows"] = c.count_rows(url, "sessions", "notifications", "outbox")
                res["kinds"] = c.count_by(url, "notifications", "status")
                if args.floor:
                    res["floor_domain_s"] = domain_floor(size)
                    dst = dbs.create(f"floor_{size}")
                    ensure_schema(dst)
                    c.seed_cohorts(dst, size, args.members)
                    res["floor_write_s"], *_ = asyncio.run(write_floor(url, dst))
                results[kind].append(res)
                print(f"{kind}: {size:,} cohorts: plan_all {res['plan_s']:.2f} s"
                      + ("" if args.plan_only else f", run_due {res['run_s']:.2f} s"),
                      flush=True)

    print()
    rows = []
    for kind, rs in results.items():
        for r in rs:
            planned = [kind, r["size"], r["rows"]["sessions"], r["planned"], r["plan_s"],
                       r["plan_cpu"], r["plan_s"] / r["size"] * 1e3, r["plan_sql"] / r["size"],
                       f"{r['first_due']:%a %H:%M}"]
            if args.plan_only:
                rows.append(planned + ["-"] * 7)
                continue
            st = r["stats"]
            rows.append(planned + [r["run_s"], r["run_cpu"], st.fired, st.dropped, st.sent,
                                   r["received"], r["run_sql"] / r["size"]]
                        + ([r["replan_s"], r["replanned"]] if args.replan else []))
    print(c.table(["db", "cohorts", "sessions", "planned", "plan_all s", "CPU s", "ms/cohort",
                   "SQL/cohort", "first due", "run_due s", "CPU s", "fired", "dropped", "sent",
                   "received", "SQL/cohort"]
                  + (["re-plan s", "re-planned"] if args.replan else []), rows))

    print()
    checks, ok_all = [], True
    for kind, rs in results.items():
        big = next((r for r in rs if r["size"] == 10_000), None)
        if big is not None:
            ok = big["plan_s"] <= TARGET_PLAN_S
            ok_all &= ok
            checks.append([kind, "plan_all, 10,000 cohorts", f"{big['plan_s']:.2f} s",
                           f"≤ {TARGET_PLAN_S:.0f} s", f"{big['plan_s'] / TARGET_PLAN_S:.1f}x",
                           c.verdict(ok)])
        if len(rs) >= 2:
            lo, hi = rs[0], rs[-1]
            for step in ("plan",) if args.plan_only else ("plan", "run"):
                ratio = hi[f"{step}_s"] / lo[f"{step}_s"]
                label = f"{'plan_all' if step == 'plan' else 'run_due'} growth " \
                        f"{hi['size']:,}/{lo['size']:,} cohorts"
                if step == "plan" and (lo["size"], hi["size"]) == (1000, 10_000):
                    ok = ratio <= TARGET_RATIO
                    ok_all &= ok
                    checks.append([kind, label, f"{ratio:.2f}", f"≤ {TARGET_RATIO:.0f}",
                                   f"{ratio / TARGET_RATIO:.2f}x", c.verdict(ok)])
                else:
                    checks.append([kind, label, f"{ratio:.2f}", "-", "-", "info"])
    print(c.table(["db", "check", "measured", "target", "measured/target", "verdict"], checks))
    if args.floor:
        print()
        print(c.table(
            ["db", "cohorts", "plan_all s", "domain compute only s", "bulk write only s",
             "plan_all / (compute + write)"],
            [[kind, r["size"], r["plan_s"], r["floor_domain_s"], r["floor_write_s"],
              f"{r['plan_s'] / (r['floor_domain_s'] + r['floor_write_s']):.0f}x"]
             for kind, rs in results.items() for r in rs]))
    for kind, rs in results.items():
        for r in rs:
            print(f"{kind} {r['size']:,}: notifications by status after the run: {r['kinds']}; "
                  f"outbox rows {r['rows']['outbox']:,}")
    print(c.load_line())
    if args.profile:
        print()
        biggest = max(sizes)
        print(prof.report(labels=[lab for lab in prof.profiles if lab.endswith(f" {biggest}")]))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
