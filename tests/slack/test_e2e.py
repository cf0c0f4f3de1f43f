"""The real `cohortbot run` process on the fake Slack, in HTTP mode and in Socket Mode.

The fake serves from a thread of this test process; the bot runs as a child process with
its config in the environment. Every request it is sent must be acknowledged within Slack's
3 seconds. Waiting is for the other process's work, bounded, never for a scheduled time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.slack.conftest import slack_environ
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack, post_signed

COHORTBOT = str(Path(sys.executable).with_name("cohortbot"))
pytestmark = pytest.mark.e2e


class Running:
    """A `cohortbot run` child process, and how Slack talks to it in its mode."""

    def __init__(self, fake: FakeSlack, tmp_path: Path, mode: str) -> None:
        self.fake = fake
        self.mode = mode
        self.db = tmp_path / "cohortbot.db"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("COHORTBOT_") and "proxy" not in k.lower()}
        env.update(slack_environ(fake, f"sqlite+aiosqlite:///{self.db}", mode=mode))
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
        found = await self.fake.wait_for(
            lambda: len(self.fake.ephemerals(user=user)) >= count and self.fake.ephemerals(
                user=user), timeout=15, what=f"{count} replies to {user}")
        return [e["text"] for e in found]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        log = self.log.read_text()
        assert code == 0, log
        assert "Traceback" not in log, log
        return log


@pytest.fixture(params=["http", "socket"])
async def bot(request: pytest.FixtureRequest, fake_slack_thread: FakeSlack,
              tmp_path: Path) -> AsyncIterator[Running]:
    running = Running(fake_slack_thread, tmp_path, request.param)
    try:
        await running.ready()
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(10)


async def test_a_cohort_from_slash_commands_to_an_anonymous_question(bot: Running) -> None:
    fake = bot.fake
    await bot.command(W.admin, "cohort create Peer A")
    await bot.command(W.admin, "cohort schedule weekly tue 14:00 Europe/London for 90m")
    await bot.command(W.admin, f"cohort members add <@{W.alice}|alice> <@{W.bob}|bob>")
    await bot.command(W.admin, "cohort set question-release immediate")
    await bot.replies(W.admin, 3)
    await fake.wait_for(lambda: fake.posts(W.channel), what="the creation post")
    assert fake.posts(W.channel)[0]["text"].startswith("Created *Peer A*")

    # Permissions and bad input: clear private answers, nothing changes.
    await bot.command(W.bob, "cohort archive")
    await bot.command(W.alice, "away someday")
    [refused] = (await bot.replies(W.bob, 1))[-1:]
    assert refused.startswith("Only an admin can use 'cohort archive'")
    [bad] = (await bot.replies(W.alice, 1))[-1:]
    assert "Usage: /cohort away" in bad

    # An anonymous question through the modal.
    await bot.command(W.bob, "ask")
    modal = (await fake.wait_for(lambda: fake.modal_stack(W.bob), what="the ask modal"))[-1]
    question = "Is it OK to say <!here> I am lost?"
    ack = await bot.submit(modal["id"], W.bob, {
        "question": {"text": {"type": "plain_text_input", "value": question}}})
    assert ack["response_action"] == "push"
    preview = fake.modal_stack(W.bob)[-1]
    assert preview["callback_id"] == "cohort-ask-preview"
    await bot.submit(preview["id"], W.bob)
    post = await fake.wait_for(
        lambda: [p for p in fake.posts(W.channel) if "Anonymous question" in p["text"]],
        timeout=15, what="the question in the channel")
    assert post[0]["text"] == ("*Anonymous question #1*\n"
                               "Is it OK to say &lt;!here&gt; I am lost?")
    assert W.bob not in json.dumps(post[0])
    for call in fake.calls:
        if "I am lost" in json.dumps(call.params):
            assert W.bob not in json.dumps(call.params)
    log = bot.stop()
    assert "I am lost" not in log and W.bob not in log
    with sqlite3.connect(bot.db) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in db.execute(f'SELECT * FROM "{table}"'):
                joined = " | ".join(map(str, row))
                assert not ("I am lost" in joined and W.bob in joined), table
    assert all(t < 3.0 for t in bot.ack_times)


async def test_duplicates_once_and_a_429_storm_delivers_each_message_once(bot: Running) -> None:
    fake = bot.fake
    await bot.command(W.admin, "cohort create Peer A")
    await bot.command(W.admin, f"cohort members add <@{W.bob}|bob>")
    await bot.replies(W.admin, 1)

    # The same event twice (an HTTP retry / a Socket Mode redelivery): one answer.
    dm = fake.open_dm(W.bob)
    event = bot.build.message_event(user_id=W.bob, channel_id=dm, text="action list")
    await bot.event(event, "Ev0DUPLICATE1")
    await bot.event(event, "Ev0DUPLICATE1", retry=1)
    await fake.wait_for(lambda: fake.messages(dm), what="the answer in the DM")

    # A burst of prompts meets 429s (more than the SDK retries on its own).
    fake.ratelimit_next("chat.postMessage", retry_after=1, count=3)
    texts = [f"Prompt {i}: what went well?" for i in range(6)]
    for text in texts:
        await bot.command(W.admin, f"prompt {text}")
    await fake.wait_for(
        lambda: len([p for p in fake.posts(W.channel) if "Prompt " in p["text"]]) >= 6,
        timeout=30, what="every prompt")
    posted = [p["text"] for p in fake.posts(W.channel) if "Prompt " in p["text"]]
    assert sorted(posted) == sorted(f"*Prompt:* {t}" for t in texts)
    assert [c.status for c in fake.calls_to("chat.postMessage")].count(429) >= 3
    assert len([m for m in fake.messages(dm)]) == 1
    bot.stop()
