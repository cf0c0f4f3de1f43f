"""Peak memory of a bot process holding 10,000 cohorts.

Set-up (not measured, in a child process): a fresh database, migrated by Alembic and
bulk-seeded like bench/planning.py (N cohorts × 8 members, `weekly tue 14:00 UTC`), then copied
so that each measuring run starts from the same state.

Measured, each in a fresh child process of a small parent (so that neither the seeding nor the
other run can inflate the figures) that does what a starting bot does: run the migration check
(`ensure_schema`), `build()` the app with a SimulatedClock and a counting null messenger,
`plan_all()`, set the clock to the first due instant and run one `run_due()` cycle.

  * run 1 ("rss"): peak resident set size, `resource.getrusage(RUSAGE_SELF).ru_maxrss`, with
    the current RSS (/proc/self/status VmRSS) after each stage. This is the figure held
    against the target.
  * run 2 ("tracemalloc"): the same steps under `tracemalloc`, giving the peak of memory
    allocated by Python code per stage (tracemalloc's own bookkeeping inflates that run's RSS,
    so its RSS is not reported).

    python bench/memory.py [--db sqlite|postgres|both] [--cohorts 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import _common as c

TARGET_MB = 150.0


# --------------------------------------------------------------------------- child


def _child(mode: str, url: str, batch_size: int | None, max_seconds: float) -> dict[str, Any]:
    import tracemalloc

    if mode == "tracemalloc":
        tracemalloc.start()
    stages: list[dict[str, Any]] = []
    started = time.perf_counter()

    def mark(name: str, **extra: Any) -> None:
        row: dict[str, Any] = {"stage": name, "rss_mb": c.rss_mb(), "hwm_mb": c.hwm_mb(),
                               "peak_rss_mb": c.peak_rss_mb(),
                               "t": time.perf_counter() - started, **extra}
        if tracemalloc.is_tracing():
            cur, peak = tracemalloc.get_traced_memory()
            row["tm_current_mb"], row["tm_peak_mb"] = cur / 2**20, peak / 2**20
            tracemalloc.reset_peak()
        stages.append(row)

    mark("interpreter")
    import asyncio

    import bot.bootstrap  # what `cohortbot run` imports before it starts
    import bot.db.uow  # noqa: F401

    mark("imports")

    async def run() -> None:
        app, messenger = c.make_app(url, batch_size=batch_size, migrate=True)
        mark("migrations checked + app built")
        try:
            planned = await asyncio.wait_for(app.planner.plan_all(), max_seconds)
            mark("plan_all", planned=planned)
            first = await app.dispatcher.next_due()
            assert first is not None, "nothing was planned"
            app.clock.set(first)
            stats = await asyncio.wait_for(app.dispatcher.run_due(), max_seconds)
            mark("run_due (first due instant)", fired=stats.fired, sent=stats.sent,
                 received=messenger.sent)
        finally:
            await app.close()

    asyncio.run(run())
    import gc

    gc.collect()
    mark("after close + gc")
    return {"mode": mode, "stages": stages}


def _prepare(kind: str, pg_url: str, workdir: str, tag: str, cohorts: int, members: int,
             tracemalloc_copy: bool) -> dict[str, Any]:
    from bot.bootstrap import ensure_schema

    dbs = c.BenchDatabases(kind, pg_url, tmpdir=workdir, tag=tag)
    try:
        url = dbs.create("memory")
        ensure_schema(url)
        seed_s = c.seed_cohorts(url, cohorts, members)
        url_tm = dbs.clone(url, "memory_tm") if tracemalloc_copy else None
        out = {"url": url, "url_tm": url_tm, "seed_s": seed_s,
               "version": c.versions_line(kind, url)}
    except BaseException:
        dbs.drop_all()
        raise
    dbs.detach()  # the parent drops them
    return out


# --------------------------------------------------------------------------- parent
#
# The parent imports neither SQLAlchemy nor the bot: on Linux a child's ru_maxrss starts at its
# parent's RSS at fork time, so a big parent would inflate the child's figure.


def _spawn(args: argparse.Namespace, *child_args: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--db", args.db_kind, "--pg-url", args.pg_url,
           "--max-seconds", str(args.max_seconds), *child_args]
    if args.batch_size is not None:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.verbose:
        cmd.append("--verbose")
    done = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=2 * args.max_seconds + 300)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"child {' '.join(child_args)} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_common_args(p)
    p.add_argument("--cohorts", type=int, default=10_000, help="cohorts (default: %(default)s)")
    p.add_argument("--members", type=int, default=8, help="members per cohort (default: 8)")
    p.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc run")
    p.add_argument("--child", choices=("prepare", "rss", "tracemalloc", "cleanup"),
                   help=argparse.SUPPRESS)
    p.add_argument("--url", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--tag", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    c.quiet_logs(args.verbose)

    if args.child == "prepare":
        print(json.dumps(_prepare(args.db, args.pg_url, args.workdir, args.tag, args.cohorts,
                                  args.members, not args.no_tracemalloc)))
        return 0
    if args.child == "cleanup":
        for url in args.url:
            c.drop_pg_database(args.pg_url, url)
        print("{}")
        return 0
    if args.child:
        print(json.dumps(_child(args.child, args.url[0], args.batch_size, args.max_seconds)))
        return 0

    print(c.machine_line())
    print(f"parent process RSS when spawning the measured children: {c.rss_mb():.1f} MB")
    ok_all = True
    summary = []
    for kind in c.backends(args.db):
        args.db_kind = kind
        workdir = tempfile.mkdtemp(prefix="cohortbot-bench-")
        urls: list[str] = []
        try:
            prep = _spawn(args, "--child", "prepare", "--workdir", workdir,
                          "--tag", str(os.getpid()), "--cohorts", str(args.cohorts),
                          "--members", str(args.members),
                          *(["--no-tracemalloc"] if args.no_tracemalloc else []))
            urls = [u for u in (prep["url"], prep["url_tm"]) if u]
            print(f"{kind}: {prep['version']}")
            print(f"{kind}: seeded {args.cohorts:,} cohorts × {args.members} members in "
                  f"{prep['seed_s']:.1f} s (not measured)", flush=True)
            rss = _spawn(args, "--child", "rss", "--url", prep["url"])
            tm = _spawn(args, "--child", "tracemalloc", "--url", prep["url_tm"]) \
                if prep["url_tm"] else None
        finally:
            if kind == "postgres" and urls:
                _spawn(args, "--child", "cleanup", *[x for u in urls for x in ("--url", u)])
            shutil.rmtree(workdir, ignore_errors=True)

        print()
        rows = []
        tm_stages = {s["stage"]: s for s in (tm["stages"] if tm else [])}
        for s in rss["stages"]:
            t = tm_stages.get(s["stage"], {})
            extra = ", ".join(f"{k} {v:,}" for k, v in s.items()
                              if k in ("planned", "fired", "sent", "received"))
            rows.append([kind, s["stage"], s["t"], s["rss_mb"], s["hwm_mb"], s["peak_rss_mb"],
                         t.get("tm_current_mb", float("nan")), t.get("tm_peak_mb", float("nan")),
                         extra])
        print(c.table(["db", "stage (cumulative)", "at s", "RSS MB", "VmHWM MB",
                       "ru_maxrss MB", "tracemalloc now MB", "tracemalloc stage peak MB",
                       "work"], rows))
        peak = max(s["peak_rss_mb"] for s in rss["stages"])
        base = next(s["rss_mb"] for s in rss["stages"] if s["stage"] == "imports")
        tm_peak = max((s["tm_peak_mb"] for s in tm["stages"]), default=float("nan")) \
            if tm else float("nan")
        ok = peak <= TARGET_MB
        ok_all &= ok
        summary.append([kind, args.cohorts, peak, base, peak - base, tm_peak,
                        f"≤ {TARGET_MB:.0f}", f"{peak / TARGET_MB:.2f}x", c.verdict(ok)])
        print()

    print(c.table(["db", "cohorts", "peak RSS (ru_maxrss) MB", "RSS after imports MB",
                   "growth MB", "tracemalloc peak MB", "target MB", "peak/target", "verdict"],
                  summary))
    print(c.load_line())
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
