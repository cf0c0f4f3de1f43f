"""Fixtures for the Slack adapter's tests: a seeded fake Slack, in the test's loop or a thread.

Both seed the same workspace (``tests.support.slack.WORKSPACE``): team ``T0COHORT1``; users
``U0ADMIN01`` (admin, Europe/London), ``U0ALICE01`` (Europe/Berlin), ``U0BOB0001``
(America/Los_Angeles); bot user ``U0BOT0001`` / bot ``B0BOT0001``; ``C0COHORT1`` (#cohort-1,
the bot is a member) and ``C0RANDOM1`` (#random, it is not); tokens ``xoxb-test`` and
``xapp-test``; signing secret ``WORKSPACE.signing_secret``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.platform import SlackPlatform
from bot.bootstrap import App, build, ensure_schema
from bot.config import load_settings
from bot.scheduling.clock import SimulatedClock
from tests.support.slack import (
    WORKSPACE,
    FakeSlack,
    PostResult,
    SignedRequest,
    Workspace,
    post_signed,
    seed_workspace,
)
from tests.support.slack.process import slack_environ

_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
               "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk sends every request (loopback included) through a proxy set in the env."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack_ws() -> Workspace:
    return WORKSPACE


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """The fake, serving from the test's own event loop."""
    async with FakeSlack(team_id=WORKSPACE.team_id, app_id=WORKSPACE.app_id,
                         signing_secret=WORKSPACE.signing_secret) as fake:
        seed_workspace(fake)
        yield fake


# ---------------------------------------------------------------------------- the bot in-process


class SlackBot:
    """The real core (simulated clock) with the real Slack platform, driven like Slack does."""

    def __init__(self, fake: FakeSlack, app: App, platform: SlackPlatform, clock: SimulatedClock
                 ) -> None:
        self.fake = fake
        self.app = app
        self.platform = platform
        self.clock = clock
        self.build = fake.requests()
        self.acks: list[PostResult] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.platform.port}/slack/events"

    async def wait_listening(self) -> None:
        await self.fake.wait_for(lambda: self.platform.port is not None, what="the bot to listen")

    async def post(self, request: SignedRequest) -> PostResult:
        result = await post_signed(self.url, request)
        assert result.elapsed < 3.0, f"acknowledged after {result.elapsed:.2f} s"
        self.acks.append(result)
        return result

    async def settle(self) -> None:
        """Let acknowledged work finish, then deliver what the core queued."""
        await self.platform.background.join()
        await self.app.dispatcher.run_due()
        await self.platform.background.join()

    async def command(self, user: str, text: str, channel: str = WORKSPACE.channel,
                      **signing: Any) -> PostResult:
        result = await self.post(self.build.slash_command("/cohort", text, user_id=user,
                                                          channel_id=channel, **signing))
        await self.settle()
        return result

    def replies_to(self, user: str) -> list[str]:
        """What only `user` saw (ephemeral), oldest first."""
        return [e["text"] for e in self.fake.ephemerals(user=user)]

    def last_reply(self, user: str) -> str:
        replies = self.replies_to(user)
        assert replies, f"no reply to {user}"
        return replies[-1]

    def dms(self, user: str) -> list[str]:
        dm = self.fake.dm_channel(user)
        return [m["text"] for m in self.fake.messages(dm)] if dm else []

    def channel_posts(self, channel: str = WORKSPACE.channel) -> list[str]:
        return [m["text"] for m in self.fake.posts(channel)]

    async def advance_to(self, instant: datetime) -> None:
        await self.app.advance_to(instant)
        await self.platform.background.join()


START = datetime.fromisoformat("2026-11-30T09:00:00+00:00")  # a Monday


@asynccontextmanager
async def running_bot(fake: FakeSlack, tmp_path: Path, *, mode: str = "http"
                      ) -> AsyncIterator[SlackBot]:
    """SQLite, a simulated clock at START, the fake answering fast; HTTP or Socket Mode."""
    fake.set_latency(0.0, 0.005)
    url = f"sqlite+aiosqlite:///{tmp_path / f'slack-{mode}.db'}"
    ensure_schema(url)
    empty = tmp_path / "cohortbot.toml"
    empty.write_text("")
    settings = load_settings(empty, environ=slack_environ(fake, url, mode=mode))
    clock = SimulatedClock(START)
    platform = SlackPlatform(settings.slack)
    app = build(settings, clock=clock, messengers={"slack": platform.messenger},
                directories={"slack": platform.directory})
    await platform.start(app.bot)
    bot = SlackBot(fake, app, platform, clock)
    try:
        if mode == "http":
            await bot.wait_listening()
        else:
            await fake.socket_wait_connected(1)
        yield bot
    finally:
        await platform.stop()
        await app.close()


@pytest.fixture
async def slack_bot(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    async with running_bot(fake_slack, tmp_path) as bot:
        yield bot


@pytest.fixture
async def socket_bot(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    async with running_bot(fake_slack, tmp_path, mode="socket") as bot:
        yield bot
