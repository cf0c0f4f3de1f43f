"""Shared fixtures: a migrated database on SQLite *and* PostgreSQL, and a bot harness.

PostgreSQL is not optional: the URL defaults to the local server
(`COHORTBOT_TEST_POSTGRES_URL` overrides it), and a test that cannot reach it fails rather
than skips. Each test gets its own PostgreSQL schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.bootstrap import App, build, ensure_schema
from bot.chat.message import Message
from bot.config import load_settings
from bot.db.engine import upgrade
from bot.domain.refs import ChannelRef, UserRef
from bot.domain.timeparse import parse_duration
from bot.scheduling.clock import SimulatedClock
from bot.service.api import Invocation, Reply
from bot.service.ports import DeliveryError, Outgoing

pytest_plugins = ["tests.support.matrix_fixtures", "tests.support.slack_fixtures",
                  "tests.support.jsclient_fixtures"]

PG_URL = os.environ.get(
    "COHORTBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
START = datetime.fromisoformat("2026-11-30T09:00:00+00:00")  # a Monday


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
               "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients (slack_sdk, aiohttp) would send loopback requests through a proxy set in the
    environment: every test talks to 127.0.0.1 only."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def _pg_schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:
    """A freshly migrated, empty database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "cohortbot.db"
        url = f"sqlite+aiosqlite:///{path}"
        ensure_schema(url)
        yield url
        return
    with pg_schema() as url:
        yield url


@contextmanager
def pg_schema(revision: str = "head") -> Iterator[str]:
    """A PostgreSQL schema of its own (a URL that uses it), migrated to `revision`, dropped
    afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = _pg_schema_url(schema)
    try:
        upgrade(url, revision)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@dataclass
class Sent:
    target: str
    direct: bool
    text: str
    message: Message
    outbox_id: int
    #: The edits made to it since, in order: `text` and `message` stay as first sent.
    edits: list[Message] = field(default_factory=list)

    @property
    def shown(self) -> Message:
        """What the platform shows now: the last edit, or the message as sent."""
        return self.edits[-1] if self.edits else self.message


@dataclass
class RecordingMessenger:
    """A platform that records what it is sent; `fail_next` injects delivery errors."""

    platform: str = "terminal"
    sent: list[Sent] = field(default_factory=list)
    fail_next: list[DeliveryError] = field(default_factory=list)
    calls: int = 0
    #: Messages removed (moved here from `sent`).
    deleted: list[Sent] = field(default_factory=list)
    #: What was told to someone privately, outside the outbox: (user id, place, text).
    whispered: list[tuple[str, str | None, str]] = field(default_factory=list)
    #: Set when another process sent messages on the same database (a copy of it): edits and
    #: removals of those are recorded here, as ("edit" | "delete", message id, target).
    elsewhere: list[tuple[str, str, str]] | None = None

    async def send(self, out: Outgoing) -> str:
        self.calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.sent.append(Sent(out.target, out.direct, out.message.plain(), out.message,
                              out.outbox_id))
        return f"m{out.outbox_id}"

    def _find(self, out: Outgoing, message_id: str, verb: str) -> Sent | None:
        found = [s for s in self.sent if f"m{s.outbox_id}" == message_id]
        if not found and self.elsewhere is not None:
            self.elsewhere.append((verb, message_id, out.target))
            return None
        assert len(found) == 1 and found[0].target == out.target, (message_id, out)
        return found[0]

    async def edit(self, out: Outgoing, message_id: str) -> None:
        self.calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        if (s := self._find(out, message_id, "edit")) is not None:
            s.edits.append(out.message)

    async def whisper(self, user: UserRef, tenant: str | None, place: ChannelRef | None,
                      message: Message) -> None:
        self.calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.whispered.append((user.id, place.id if place else None, message.plain()))

    async def delete(self, out: Outgoing, message_id: str) -> None:
        self.calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        if (s := self._find(out, message_id, "delete")) is not None:
            self.sent.remove(s)
            self.deleted.append(s)


class Harness:
    """Drives the real core (real database, simulated clock) the way an adapter would."""

    def __init__(self, app: App, messenger: RecordingMessenger, clock: SimulatedClock) -> None:
        self.app = app
        self.messenger = messenger
        self.clock = clock

    async def say(self, user: str, text: str, channel: str | None = "peer-a") -> str:
        replies = await self.replies(user, text, channel)
        await self.app.dispatcher.run_due()
        return "\n".join(r.message.plain() for r in replies)

    async def replies(self, user: str, text: str, channel: str | None = "peer-a") -> list[Reply]:
        return await self.app.bot.handle(Invocation(
            user=UserRef("terminal", user), text=text,
            channel=ChannelRef("terminal", channel) if channel else None,
        ))

    async def advance(self, duration: str) -> None:
        await self.app.advance_to(self.clock.now() + parse_duration(duration))

    async def advance_to(self, instant: datetime) -> None:
        await self.app.advance_to(instant)

    def channel_posts(self, channel: str = "peer-a") -> list[str]:
        return [s.text for s in self.messenger.sent if not s.direct and s.target == channel]

    def dms(self, user: str) -> list[str]:
        return [s.text for s in self.messenger.sent if s.direct and s.target == user]

    def clear(self) -> None:
        self.messenger.sent.clear()

    async def setup_cohort(self, members: str = "@ana @ben @cleo @dev @eli",
                           schedule: str = "weekly tue 14:00 Europe/London for 90m") -> None:
        assert "Created" in await self.say("root", "cohort create Peer A")
        assert "Schedule" in await self.say("root", f"cohort schedule {schedule}")
        assert "Added" in await self.say("root", f"cohort members add {members}")
        assert "facilitate" in await self.say("root", "cohort facilitators add @fay")


@asynccontextmanager
async def running_harness(db_url: str, **environ: str) -> AsyncIterator[Harness]:
    settings = load_settings(environ={
        "COHORTBOT_DATABASE__URL": db_url,
        "COHORTBOT_BOT__ADMINS": '["terminal:root"]',
        **environ,
    })
    clock = SimulatedClock(START)
    messenger = RecordingMessenger()
    app = build(settings, clock=clock, messengers={"terminal": messenger})
    try:
        yield Harness(app, messenger, clock)
    finally:
        await app.close()


@pytest.fixture
async def harness(db_url: str) -> AsyncIterator[Harness]:
    """The core with its default settings, except the per-person command limit: tests send
    dozens of commands within one simulated instant (the limit is tested on its own, with
    `limited_harness`)."""
    async with running_harness(db_url, COHORTBOT_BOT__COMMANDS_PER_MINUTE="1000000") as h:
        yield h


@pytest.fixture
async def limited_harness(db_url: str) -> AsyncIterator[Harness]:
    """The core with its default settings, flood limits included."""
    async with running_harness(db_url) as h:
        yield h


def week(n: int) -> timedelta:
    return timedelta(weeks=n)
