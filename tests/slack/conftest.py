"""Fixtures for the Slack adapter's tests: a seeded fake Slack, in the test's loop or a thread.

Both seed the same workspace (``tests.support.slack.WORKSPACE``): team ``T0COHORT1``; users
``U0ADMIN01`` (admin, Europe/London), ``U0ALICE01`` (Europe/Berlin), ``U0BOB0001``
(America/Los_Angeles); bot user ``U0BOT0001`` / bot ``B0BOT0001``; ``C0COHORT1`` (#cohort-1,
the bot is a member) and ``C0RANDOM1`` (#random, it is not); tokens ``xoxb-test`` and
``xapp-test``; signing secret ``WORKSPACE.signing_secret``.

``oauth_bot`` runs `cohortbot run`'s wiring with OAuth installs instead of a bot token, and a
second workspace, Beta (``T0BETA001``: admin ``U0BETAADM``, channel ``C0BETA001``), that has
not installed the app yet.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from adapters.slack.platform import SlackPlatform
from bot.bootstrap import App, build, ensure_schema, platforms_from, serve
from bot.config import load_settings
from bot.db.engine import sync_url
from bot.scheduling.clock import SimulatedClock
from tests.support.slack import (
    WORKSPACE,
    FakeSlack,
    PostResult,
    SignedRequest,
    SlackRequestBuilder,
    Workspace,
    post_signed,
    seed_workspace,
)
from tests.support.slack.process import slack_environ


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


# ---------------------------------------------------------------------------- OAuth installs

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "oauth-client-secret"
BETA = "T0BETA001"
BETA_ADMIN = "U0BETAADM"
BETA_BOT = "U0BETABOT"
BETA_CHANNEL = "C0BETA001"


@dataclass
class OAuthBot:
    fake: FakeSlack
    platform: SlackPlatform
    db_url: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.platform.port}"

    async def install(self, team_id: str, installer: str, bot_user: str, bot_id: str) -> str:
        """The OAuth flow as a browser and Slack go through it; returns the new bot token."""
        async with aiohttp.ClientSession() as http:
            async with http.get(self.base + "/slack/install") as resp:
                assert resp.status == 200
                page = await resp.text()
                cookie = resp.headers["Set-Cookie"]
            state = re.search(r"state=([^&\"']+)", page)
            assert state is not None, page
            # The installer clicks "Allow" on Slack's authorize page: Slack redirects back.
            code = self.fake.authorize(team_id=team_id, installer=installer,
                                       bot_user_id=bot_user, bot_id=bot_id)
            name, _, value = cookie.split(";")[0].partition("=")
            async with http.get(self.base + "/slack/oauth_redirect",
                                params={"code": code, "state": state.group(1)},
                                headers={"Cookie": f"{name}={value}"}) as resp:
                assert resp.status == 200, await resp.text()
        [token] = self.fake.bot_tokens(team_id)[-1:]
        return token

    def rows(self) -> list[dict[str, Any]]:
        engine = sa.create_engine(sync_url(self.db_url))
        try:
            with engine.connect() as conn:
                return [dict(r) for r in conn.execute(sa.text(
                    "SELECT enterprise_id, team_id, bot_user_id, installer_user_id "
                    "FROM slack_installations ORDER BY team_id")).mappings()]
        finally:
            engine.dispose()

    async def command(self, build: SlackRequestBuilder, user: str, channel: str,
                      text: str) -> None:
        result = await post_signed(self.base + "/slack/events", build.slash_command(
            "/cohort", text, user_id=user, channel_id=channel))
        assert result.status == 200 and result.elapsed < 3.0

    async def wait_posts(self, channel: str, count: int) -> list[str]:
        await self.fake.wait_for(lambda: len(self.fake.posts(channel)) >= count,
                                 what=f"{count} posts in {channel}")
        return [m["text"] for m in self.fake.posts(channel)]

    def tokens_used(self, method: str, where: Callable[[dict[str, Any]], bool]) -> set[str]:
        return {c.token or "" for c in self.fake.calls_to(method) if where(c.params)}


#: Seals the installs' tokens in the tests' databases (made by `cohortbot new-key`).
TOKEN_KEY = "q0bX3kT2l9sLwq0nR8m6Jc1Yb4Vd7Hf2Ue5Kp8Zs3Ao="


def oauth_environ(fake: FakeSlack, url: str, *, mode: str) -> dict[str, str]:
    """The settings of OAuth installs (no bot token); the main workspace's admin is the
    configured one, named with their workspace."""
    env = slack_environ(fake, url, mode=mode,
                        admins=(f"slack:{WORKSPACE.team_id}:{WORKSPACE.admin}",))
    del env["COHORTBOT_SLACK__BOT_TOKEN"]
    return env | {"COHORTBOT_SLACK__CLIENT_ID": CLIENT_ID,
                  "COHORTBOT_SLACK__CLIENT_SECRET": CLIENT_SECRET,
                  "COHORTBOT_SLACK__TOKEN_KEY": TOKEN_KEY}


@pytest.fixture
async def oauth_bot(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[OAuthBot]:
    fake_slack.set_latency(0.0, 0.005)
    fake_slack.set_oauth_client(CLIENT_ID, CLIENT_SECRET)
    fake_slack.add_team(BETA, "Beta Corp", "beta-corp")
    fake_slack.add_user(BETA_ADMIN, "bea", real_name="Bea Admin", tz="Asia/Tokyo",
                        is_admin=True, team_id=BETA)
    # Beta's bot user joins Beta when the app is installed there (`FakeSlack.authorize`).
    fake_slack.add_channel("beta-cohort", channel_id=BETA_CHANNEL,
                           members=[BETA_ADMIN, BETA_BOT], team_id=BETA)
    url = f"sqlite+aiosqlite:///{tmp_path / 'oauth.db'}"
    ensure_schema(url)
    # Bea is no configured admin: only Beta's own users.info says she may create a cohort.
    # The tenancy attacks send every command of the grammar within a simulated minute: the
    # per-person flood limit is not what they test.
    env = oauth_environ(fake_slack, url, mode="http") | {
        "COHORTBOT_SLACK__STATE_SECRET": "state-signing-secret",
        "COHORTBOT_BOT__COMMANDS_PER_MINUTE": "1000000"}
    empty = tmp_path / "cohortbot.toml"
    empty.write_text("")
    settings = load_settings(empty, environ=env)
    platforms = platforms_from(settings)
    [platform] = platforms
    assert isinstance(platform, SlackPlatform)
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(
        serve(settings, platforms, stop, clock=SimulatedClock(START)))
    try:
        await fake_slack.wait_for(lambda: platform.port is not None or task.done(),
                                  what="the bot to listen")
        assert not task.done()
        yield OAuthBot(fake_slack, platform, url)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
