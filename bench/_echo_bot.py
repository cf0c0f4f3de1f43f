"""A bare matrix-nio bot: the floor that bench/matrix.py compares cohortbot with.

It talks to the homeserver exactly as cohortbot's Matrix adapter does
(adapters/matrix/platform.py) and does nothing else:

- the same client settings: `AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True,
  max_limit_exceeded=0, max_timeouts=0)`, a crypto store directory, request timeout 50 s;
- the same sync loop: a first sync with `timeout=0, full_state=True`, then long polls of 30 s,
  and after each sync the same key upload/query/claim and to-device steps;
- invites from the admins given on the command line are accepted;
- `<prefix> <text>` in a room (not its own, not from before it started) is answered in a task of
  its own, as cohortbot answers a command: an `m.notice` replying to the command
  (`m.in_reply_to`), with an HTML body and empty `m.mentions`.

Burst mode (the floor for reminders): on SIGUSR1 it reads the JSON plan at `--plan`,
`{"at": <unix time>, "lanes": 1, "sends": [{"room_id": …, "content": {…}}, …]}`, sleeps until
`at` and then sends the events one after the other as fast as it can (each awaited before the
next, a fresh transaction id each). With `"lanes": n > 1`, rooms are sent to side by side, up
to n at a time (in order within a room). The send times go to `<plan>.done` as JSON.

With `--probe FILE` it leaves the same time stamps as bench/matrix_probe.py does for cohortbot
(`sync`: a sync response handed to the client; `cb`: the message callback; `send`: start and end
of the reply), as JSON lines with `time.monotonic()` stamps.

The login comes from the environment: ECHO_USER_ID, ECHO_DEVICE_ID, ECHO_ACCESS_TOKEN.

    python bench/_echo_bot.py --homeserver http://127.0.0.1:8008 --store DIR [--prefix !echo]
        [--admin @admin:localhost] [--plan FILE] [--probe FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    MatrixRoom,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

SYNC_TIMEOUT_MS = 30_000  # as adapters/matrix/platform.py
HTML_FORMAT = "org.matrix.custom.html"

log = logging.getLogger("echo")


class EchoBot:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prefix = args.prefix.rstrip() + " "
        self.admins = frozenset(args.admin)
        config = AsyncClientConfig(
            max_limit_exceeded=0, max_timeouts=0, request_timeout=SYNC_TIMEOUT_MS / 1000 + 20,
            encryption_enabled=True, store_sync_tokens=True,
        )
        Path(args.store).mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(args.homeserver, os.environ["ECHO_USER_ID"],
                                  device_id=os.environ["ECHO_DEVICE_ID"],
                                  store_path=args.store, config=config)
        self.client.restore_login(os.environ["ECHO_USER_ID"], os.environ["ECHO_DEVICE_ID"],
                                  os.environ["ECHO_ACCESS_TOKEN"])
        self.client.add_event_callback(self._on_message, RoomMessageText)
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)
        self.started_ms = int(time.time() * 1000)
        self.tasks: set[asyncio.Task[None]] = set()
        self.answered = 0
        self.probe = open(args.probe, "a", buffering=1) if args.probe else None  # noqa: SIM115
        self.last_sync: float | None = None
        if self.probe is not None:
            receive = self.client.receive_response

            async def receive_response(response: Any) -> None:
                if isinstance(response, SyncResponse):
                    self.last_sync = time.monotonic()
                await receive(response)

            self.client.receive_response = receive_response  # type: ignore[method-assign]

    def record(self, **fields: Any) -> None:
        if self.probe is not None:
            self.probe.write(json.dumps(fields) + "\n")

    # ------------------------------------------------------------------ sync loop

    async def run(self, stop: asyncio.Event) -> None:
        sync = asyncio.create_task(self._sync_loop())
        await stop.wait()
        sync.cancel()
        await asyncio.gather(sync, return_exceptions=True)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10)
        await self.client.close()
        log.info("stopped after answering %d commands", self.answered)

    async def _sync_loop(self) -> None:
        first, pause = True, 1.0
        while True:
            try:
                resp = await self.client.sync(timeout=0 if first else SYNC_TIMEOUT_MS,
                                              full_state=first)
            except (OSError, TimeoutError) as e:
                log.warning("sync failed (%s); retrying in %.0f s", type(e).__name__, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60.0)
                continue
            if not isinstance(resp, SyncResponse):
                log.warning("sync failed: %s", getattr(resp, "status_code", resp))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60.0)
                continue
            pause = 1.0
            await self._after_sync()
            if first:
                log.info("ready as %s (device %s) in %d rooms", self.client.user_id,
                         self.client.device_id, len(self.client.rooms))
                first = False

    async def _after_sync(self) -> None:
        c = self.client
        if c.should_upload_keys:
            await c.keys_upload()
        if c.should_query_keys:
            await c.keys_query()
        if c.should_claim_keys:
            await c.keys_claim(c.get_users_for_key_claiming())
        if c.outgoing_to_device_messages:
            await c.send_to_device_messages()

    # ------------------------------------------------------------------ events

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        if event.sender not in self.admins:
            await self.client.room_leave(room.room_id)
            return
        await self.client.join(room.room_id)

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        self.record(k="cb", ev=event.event_id, t=time.monotonic(), sync=self.last_sync)
        if event.sender == self.client.user_id or event.server_timestamp < self.started_ms:
            return
        body = event.body or ""
        if not body.startswith(self.prefix):
            return
        text = body[len(self.prefix):].strip()
        task = asyncio.create_task(self._answer(room.room_id, event.event_id, text))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, room_id: str, event_id: str, text: str) -> None:
        content = {
            "msgtype": "m.notice",
            "body": f"echo: {text}",
            "format": HTML_FORMAT,
            "formatted_body": f"<strong>echo:</strong> {html.escape(text, quote=False)}",
            "m.mentions": {},
            "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
        }
        t0 = time.monotonic()
        resp = await self.client.room_send(room_id, "m.room.message", content,
                                           ignore_unverified_devices=True)
        self.record(k="send", ev=event_id, tx=None, t0=t0, t1=time.monotonic())
        if isinstance(resp, RoomSendResponse):
            self.answered += 1
        else:
            log.warning("could not answer in %s: %s", room_id, resp)

    # ------------------------------------------------------------------ burst mode

    def start_burst(self) -> None:
        task = asyncio.create_task(self._burst())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _burst(self) -> None:
        plan_path = Path(self.args.plan)
        plan = json.loads(plan_path.read_text())
        at, sends, lanes = float(plan["at"]), plan["sends"], int(plan.get("lanes", 1))
        log.info("burst: %d events at %.3f (in %.1f s), %d lane(s)", len(sends), at,
                 at - time.time(), lanes)
        by_room: dict[str, list[dict[str, Any]]] = {}
        for item in sends:
            by_room.setdefault(item["room_id"], []).append(item)
        await asyncio.sleep(max(0.0, at - time.time()))
        started = time.time()
        done: list[dict[str, Any]] = []

        async def send(item: dict[str, Any]) -> None:
            tx_id = f"echo.{uuid.uuid4().hex}"
            t0 = time.monotonic()
            resp = await self.client.room_send(item["room_id"], "m.room.message",
                                               item["content"], tx_id=tx_id,
                                               ignore_unverified_devices=True)
            self.record(k="send", ev=None, tx=tx_id, t0=t0, t1=time.monotonic())
            done.append({"room_id": item["room_id"], "sent": time.time(),
                         "ok": isinstance(resp, RoomSendResponse)})

        if lanes <= 1:
            for item in sends:
                await send(item)
        else:
            slots = asyncio.Semaphore(lanes)

            async def lane(items: list[dict[str, Any]]) -> None:
                async with slots:
                    for item in items:
                        await send(item)

            await asyncio.gather(*(lane(items) for items in by_room.values()))
        log.info("burst: sent %d events in %.3f s (started %.1f ms after the due instant)",
                 sum(d["ok"] for d in done), time.time() - started, (started - at) * 1e3)
        tmp = plan_path.with_name(plan_path.name + ".done.tmp")
        tmp.write_text(json.dumps({"at": at, "started": started, "sends": done}))
        tmp.replace(plan_path.with_name(plan_path.name + ".done"))


async def main_async(args: argparse.Namespace) -> None:
    bot = EchoBot(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if args.plan:
        loop.add_signal_handler(signal.SIGUSR1, bot.start_burst)
    await bot.run(stop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--homeserver", required=True)
    p.add_argument("--store", required=True, help="crypto store directory")
    p.add_argument("--prefix", default="!echo", help="command prefix (default: %(default)s)")
    p.add_argument("--admin", action="append", default=[],
                   help="accept room invites from this user (repeatable)")
    p.add_argument("--plan", default=None, help="burst plan file, read on SIGUSR1")
    p.add_argument("--probe", default=None, help="write time stamps (JSON lines) to this file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nio").setLevel(logging.WARNING)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
