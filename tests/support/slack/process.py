"""The real `cohortbot run` process on the fake Slack: its config, and Slack's side of the
conversation (signed HTTP requests or Socket Mode envelopes)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from .seed import WORKSPACE
from .signing import post_signed
from .webapi import FakeSlack

COHORTBOT = str(Path(sys.executable).with_name("cohortbot"))
W = WORKSPACE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slack_environ(fake: FakeSlack, db_url: str, *, mode: str = "http", port: int | None = None,
                  admins: tuple[str, ...] = (f"slack:{WORKSPACE.admin}",)) -> dict[str, str]:
    """Config for a bot on the fake (as environment overrides: also good for a subprocess)."""
    env = {
        "COHORTBOT_DATABASE__URL": db_url,
        "COHORTBOT_BOT__ADMINS": json.dumps(list(admins)),
        "COHORTBOT_SLACK__ENABLED": "true",
        "COHORTBOT_SLACK__MODE": mode,
        "COHORTBOT_SLACK__BOT_TOKEN": WORKSPACE.bot_token,
        "COHORTBOT_SLACK__API_BASE_URL": fake.api_url,
        "COHORTBOT_SLACK__HTTP_HOST": "127.0.0.1",
        "COHORTBOT_SLACK__HTTP_PORT": str(port or free_port()),
    }
    if mode == "http":
        env["COHORTBOT_SLACK__SIGNING_SECRET"] = WORKSPACE.signing_secret
    else:
        env["COHORTBOT_SLACK__APP_TOKEN"] = WORKSPACE.app_token
    return env


class SlackProcess:
    """A `cohortbot run` child process on the fake, and how Slack talks to it in its mode.

    Started at construction; a second one on the same `tmp_path` reuses the database.
    `environ`: more settings (e.g. another platform), `admins` the configured admins."""

    def __init__(self, fake: FakeSlack, tmp_path: Path, mode: str, *,
                 environ: dict[str, str] | None = None,
                 admins: tuple[str, ...] = (f"slack:{WORKSPACE.admin}",)) -> None:
        self.fake = fake
        self.mode = mode
        self.db = tmp_path / "cohortbot.db"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("COHORTBOT_") and "proxy" not in k.lower()}
        env.update(slack_environ(fake, f"sqlite+aiosqlite:///{self.db}", mode=mode,
                                 admins=admins))
        env.update(environ or {})
        env["PYTHONUNBUFFERED"] = "1"
        self.port = int(env["COHORTBOT_SLACK__HTTP_PORT"])
        self.log = tmp_path / "bot.log"
        (tmp_path / "cohortbot.toml").write_text("")
        self.proc = subprocess.Popen([COHORTBOT, "run"], env=env, cwd=tmp_path,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("w"))
        self.build = fake.requests()
        self.ack_times: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def ready(self) -> None:
        if self.mode == "socket":
            await self.fake.socket_wait_connected(1, timeout=30)
            return

        async def healthy() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(
                        f"http://127.0.0.1:{self.port}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        for _ in range(300):
            assert self.proc.poll() is None, self.log.read_text()
            if await healthy():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("the bot never became healthy")

    def _acked(self, seconds: float | None) -> None:
        assert seconds is not None and seconds < 3.0, f"acknowledged after {seconds} s"
        self.ack_times.append(seconds)

    async def _send(self, kind: str, payload: dict[str, Any], signed: Any) -> dict[str, Any]:
        if self.mode == "socket":
            delivery = await self.fake.socket_send(kind, payload)
            self._acked(delivery.ack_elapsed)
            return delivery.ack_payload or {}
        result = await post_signed(self.url, signed)
        assert result.status == 200, result.body
        self._acked(result.elapsed)
        return result.json() if result.body.strip().startswith("{") else {}

    async def command(self, user: str, text: str, channel: str = W.channel) -> None:
        payload = self.build.slash_command_payload("/cohort", text, user_id=user,
                                                   channel_id=channel)
        await self._send("slash_commands", payload, self.build._form(payload, payload))

    async def submit(self, view_id: str, user: str, values: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        payload = self.build.view_submission_payload(view_id, user_id=user, values=values)
        ack = await self._send("interactive", payload,
                               self.build._form({"payload": json.dumps(payload)}, payload))
        if self.mode == "http":
            self.fake.apply_view_response(user, ack)  # Slack acts on the HTTP answer
        return ack

    async def click(self, user: str, channel: str, message: dict[str, Any],
                    button: dict[str, Any]) -> None:
        """`user` presses `button` on `message` (in `channel`)."""
        action = {"action_id": button["action_id"], "block_id": "b", "value": button["value"]}
        payload = self.build.block_actions_payload([action], user_id=user, channel_id=channel,
                                                   message=message)
        await self._send("interactive", payload,
                         self.build._form({"payload": json.dumps(payload)}, payload))

    async def answer(self, user: str, text: str) -> str:
        """Send `/cohort text` as `user` and wait for the private answer to it."""
        before = len(self.fake.ephemerals(user=user))
        await self.command(user, text)
        found = await self.fake.wait_for(
            lambda: self.fake.ephemerals(user=user)[before:], timeout=15,
            what=f"the answer to {text!r}")
        return str(found[0]["text"])

    async def post(self, starts: str, timeout: float, channel: str = W.channel
                   ) -> dict[str, Any]:
        """The first message posted in `channel` whose text starts with `starts`."""
        found = await self.fake.wait_for(
            lambda: [p for p in self.fake.posts(channel) if p["text"].startswith(starts)],
            timeout=timeout, interval=0.2, what=f"a post starting {starts!r}")
        return found[0]

    async def event(self, event: dict[str, Any], event_id: str, retry: int = 0) -> None:
        payload = self.build.event_callback_payload(event, event_id=event_id)
        signed = self.build._json(payload, retry_num=retry or None)
        if self.mode == "socket" and retry:
            delivery = await self.fake.socket_send("events_api", payload, retry_attempt=retry,
                                                   retry_reason="timeout")
            self._acked(delivery.ack_elapsed)
            return
        await self._send("events_api", payload, signed)

    async def replies(self, user: str, count: int) -> list[str]:
        def enough() -> list[dict[str, Any]]:
            seen = self.fake.ephemerals(user=user)
            return seen if len(seen) >= count else []

        found = await self.fake.wait_for(enough, timeout=15, what=f"{count} replies to {user}")
        return [e["text"] for e in found]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        log = self.log.read_text()
        assert code == 0, log
        assert "Traceback" not in log, log
        return log
