"""The bot on the real Slack adapter (signed requests, fake Slack Web API) over SQLite or
PostgreSQL, a known question secret, and the anonymous-question flow the adversary studies.

Tests choose the database with `@ON_BOTH` (SQLite and PostgreSQL) or `@ON_POSTGRES` (a
property of PostgreSQL itself): a parameter, never a skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.platform import SlackPlatform
from bot.bootstrap import App, build, ensure_schema
from bot.config import BotSettings, load_settings
from bot.scheduling.clock import SimulatedClock
from tests.conftest import pg_schema
from tests.privacy.adversary import SentId, Snapshot, take_snapshot
from tests.slack.conftest import START, SlackBot
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack, SignedRequest, seed_workspace
from tests.support.slack.process import slack_environ

ON_BOTH = pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
ON_POSTGRES = pytest.mark.parametrize("database", ["postgres"], indirect=True)

#: What the operator configures (`[bot] question_secret`); never in the database.
QUESTION_SECRET = "privacy-suite-question-secret-9c1f"

CAROL = "U0CAROL01"
DAVE = "U0DAVE001"
MEMBERS = (W.alice, W.bob, CAROL, DAVE, W.admin)
SCHEDULE = "weekly tue 14:00 Europe/London for 90m"  # first session: Tue 1 Dec 14:00 UTC

# Odd instants, so that a stored time near them can only come from the command itself.
ALICE_ASKS = datetime.fromisoformat("2026-11-30T10:26:37+00:00")
BOB_ASKS = datetime.fromisoformat("2026-11-30T11:05:13+00:00")
RELEASE_AT = datetime.fromisoformat("2026-11-30T12:00:00+00:00")
CAROL_UPVOTES = datetime.fromisoformat("2026-11-30T12:31:19+00:00")

@dataclass(frozen=True)
class Database:
    kind: str  # "sqlite" | "postgres"
    url: str


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated database of the kind the test is parametrized with."""
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}"
        ensure_schema(url)
        yield Database(kind, url)
        return
    assert kind == "postgres", kind
    with pg_schema() as url:
        yield Database(kind, url)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """The seeded workspace, with two more people in #cohort-1 (five members in all)."""
    async with FakeSlack(team_id=W.team_id, app_id=W.app_id,
                         signing_secret=W.signing_secret) as fake:
        seed_workspace(fake)
        fake.add_user(CAROL, "carol", real_name="Carol Diaz", tz="Europe/Madrid")
        fake.add_user(DAVE, "dave", real_name="Dave Okafor", tz="Africa/Lagos")
        for user in (CAROL, DAVE):
            fake.join(W.channel, user)
        yield fake


def secret_environ() -> dict[str, str]:
    """The question secret, set the way an operator does. Before `[bot] question_secret`
    exists the setting would be refused as unknown, so it is set only once it does."""
    if "question_secret" in BotSettings.model_fields:
        return {"COHORTBOT_BOT__QUESTION_SECRET": QUESTION_SECRET}
    return {}


class PrivacyBot(SlackBot):
    """`SlackBot` that remembers every id Slack put in what the test sent, and who sent it."""

    def __init__(self, fake: FakeSlack, app: App, platform: SlackPlatform,
                 clock: SimulatedClock, database: Database, tmp_path: Path) -> None:
        super().__init__(fake, app, platform, clock)
        self.database = database
        self.tmp_path = tmp_path
        self.sent: list[SentId] = []

    def _record(self, request: SignedRequest, user: str, what: str, secret: bool,
                event_id: str) -> None:
        sender = f"slack:{user}"
        payload = request.payload
        trigger = payload.get("trigger_id")
        response_url = payload.get("response_url")
        self.sent.append(SentId(event_id, sender, what, secret))
        if isinstance(trigger, str):
            self.sent.append(SentId(trigger, sender, f"{what} (trigger id)", secret))
        if isinstance(response_url, str):
            self.sent.append(SentId(response_url.rsplit("/", 1)[-1], sender,
                                    f"{what} (response URL)", secret))

    async def slash(self, user: str, text: str, *, secret: bool = False) -> str:
        """`/cohort <text>` in #cohort-1; returns what `user` saw (privately or in the
        channel) in answer."""
        before, posts = len(self.replies_to(user)), len(self.channel_posts())
        request = self.build.slash_command("/cohort", text, user_id=user, channel_id=W.channel)
        self._record(request, user, text.split()[0] if secret else text, secret,
                     f"slack:cmd:{request.payload['trigger_id']}")
        result = await self.post(request)
        assert result.status == 200, result.body
        await self.settle()
        return "\n".join(self.replies_to(user)[before:] + self.channel_posts()[posts:])

    async def click(self, user: str, message: dict[str, Any], label: str) -> str:
        """A click on the button labelled `label` of a channel message."""
        button = next(e for b in message.get("blocks") or [] if b["type"] == "actions"
                      for e in b["elements"] if e["text"]["text"] == label)
        before = len(self.replies_to(user))
        request = self.build.block_actions(
            [{"action_id": button["action_id"], "block_id": "b", "value": button["value"]}],
            user_id=user, channel_id=W.channel, message=message)
        self._record(request, user, f"{label} button", True,
                     f"slack:act:{request.payload['trigger_id']}:0")
        result = await self.post(request)
        assert result.status == 200, result.body
        await self.settle()
        return "\n".join(self.replies_to(user)[before:])

    def ids(self, *, secret_only: bool = False) -> list[SentId]:
        return [s for s in self.sent if s.secret or not secret_only]

    def snapshot(self) -> Snapshot:
        return take_snapshot(self.database.url, self.tmp_path)


@pytest.fixture
async def bot(fake_slack: FakeSlack, database: Database, tmp_path: Path
              ) -> AsyncIterator[PrivacyBot]:
    """`cohortbot run`'s Slack wiring in-process: HTTP on loopback, simulated clock at START."""
    fake_slack.set_latency(0.0, 0.005)
    empty = tmp_path / "cohortbot.toml"
    empty.write_text("")
    settings = load_settings(empty, environ=slack_environ(fake_slack, database.url)
                             | secret_environ())
    clock = SimulatedClock(START)
    platform = SlackPlatform(settings.slack)
    app = build(settings, clock=clock, messengers={"slack": platform.messenger},
                directories={"slack": platform.directory})
    await platform.start(app.bot)
    running = PrivacyBot(fake_slack, app, platform, clock, database, tmp_path)
    try:
        await running.wait_listening()
        yield running
    finally:
        await platform.stop()
        await app.close()


# ---------------------------------------------------------------------------- the flow


async def set_up_cohort(bot: PrivacyBot) -> None:
    """At START (Mon 09:00 UTC): a weekly cohort in #cohort-1 with five members; Ada, the
    workspace admin, facilitates. Every member has a DM with the bot."""
    assert "Created" in await bot.slash(W.admin, "cohort create Peer A")
    assert "Schedule" in await bot.slash(W.admin, f"cohort schedule {SCHEDULE}")
    mentions = " ".join(f"<@{u}|{bot.fake.user(u)['name']}>" for u in MEMBERS)
    assert "Added" in await bot.slash(W.admin, f"cohort members add {mentions}")
    assert "facilitate" in await bot.slash(W.admin, f"cohort facilitators add <@{W.admin}|ada>")
    for user in MEMBERS:
        bot.fake.open_dm(user)


async def ask_questions(bot: PrivacyBot) -> None:
    """Alice asks at 10:26:37, Bob at 11:05:13 (UTC, the same day)."""
    await bot.advance_to(ALICE_ASKS)
    reply = await bot.slash(W.alice, "ask How do I tell my PI the project is late?",
                            secret=True)
    assert "Your code" in reply, reply
    await bot.advance_to(BOB_ASKS)
    reply = await bot.slash(W.bob, "ask Is it normal to feel lost in year two?", secret=True)
    assert "Your code" in reply, reply


async def release(bot: PrivacyBot) -> list[dict[str, Any]]:
    """Ada releases what waits (confirming if the bot asks her to); returns the posts."""
    await bot.advance_to(RELEASE_AT)
    reply = await bot.slash(W.admin, "release")
    if "release confirm" in reply:
        reply = await bot.slash(W.admin, "release confirm")
    posts = [p for p in bot.fake.posts(W.channel) if "Anonymous question" in p["text"]]
    assert len(posts) == 2, (reply, posts)
    return posts


async def upvote(bot: PrivacyBot, posts: list[dict[str, Any]]) -> None:
    """Carol upvotes question #1 with its button at 12:31:19."""
    await bot.advance_to(CAROL_UPVOTES)
    [first] = [p for p in posts if p["text"].startswith("*Anonymous question #1*")]
    reply = await bot.click(CAROL, first, "Upvote #1")
    assert "Upvoted #1" in reply, reply


def voting_closes(snap: Snapshot, released: datetime) -> datetime:
    """The end of the first session after `released`: the end of #1's voting window."""
    ends = sorted(
        _aware(s["starts_at"]) + timedelta(minutes=int(s["duration_min"]))
        for s in snap.tables["sessions"] if _aware(s["starts_at"]) > released)
    assert ends, "the cohort has no session after the release"
    return ends[0]


def _aware(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=START.tzinfo)
