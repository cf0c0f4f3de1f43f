"""Slack adapter: acknowledgement latency, and delivery against Slack's per-channel limit.

Both parts run against the stateful fake Slack of the test suite (tests/support/slack), which
serves from a thread of this process on loopback, answers each Web API call after 20–60 ms
and limits chat.postMessage per channel to 1 message/s with bursts of 3, as Slack does.

1. Ack latency. The real `cohortbot run` (HTTP mode, SQLite, one cohort of 50 members set up
   through /cohort) and, next to it, a bare Bolt app whose /cohort listener only calls ack()
   (same Bolt settings, same aiohttp serving, same fake) each run in their own process, at the
   same time. They get rounds of 50 concurrent, signed `/cohort next` requests from 50
   different members, the rounds alternating between the servers, half a second apart, over
   kept-alive connections; the latency is from sending a request to its HTTP answer.
   cohortbot also has to do the work after the ack (the core, users.info, the response_url
   post): the bench waits for all 50 replies before the next round, and counts them.
   Target: p50 and p99 ≤ 1.3 × the bare app's.

2. Delivery. 1,000 reminders across 100 channels (10 each) through the adapter's messenger,
   sent concurrently (as a dispatcher that sends a batch at once would). The fake's limit
   allows 3 at once and then 1/s per channel, so the floor is (10 − 3) s = 7 s. Reported: the
   time until all 1,000 are posted, how many 429s were met, and the ratio to the floor
   (target ≤ 1.1). `--through-core N` also times N reminders through the core's dispatcher.

    python bench/slack_ack.py [--rounds 10] [--concurrency 50] [--reminders 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import _common as c

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.slack import WORKSPACE as W  # noqa: E402
from tests.support.slack import FakeSlack, post_signed, seed_workspace  # noqa: E402

TARGET_ACK_RATIO = 1.3
SAME = "bare Bolt app (same settings)"
DEFAULTS = "bare Bolt app (Bolt defaults)"
TARGET_FLOOR_RATIO = 1.1
COHORTBOT = str(Path(sys.executable).with_name("cohortbot"))

BARE_APP = textwrap.dedent("""
    import asyncio, os, signal
    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    async def main():
        app = AsyncApp(client=AsyncWebClient(token=os.environ["TOKEN"],
                                             base_url=os.environ["API_URL"]),
                       signing_secret=os.environ["SECRET"],
                       process_before_response=os.environ["PBR"] == "1")

        @app.command("/cohort")
        async def empty(ack):
            await ack()

        async def events(request):
            return await to_aiohttp_response(await app.async_dispatch(
                await to_bolt_request(request)))

        async def health(request):
            return web.json_response({"ok": True})

        web_app = web.Application()
        web_app.add_routes([web.post("/slack/events", events), web.get("/healthz", health)])
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"])).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("COHORTBOT_") and "proxy" not in k.lower()}


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], port: int, cwd: str) -> None:
        self.port = port
        self.log = Path(cwd) / f"server-{port}.log"
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("w"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def ready(self) -> None:
        import aiohttp

        for _ in range(600):
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited:\n{self.log.read_text()}")
            try:
                async with aiohttp.ClientSession() as s, s.get(
                        f"http://127.0.0.1:{self.port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise SystemExit("server never became ready")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _post(session: Any, url: str, request: Any) -> float:
    started = time.perf_counter()
    async with session.post(url, data=request.body, headers=request.headers) as resp:
        await resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != 200:
            raise SystemExit(f"request failed: {resp.status}")
    return elapsed


async def _round(fake: FakeSlack, url: str, users: list[str], lat: c.Latencies,
                 wait_replies: bool, session: Any) -> int:
    build = fake.requests()
    before = len(fake.response_url_posts())
    requests = [build.slash_command("/cohort", "next", user_id=u, channel_id=W.channel)
                for u in users]
    for elapsed in await asyncio.gather(*(_post(session, url, r) for r in requests)):
        lat.add(elapsed)
    if not wait_replies:
        return 0
    await fake.wait_for(lambda: len(fake.response_url_posts()) - before >= len(users),
                        timeout=60, what="every reply")
    return len(fake.response_url_posts()) - before


async def bench_ack(fake: FakeSlack, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    """All three servers run at once; the rounds alternate between them, so that whatever
    else the machine does falls on each alike."""
    import aiohttp

    users = [fake.add_user(None, f"member{i:02d}", tz="Europe/Berlin")
             for i in range(args.concurrency)]
    for u in users:
        fake.join(W.channel, u)
    servers: dict[str, Server] = {}
    port = free_port()
    env = clean_env()
    env.update({
        "COHORTBOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
        "COHORTBOT_BOT__ADMINS": json.dumps([f"slack:{W.admin}"]),
        "COHORTBOT_BOT__LOG_LEVEL": "WARNING", "COHORTBOT_BOT__COMMANDS_PER_MINUTE": "1000000",
        "COHORTBOT_BOT__MESSAGES_TO_OTHERS_PER_HOUR": "1000",
        "COHORTBOT_SLACK__ENABLED": "true", "COHORTBOT_SLACK__MODE": "http",
        "COHORTBOT_SLACK__BOT_TOKEN": W.bot_token,
        "COHORTBOT_SLACK__SIGNING_SECRET": W.signing_secret,
        "COHORTBOT_SLACK__API_BASE_URL": fake.api_url,
        "COHORTBOT_SLACK__HTTP_PORT": str(port),
    })
    Path(tmp, "cohortbot.toml").write_text("")
    servers["cohortbot"] = Server([COHORTBOT, "run"], env, port, tmp)
    for label, pbr in ((SAME, "1"), (DEFAULTS, "0")):
        port = free_port()
        env = clean_env()
        env.update({"TOKEN": W.bot_token, "API_URL": fake.api_url,
                    "SECRET": W.signing_secret, "PORT": str(port), "PBR": pbr})
        servers[label] = Server([sys.executable, "-c", BARE_APP], env, port, tmp)
    try:
        for server in servers.values():
            await server.ready()
        bot = servers["cohortbot"]
        build = fake.requests()
        mentions = " ".join(f"<@{u}>" for u in users)
        for text in ("cohort create Bench", "cohort schedule weekly tue 14:00 UTC for 90m",
                     f"cohort members add {mentions}"):
            await post_signed(bot.url, build.slash_command("/cohort", text, user_id=W.admin,
                                                           channel_id=W.channel))
        await fake.wait_for(lambda: len(fake.response_url_posts()) >= 2, timeout=30,
                            what="set-up replies")
        out: dict[str, Any] = {label: {"lat": c.Latencies(), "replies": 0}
                               for label in servers}
        connector = aiohttp.TCPConnector(limit=len(users) * len(servers))
        async with aiohttp.ClientSession(connector=connector) as session:
            for r in range(args.warmup + args.rounds):
                for label, server in servers.items():
                    # A fresh burst: the previous one's work is done.
                    await asyncio.sleep(args.gap)
                    lat = out[label]["lat"] if r >= args.warmup else c.Latencies()
                    got = await _round(fake, server.url, users, lat, label == "cohortbot",
                                       session)
                    if r >= args.warmup:
                        out[label]["replies"] += got
        return out
    finally:
        for server in servers.values():
            server.stop()


async def bench_delivery(fake: FakeSlack, args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp
    from slack_sdk.web.async_client import AsyncWebClient

    from adapters.slack.messenger import SlackMessenger
    from adapters.slack.platform import retry_handlers
    from bot.chat.message import Message, Strong
    from bot.service.ports import Outgoing

    per = args.reminders // args.channels
    channels = [fake.add_channel(f"bench-{i:03d}", members=[W.bot_user])
                for i in range(args.channels)]
    fake.clear_calls()
    out = [Outgoing(outbox_id=1_000_000 + k * args.channels + i, key=f"reminder:{i}:{k}",
                    target=ch, direct=False,
                    message=Message.of(Strong("Reminder: Bench meets in 1 h"), f" — #{k}"))
           for k in range(per) for i, ch in enumerate(channels)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        client = AsyncWebClient(token=W.bot_token, base_url=fake.api_url, session=session,
                                retry_handlers=retry_handlers())
        messenger = SlackMessenger()
        messenger.bind(client, frozenset)
        started = time.perf_counter()
        cpu0 = time.process_time()
        await asyncio.gather(*(messenger.send(o) for o in out))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    calls = fake.calls_to("chat.postMessage")
    posted = sum(len(fake.posts(ch)) for ch in channels)
    floor = max(0, per - fake._post_burst) / float(fake._post_rate or 1.0)
    return {"n": len(out), "per": per, "wall": wall, "cpu": cpu, "posted": posted,
            "calls": len(calls), "429": sum(1 for x in calls if x.status == 429),
            "floor": floor}


async def bench_core(fake: FakeSlack, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    """N prompts (one message each) across the channels, sent by the core's dispatcher."""
    from adapters.slack.platform import SlackPlatform
    from bot.bootstrap import build, ensure_schema
    from bot.config import load_settings
    from bot.domain.refs import ChannelRef, UserRef
    from bot.scheduling.clock import SimulatedClock
    from bot.service.api import Invocation

    n, k = args.through_core, min(args.channels, args.through_core)
    url = f"sqlite+aiosqlite:///{tmp}/core.db"
    ensure_schema(url)
    Path(tmp, "empty.toml").write_text("")
    settings = load_settings(Path(tmp, "empty.toml"), environ={
        "COHORTBOT_DATABASE__URL": url, "COHORTBOT_BOT__ADMINS": f'["slack:{W.admin}"]',
        "COHORTBOT_BOT__COMMANDS_PER_MINUTE": "1000000",
        "COHORTBOT_SLACK__ENABLED": "true", "COHORTBOT_SLACK__MODE": "http",
        "COHORTBOT_SLACK__BOT_TOKEN": W.bot_token, "COHORTBOT_SLACK__SIGNING_SECRET": "x",
        "COHORTBOT_SLACK__API_BASE_URL": fake.api_url,
        "COHORTBOT_SLACK__HTTP_PORT": str(free_port())})
    platform = SlackPlatform(settings.slack)
    app = build(settings, clock=SimulatedClock(c.START), messengers={"slack": platform.messenger},
                directories={"slack": platform.directory})
    await platform.start(app.bot)
    try:
        admin = UserRef("slack", W.admin)
        channels = [fake.add_channel(f"core-{i:03d}", members=[W.bot_user, W.admin])
                    for i in range(k)]
        for i, ch in enumerate(channels):
            await app.bot.handle(Invocation(user=admin, text=f"cohort create Core {i}",
                                            channel=ChannelRef("slack", ch)))
        await app.dispatcher.run_due()
        for j in range(n):  # round-robin over the channels, one prompt each time
            ch = channels[j % k]
            await app.bot.handle(Invocation(user=admin, text=f"prompt Reminder {j}",
                                            channel=ChannelRef("slack", ch)))
        fake.clear_calls()
        started = time.perf_counter()
        sent = 0
        while sent < n:
            stats = await app.dispatcher.run_due()
            sent += stats.sent
            if not (stats.sent or stats.retried):
                break
        wall = time.perf_counter() - started
    finally:
        await platform.stop()
        await app.close()
    per = -(-n // k)
    floor = max(0, per - fake._post_burst) / float(fake._post_rate or 1.0)
    return {"n": n, "channels": k, "sent": sent, "wall": wall, "floor": floor,
            "429": sum(1 for x in fake.calls_to("chat.postMessage") if x.status == 429)}


async def main_async(args: argparse.Namespace) -> int:
    fake = FakeSlack(team_id=W.team_id, app_id=W.app_id, signing_secret=W.signing_secret,
                     latency=(0.02, 0.06)).start_in_thread()
    seed_workspace(fake)
    ok = True
    try:
        with tempfile.TemporaryDirectory(prefix="cohortbot-bench-slack-") as tmp:
            if not args.skip_ack:
                res = await bench_ack(fake, args, tmp)
                bot = res["cohortbot"]["lat"]
                rows = []
                for label, r in res.items():
                    lat = r["lat"]
                    rows.append([label, lat.n, lat.ms(50), lat.ms(90), lat.ms(99),
                                 max(lat.seconds) * 1e3,
                                 f"{bot.ms(50) / lat.ms(50):.2f}x",
                                 f"{bot.ms(99) / lat.ms(99):.2f}x",
                                 r["replies"] if label == "cohortbot" else "-"])
                print(f"\n1. ack latency of /cohort next, {args.concurrency} concurrent signed "
                      f"requests × {args.rounds} rounds (after {args.warmup} warm-up rounds)")
                print(c.table(["server", "n", "p50 ms", "p90 ms", "p99 ms", "max ms",
                               "cohortbot/this p50", "cohortbot/this p99", "replies"], rows))
                same = res[SAME]["lat"]
                r50, r99 = bot.ms(50) / same.ms(50), bot.ms(99) / same.ms(99)
                good = max(r50, r99) <= TARGET_ACK_RATIO and \
                    res["cohortbot"]["replies"] == args.rounds * args.concurrency
                ok &= good
                print(f"target: cohortbot ≤ {TARGET_ACK_RATIO}x the bare app (same settings), "
                      f"p50 {r50:.2f}x, p99 {r99:.2f}x, every reply delivered: "
                      f"{c.verdict(good)}")
            if not args.skip_delivery:
                d = await bench_delivery(fake, args)
                ratio = d["wall"] / d["floor"] if d["floor"] else float("nan")
                good = d["posted"] == d["n"] and ratio <= TARGET_FLOOR_RATIO
                ok &= good
                print(f"\n2. delivery of {d['n']:,} reminders across {args.channels} channels "
                      f"({d['per']} each) through the messenger, sent concurrently")
                print(c.table(["posted", "API calls", "429s", "total s", "floor s",
                               "ratio to floor", "CPU s", f"≤ {TARGET_FLOOR_RATIO}x"],
                              [[d["posted"], d["calls"], d["429"], d["wall"], d["floor"],
                                f"{ratio:.3f}x", d["cpu"], c.verdict(good)]]))
            if args.through_core:
                core = await bench_core(fake, args, tmp)
                print(f"\n   for information: {core['n']:,} messages across {core['channels']} "
                      "channels through the core's dispatcher (8 places side by side, one "
                      "claimed batch at a time)")
                print(c.table(["sent", "429s", "total s", "floor s", "ratio to floor"],
                              [[core["sent"], core["429"], core["wall"], core["floor"],
                                f"{core['wall'] / core['floor']:.2f}x" if core["floor"]
                                else "n/a"]]))
    finally:
        fake.stop_thread()
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--gap", type=float, default=0.5,
                   help="seconds between rounds, for every server alike (default: 0.5)")
    p.add_argument("--reminders", type=int, default=1000)
    p.add_argument("--channels", type=int, default=100)
    p.add_argument("--through-core", type=int, default=0, metavar="N",
                   help="also send N messages through the core's dispatcher (default: skip)")
    p.add_argument("--skip-ack", action="store_true")
    p.add_argument("--skip-delivery", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    c.quiet_logs(args.verbose)
    print(c.machine_line())
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
