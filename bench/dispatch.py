"""Command dispatch through the core: latency and throughput of `app.bot.handle`.

Set-up (not measured), through the real command bus as an admin would type it: K cohorts, each
created in its own channel (`cohort create`), scheduled (`cohort schedule weekly tue 14:00 UTC
for 90m`) and given 8 members (`cohort members add @…`). K is the smallest number for which
every measured `action add` is valid: a member may hold at most 3 open actions, so
K = ceil(N / (8 × 3)). The first cohort is "the" cohort of 8 the `next` commands run in.

Measured, one command at a time (sequential awaits, as an adapter delivers them):
  * N × `next` in the first cohort, rotating over its 8 members;
  * N × `action add …`, rotating over every member of every cohort (3 rounds at most).
A warm-up of `next` commands runs first and is not counted. Every reply is checked: anything
but the command's success reply ("Next session of …", "Action n recorded. …") is a failure.

    python bench/dispatch.py [--db sqlite|postgres|both] [-n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import re
import sys
import time
from typing import Any

import _common as c

TARGET_P99_MS = 20.0
ACTION_RE = re.compile(r"Action \d+ recorded\.")


async def _setup(app: Any, cohorts: int, members: int) -> None:
    from bot.domain.refs import ChannelRef, UserRef
    from bot.service.api import Invocation

    admin = UserRef(c.PLATFORM, c.ADMIN_ID)
    for i in range(cohorts):
        ch = ChannelRef(c.PLATFORM, c.channel_of(i))
        mentions = " ".join("@" + c.member_id(i, k) for k in range(members))
        for text in (f"cohort create Bench {i:05d}", f"cohort schedule {c.SCHEDULE_SPEC}",
                     f"cohort members add {mentions}"):
            [reply] = await app.bot.handle(Invocation(user=admin, text=text, channel=ch))
            plain = reply.message.plain()
            if not plain.startswith(("Created", "Schedule for", "Added")):
                raise SystemExit(f"set-up command {text!r} failed: {plain}")


async def _run(app: Any, invocations: list[Any], ok: re.Pattern[str] | str,
               lat: c.Latencies, failures: list[str]) -> None:
    handle = app.bot.handle
    started, cpu0 = time.perf_counter(), time.process_time()
    for inv in invocations:
        t0 = time.perf_counter()
        replies = await handle(inv)
        lat.add(time.perf_counter() - t0)
        text = replies[0].message.plain() if len(replies) == 1 else f"{len(replies)} replies"
        good = ok.match(text) if isinstance(ok, re.Pattern) else text.startswith(ok)
        if not good:
            failures.append(text)
    lat.wall = time.perf_counter() - started
    lat.cpu = time.process_time() - cpu0


async def bench(kind: str, dbs: c.BenchDatabases, args: argparse.Namespace,
                prof: c.Profiler) -> dict[str, Any]:
    from bot.domain.refs import ChannelRef, UserRef
    from bot.service.api import Invocation

    n, members, rounds = args.count, args.members, args.repeat
    cohorts = max(1, math.ceil(n * rounds / (members * 3)))
    url = dbs.create("dispatch")
    app, _ = c.make_app(url, batch_size=args.batch_size)
    sql = c.SqlCounter(app.engine, detail=args.sql_stats)
    try:
        t0 = time.perf_counter()
        await _setup(app, cohorts, members)
        setup_s = time.perf_counter() - t0

        ch0 = ChannelRef(c.PLATFORM, c.channel_of(0))
        # With --event-ids each command carries a platform event id, as the Matrix and Slack
        # adapters pass one: the core then records it (to drop redeliveries) in the same
        # transaction, so even `next` writes.
        event = (lambda tag, i: f"{tag}-{i}") if args.event_ids else (lambda tag, i: None)
        nexts = [Invocation(user=UserRef(c.PLATFORM, c.member_id(0, i % members)), text="next",
                            channel=ch0, event_id=event("next", i)) for i in range(n)]
        slots = cohorts * members
        adds = []
        for i in range(n * rounds):
            co, k = divmod(i % slots, members)  # 3 passes over every member at most
            adds.append(Invocation(user=UserRef(c.PLATFORM, c.member_id(co, k)),
                                   text=f"action add Write the intro, part {i}",
                                   channel=ChannelRef(c.PLATFORM, c.channel_of(co)),
                                   event_id=event("add", i)))

        warm = [dataclasses.replace(inv, event_id=event("warm", i))
                for i, inv in enumerate(nexts[: args.warmup])]
        await _run(app, warm, "Next session of", c.Latencies(), [])
        results: dict[str, Any] = {"kind": kind, "setup_s": setup_s, "cohorts": cohorts,
                                   "version": c.versions_line(kind, url), "runs": []}
        for r in range(rounds):
            for name, invs, ok in (("next", nexts, "Next session of"),
                                   ("action add", adds[r * n:(r + 1) * n], ACTION_RE)):
                lat, failures = c.Latencies(), []
                sql.reset()
                with prof.measure(f"{kind} {name}"):
                    await asyncio.wait_for(_run(app, invs, ok, lat, failures),
                                           args.max_seconds)
                results["runs"].append({"command": name, "round": r, "lat": lat,
                                        "failures": failures, "sql": sql.count,
                                        "load": c.load_line()})
                if args.sql_stats and r == 0:
                    print(sql.report(f"{kind} / {name}"), end="\n\n")
        return results
    finally:
        sql.close()
        await app.close()


def _pooled(runs: list[dict[str, Any]]) -> c.Latencies:
    pooled = c.Latencies()
    for run in runs:
        pooled.seconds += run["lat"].seconds
        pooled.wall += run["lat"].wall
        pooled.cpu += run["lat"].cpu
    return pooled


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_common_args(p)
    p.add_argument("-n", "--count", type=int, default=2000,
                   help="commands per measured command kind and round (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds of (N × next, N × action add); figures pool all rounds and the "
                        "spread of p99 over rounds is shown (default: %(default)s)")
    p.add_argument("--members", type=int, default=8, help="members per cohort (default: 8)")
    p.add_argument("--event-ids", action="store_true",
                   help="give every command a unique platform event id, as the chat adapters "
                        "do (the core then records it, so every command writes)")
    p.add_argument("--warmup", type=int, default=50,
                   help="uncounted `next` commands first (default: %(default)s)")
    args = p.parse_args(argv)
    c.quiet_logs(args.verbose)
    print(c.machine_line())
    prof = c.Profiler(args.profile)
    all_results = []
    for kind in c.backends(args.db):
        with c.BenchDatabases(kind, args.pg_url) as dbs:
            res = asyncio.run(bench(kind, dbs, args, prof))
        all_results.append(res)
        print(f"{kind}: {res['version']}; set-up of {res['cohorts']} cohorts × {args.members} "
              f"members: {res['setup_s']:.1f} s (not measured)")

    rows, summary, failed_any, sqlite_ok = [], {}, False, True
    for res in all_results:
        for name in ("next", "action add"):
            runs = [r for r in res["runs"] if r["command"] == name]
            lat = _pooled(runs)
            failures = [f for r in runs for f in r["failures"]]
            failed_any |= bool(failures)
            p99s = [r["lat"].ms(99) for r in runs]
            ok = lat.ms(99) <= TARGET_P99_MS and not failures
            if res["kind"] == "sqlite":
                sqlite_ok &= ok
                target = f"{c.verdict(ok)} ({lat.ms(99) / TARGET_P99_MS:.2f}x)"
            else:
                target = f"info: {lat.ms(99) / TARGET_P99_MS:.2f}x"
            spread = f"{min(p99s):.1f}–{max(p99s):.1f}" if len(p99s) > 1 else "-"
            rows.append([res["kind"], name, lat.n, len(failures), lat.wall, lat.rate,
                         lat.mean_ms, lat.ms(50), lat.ms(90), lat.ms(99), spread,
                         max(lat.seconds) * 1e3, lat.cpu_ms,
                         sum(r["sql"] for r in runs) / max(lat.n, 1), target])
            summary[(res["kind"], name)] = lat
            if failures:
                print(f"{res['kind']} / {name}: {len(failures)} error replies, first: "
                      f"{failures[0]!r}")
    print()
    print(c.table(["db", "command", "n", "errors", "total s", "cmd/s", "mean ms", "p50 ms",
                   "p90 ms", "p99 ms", "p99 per round", "max ms", "CPU ms/cmd", "SQL/cmd",
                   f"p99 ≤ {TARGET_P99_MS:.0f} ms"], rows))
    if len(all_results) == 2:
        print()
        ratio_rows = []
        for name in ("next", "action add"):
            la, lb = summary[("sqlite", name)], summary[("postgres", name)]
            ratio_rows.append([name, f"{lb.ms(50) / la.ms(50):.2f}x",
                               f"{lb.ms(99) / la.ms(99):.2f}x", f"{lb.rate / la.rate:.2f}x",
                               f"{lb.cpu_ms / la.cpu_ms:.2f}x"])
        print(c.table(["postgres / sqlite", "p50", "p99", "cmd/s", "CPU/cmd"], ratio_rows))
    print(c.load_line())
    if args.profile:
        print()
        print(prof.report())
    return 1 if failed_any or not sqlite_ok else 0


if __name__ == "__main__":
    sys.exit(main())
