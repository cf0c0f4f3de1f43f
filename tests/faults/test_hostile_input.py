"""Hostile input through the whole grammar and the real core: it always gets one clear reply,
a rejected command changes nothing, and nothing a user typed can ping anyone.

The property tests (hypothesis) run on SQLite, with one cohort per platform (terminal,
Slack, Matrix), text arriving the way each adapter hands it to the core (Slack's encoding
decoded by `adapters.slack.inbound`, Matrix room messages through
`adapters.matrix.inbound.command_text`). Every reply, and every message a command queued in
the outbox, is inspected as a neutral `Message` (user text must be `Text`; a `Mention` must
name a real member) and rendered through both the Slack and the Matrix renderer.

The example-based tests (100 kB messages, numbers, dates and zones out of range) run on
SQLite and PostgreSQL through the `harness` fixture.

NUL characters and lone surrogates ("\\ud800", which a platform's JSON can carry) are among
the generated input: the core refuses them before they reach a database.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from adapters.matrix import render as matrix_render
from adapters.matrix.inbound import command_text
from adapters.slack import inbound as slack_inbound
from adapters.slack import render as slack_render
from bot.bootstrap import build, ensure_schema
from bot.chat.grammar import COMMANDS, Role, Spec, parse
from bot.chat.message import Mention, Message, Strong, Text
from bot.config import load_settings
from bot.db.tables import cohorts, members, metadata, outbox
from bot.domain.refs import ChannelRef, UserRef
from bot.scheduling.clock import SimulatedClock
from bot.service.api import Invocation, Reply
from tests.conftest import START, Harness, RecordingMessenger

# --- what the bot must never say ---------------------------------------------------------

#: Replies the bus gives for an unexpected exception or an outage: never for bad input.
BROKEN = ("Something went wrong on our side", "temporarily unavailable")
LEAKS = re.compile(
    r"Traceback|\bError:|\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b|sqlalchemy|psycopg|"
    r"aiosqlite|\bat 0x[0-9a-f]+|File \"", re.ASCII)
USAGE = "\nUsage: "
SECRET_REFUSAL = "Everyone in the channel can see that message"
MAX_ERROR_REPLY = 1500  # an error names what was wrong; it never repeats a whole message


def rejected(body: str) -> bool:
    """An input error or refusal: the bus ends every one of them with the usage line (and
    refuses a secret command seen by a room without running it)."""
    return USAGE in body or body.startswith(SECRET_REFUSAL)


def assert_clear_reply(replies: list[Reply], sent: str) -> Reply:
    assert len(replies) == 1, replies
    reply = replies[0]
    body = reply.message.plain()
    assert body.strip(), "an empty reply"
    assert not any(b in body for b in BROKEN), body
    for leak in LEAKS.finditer(body):
        assert leak[0] in sent, f"{leak[0]!r} in {body!r}"
    if rejected(body):
        assert reply.private, body
        assert len(body) <= MAX_ERROR_REPLY, len(body)
    return reply


# --- "never a ping" ----------------------------------------------------------------------

_SLACK_TOKEN = re.compile(r"<([^<>]*)>")
_SLACK_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_HTML_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)([^>]*)>")


def mrkdwn_of(message: Message) -> list[str]:
    """Everything Slack would parse as mrkdwn: the text and the section blocks."""
    out = [slack_render.text(message)]
    for block in slack_render.blocks(message) or []:
        text = block.get("text")
        if isinstance(text, dict) and text.get("type") == "mrkdwn":
            out.append(str(text["text"]))
    return out


def assert_cannot_ping(message: Message, known: set[UserRef]) -> None:
    """`message` mentions only real people (`known`: members and the caller), as Mention
    parts; rendered for Slack and Matrix, nothing else in it can notify anyone."""
    mentioned = set(message.mentions())
    assert mentioned <= known, mentioned - known
    slack_ids = {u.id for u in mentioned if u.platform == "slack"}
    for mrkdwn in mrkdwn_of(message):
        for token in _SLACK_TOKEN.finditer(mrkdwn):
            inner = token[1]
            if inner.startswith("!date^"):
                continue  # a time, shown in each reader's zone
            assert inner.startswith("@") and inner[1:] in slack_ids, (token[0], mrkdwn)
        assert not _SLACK_BROADCAST.search(mrkdwn), mrkdwn
        # What is left outside the bot's own tokens is escaped text.
        rest = _SLACK_TOKEN.sub("", mrkdwn)
        assert "<" not in rest and ">" not in rest, mrkdwn
    pills = {html.escape(matrix_render.pill_url(u.id)) for u in mentioned}
    for ping in (False, True):
        content = matrix_render.render(message, notice=not ping, ping=ping)
        # With m.mentions present, clients ignore @room and names in the body.
        assert "m.mentions" in content
        assert "room" not in content["m.mentions"]
        notified = set(content["m.mentions"].get("user_ids", []))
        assert notified <= ({u.id for u in mentioned} if ping else set()), notified
        for tag in _HTML_TAG.finditer(content["formatted_body"]):
            name = tag[2].lower()
            assert name in ("a", "strong", "br", "h4", "p", "ul", "li", "em"), (
                tag[0], content["formatted_body"])
            if name == "a" and not tag[1]:
                href = re.fullmatch(r' href="([^"]*)"', tag[3])
                assert href is not None and href[1] in pills, tag[0]


_USER_ID_TYPE = members.c.user_id.type
assert isinstance(_USER_ID_TYPE, sa.String) and _USER_ID_TYPE.length is not None
USER_ID_LIMIT: int = _USER_ID_TYPE.length  # what members.user_id holds


def assert_can_be_mentioned(person: UserRef) -> None:
    """A person the bot stored can be mentioned in a queued message: the id fits its column
    and survives the outbox's JSON round trip."""
    assert person.id and len(person.id) <= USER_ID_LIMIT, person
    stored = Message.of("hi ", Mention(person)).to_json()
    assert Message.from_json(stored).mentions() == (person,)


# --- a world with one cohort per platform ------------------------------------------------


@dataclass(frozen=True)
class Place:
    platform: str
    admin: str
    member: str  # also has an open action
    facilitator: str
    stranger: str
    others: tuple[str, ...]
    channel: str  # with {n}: each world has its own
    dm: str | None  # the direct conversation's id where the platform has one in payloads

    def mention(self, user: str) -> str:
        return f"<@{user}>" if self.platform == "slack" else \
            user if self.platform == "matrix" else f"@{user}"


PLACES = {
    "terminal": Place("terminal", "root", "ana", "fay", "zed", ("ben", "cleo", "dev"),
                      "peer-a{n}", None),
    "slack": Place("slack", "U0ROOT", "U0ANA", "U0FAY", "U0ZED", ("U0BEN", "U0CLEO"),
                   "C0PEERS{n}", "D0BOTDM"),
    "matrix": Place("matrix", "@root:example.org", "@ana:example.org", "@fay:example.org",
                    "@zed:example.org", ("@ben:example.org", "@cleo:example.org"),
                    "!peers{n}:example.org", None),
}
ADMINS = '["terminal:root", "slack:U0ROOT", "matrix:@root:example.org"]'


def invocation(place: Place, user: str, text: str, *, dm: bool) -> Invocation:
    """The invocation the platform's adapter would hand the core for `text` typed after the
    command word."""
    if place.platform == "slack":
        return slack_inbound.command({"user_id": user, "text": text,
                                      "channel_id": place.dm if dm else place.channel},
                                     tenant="slack")
    if place.platform == "matrix":
        got = command_text({"type": "m.room.message",
                            "content": {"msgtype": "m.text", "body": "!cohort " + text}},
                           "!cohort")
        assert got is not None
        channel = None if dm else ChannelRef("matrix", place.channel)
        return Invocation(user=UserRef("matrix", user), text=got, channel=channel,
                          seen_by_channel=channel is not None)
    return Invocation(user=UserRef("terminal", user), text=text,
                      channel=None if dm else ChannelRef("terminal", place.channel))


Snapshot = dict[str, Counter[tuple[Any, ...]]]


@dataclass
class World:
    h: Harness
    generation: int = 0
    slugs: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)

    async def handle(self, platform: str, user: str, text: str, *, dm: bool = False
                     ) -> list[Reply]:
        return await self.h.app.bot.handle(self.invocation(platform, user, text, dm=dm))

    def invocation(self, platform: str, user: str, text: str, *, dm: bool) -> Invocation:
        return invocation(self.place(platform), user, text, dm=dm)

    def place(self, platform: str) -> Place:
        base = PLACES[platform]
        return Place(base.platform, base.admin, base.member, base.facilitator, base.stranger,
                     base.others, self.channels.get(platform, base.channel), base.dm)

    async def build(self) -> None:
        """Fresh cohorts, one per platform, in fresh channels."""
        self.generation += 1
        n = self.generation
        for platform, base in PLACES.items():
            self.channels[platform] = base.channel.format(n=n)
            place = self.place(platform)
            people = " ".join(place.mention(u) for u in (place.member, *place.others))
            steps = [
                (place.admin, f"cohort create {platform.title()} Peers {n}", "Created"),
                (place.admin, "cohort schedule weekly tue 14:00 Europe/London for 90m",
                 "Schedule"),
                (place.admin, f"cohort members add {people}", "Added"),
                (place.admin, f"cohort facilitators add {place.mention(place.facilitator)}",
                 "facilitate"),
                (place.admin, "cohort set question-release immediate", "immediate"),
                (place.member, "action add Talk to my manager", "recorded"),
            ]
            for user, text, expected in steps:
                replies = await self.handle(platform, user, text)
                assert expected in replies[0].message.plain(), (platform, text, replies)
            slug = re.search(r"\(id ([a-z0-9-]+)\)",
                             (await self.handle(platform, place.admin, "cohort show"))[0]
                             .message.plain())
            assert slug is not None
            self.slugs[platform] = slug[1]

    async def snapshot(self) -> Snapshot:
        """Every row of every table, as stored (raw: this runs twice per example)."""
        out: Snapshot = {}
        async with self.h.app.engine.connect() as conn:
            for table in metadata.sorted_tables:
                rows = (await conn.exec_driver_sql(f"SELECT * FROM {table.name}")).all()
                out[table.name] = Counter(tuple(row) for row in rows)
        return out

    async def intact(self) -> bool:
        """Every cohort of the world active in its channel, with its callers in their roles."""
        async with self.h.app.engine.connect() as conn:
            for platform, slug in self.slugs.items():
                place = self.place(platform)
                row = (await conn.execute(
                    sa.select(cohorts.c.id, cohorts.c.status, cohorts.c.channel_id)
                    .where(cohorts.c.slug == slug))).one_or_none()
                if row is None or row.status != "active" or row.channel_id != place.channel:
                    return False
                roles = {(r.user_id, r.is_member, r.is_facilitator) for r in (await conn.execute(
                    sa.select(members.c.user_id, members.c.is_member, members.c.is_facilitator)
                    .where(members.c.cohort_id == row.id))).all()}
                if not {(place.member, True, False), (place.facilitator, False, True)} <= roles:
                    return False
                if place.stranger in {u for u, _, _ in roles}:
                    return False
        return True

    async def people(self) -> set[UserRef]:
        async with self.h.app.engine.connect() as conn:
            rows = (await conn.execute(sa.select(members.c.platform, members.c.user_id))).all()
        return {UserRef(p, u) for p, u in rows}

    async def outbox_after(self, last_id: int) -> list[Message]:
        async with self.h.app.engine.connect() as conn:
            rows = (await conn.execute(sa.select(outbox.c.body).where(outbox.c.id > last_id)
                                       .order_by(outbox.c.id))).all()
        return [Message.from_json(body) for (body,) in rows]

    async def last_outbox_id(self) -> int:
        async with self.h.app.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.max(outbox.c.id)))).scalar() or 0)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The real core on a SQLite file, with a cohort on each platform."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hostile.db'}"
    ensure_schema(url)
    clock, messenger = SimulatedClock(START), RecordingMessenger()
    # (hypothesis sends hundreds of commands within one simulated instant)
    app = build(load_settings(environ={"COHORTBOT_DATABASE__URL": url,
                                       "COHORTBOT_BOT__ADMINS": ADMINS,
                                       "COHORTBOT_BOT__COMMANDS_PER_MINUTE": "1000000"}),
                clock=clock, messengers={"terminal": messenger})
    w = World(Harness(app, messenger, clock))
    try:
        await w.build()
        yield w
    finally:
        await app.close()


# --- inputs ------------------------------------------------------------------------------

INJECTIONS = (
    "@everyone", "@here", "@channel", "@room", "@Room", "@room:example.org", "<!channel>",
    "<!here>", "<!everyone>", "<!here|here>", "<@U123>", "<@U123|boss>", "<@W0ADMIN>",
    "<@U0ANA>", "<!subteam^S0TEAM|@team>", "<#C0GENERAL>", "<#C0GENERAL|general>",
    "&lt;!channel&gt;", "&amp;lt;!here&amp;gt;", "&", "<", ">", "|",
    "<!date^1^{time}|x>", "<https://evil.example|click>", "<mailto:a@b.example>",
    '<a href="https://matrix.to/#/@room:example.org">@room</a>',
    '<a href="https://matrix.to/#/@ana:example.org">Ana</a>',
    "<a href=https://evil.example>click</a>", "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>", "<mx-reply>x</mx-reply>", "&#60;!channel&#62;",
    "https://matrix.to/#/@room:example.org", "*bold*", "`code`", "```", "> quote",
    "[x](https://evil.example)", "@ana", "@ana:example.org", "@fay", "@", "@,", "@.",
    "@" + "a" * 300,
)
CONTROLS = st.one_of(
    st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs", "Co"]),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\x1b[31m", "\x1b]0;pwned\x07",
                     "\u202e", "\u200b", "\ufeff", "\r\n", "\r", "\t", "\x7f", "\u2028",
                     "\u2060", "\x85", "\u00a0"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=0, max_value=20).map(str),
    st.sampled_from(["0", "-0", "+1", "#1", "#-1", "##1", "1e9", "0x10", "1_000", "1.5",
                     "١٢", "１２", "𝟙", "²", "1²", "①", "⑩", "NaN", "inf", "999999999",
                     "9999999999", "0" * 40]),
)
DATES = st.one_of(
    st.builds(lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
              st.integers(min_value=-1, max_value=100_000), st.integers(min_value=0, max_value=13),
              st.integers(min_value=0, max_value=32)),
    st.sampled_from(["0000-01-01", "0001-01-01", "1999-12-31", "2000-01-01", "2100-12-31",
                     "2101-01-01", "9999-12-31", "99999-01-01", "2026-02-29", "2028-02-29",
                     "2026-12-01..2026-11-30", "2026-12-01..2100-12-31", "2026-12-01..",
                     "..2026-12-01", "2026-12-01..2026-12-01..2026-12-02", "２０２６-１２-０１",
                     "2026-12-01T14:00", "2026-12-01 24:00", "2026-12-01 23:60",
                     "2026-03-29 01:30", "2026-10-25 01:30", "-2026-01-01"]),
)
ZONES = st.sampled_from([
    "Mars/Olympus", "Europe/Lond", "europe/london", "EUROPE/LONDON", "UTC", "utc", "Z",
    "GMT+14", "UTC+5", "Etc/GMT+99", "Etc/GMT-14", "EST5EDT", "localtime", "posixrules",
    "Factory", "../../etc/passwd", "/etc/localtime", "Europe/London/..", "Europe\\London",
    "America/Argentina/ComodRivadavia", "Asia/Kathmandu", "Pacific/Kiritimati", "",
    "Europe/" + "x" * 200, "A/" * 300,
])
WORDS = st.sampled_from([
    "next", "all", "to", "confirm", "share", "private", "add", "remove", "moderator",
    "case-giver", "wizard", "on", "off", "moderation", "phases", "question-release",
    "immediate", "batch", "announce-lead", "72h", "90m", "1h30m", "14:00", "25:00", "weekly",
    "tue", "every", "monthly", "first", "dates", "rrule", "FREQ=SECONDLY", "for", "from",
    "until", "--cohort", "--cohort=", "help", "session", "cohort", "ABCD-EFGH-JKLM", "abcd",
])
TOKENS = st.one_of(st.text(max_size=12), st.sampled_from(INJECTIONS), CONTROLS, NUMBERS,
                   DATES, ZONES, WORDS)
TAILS = st.tuples(st.lists(TOKENS, max_size=7), st.sampled_from([" ", " ", "", "\n", "  \t"])
                  ).map(lambda t: t[1].join(t[0]))
FREE_TEXT = st.lists(st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(INJECTIONS),
                               CONTROLS),
                     min_size=1, max_size=8).map(" ".join)


def caller_for(place: Place, kind: str) -> str:
    return {"admin": place.admin, "member": place.member, "facilitator": place.facilitator,
            "stranger": place.stranger}[kind]


PROPERTY = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


async def run_and_check(w: World, platform: str, user: str, text: str, *, dm: bool) -> Reply:
    """Run one command; the one clear reply, rejected → unchanged, and no pings anywhere."""
    inv = w.invocation(platform, user, text, dm=dm)
    before = await w.snapshot()
    people_before = await w.people()
    last = await w.last_outbox_id()
    replies = await w.h.app.bot.handle(inv)
    after = await w.snapshot()
    reply = assert_clear_reply(replies, text)
    body = reply.message.plain()
    event("rejected" if rejected(body) else "accepted")
    if rejected(body):
        assert after == before, (inv.text, body)
    else:
        # Only setting a channel up (create/link there) answers where everyone sees it.
        assert reply.private or parse(inv.text, platform=platform).spec.name in (
            "cohort create", "cohort link"), body
    people_after = await w.people()
    for person in people_after - people_before:
        assert_can_be_mentioned(person)
    known = people_before | people_after | {UserRef(platform, user)}
    assert_cannot_ping(reply.message, known)
    for queued in await w.outbox_after(last):
        assert_cannot_ping(queued, known)
    return reply


async def reset_if_needed(w: World) -> None:
    """When a command archived, paused or unlinked a world's cohort, or took a caller's
    role away (forget-me, members remove…), the next examples get fresh cohorts."""
    if not await w.intact():
        await w.build()


# --- properties (SQLite) -----------------------------------------------------------------


@PROPERTY
@given(spec=st.sampled_from(COMMANDS), tail=TAILS,
       platform=st.sampled_from(sorted(PLACES)),
       kind=st.sampled_from(["admin", "member", "facilitator", "stranger"]),
       dm=st.booleans())
async def test_any_text_after_any_command_gets_one_clear_reply(
    world: World, spec: Spec, tail: str, platform: str, kind: str, dm: bool
) -> None:
    text = f"{spec.name} {tail}"
    if dm:
        text = f"--cohort {world.slugs[platform]} {text}"
    place = world.place(platform)
    await run_and_check(world, platform, caller_for(place, kind), text, dm=dm)
    await reset_if_needed(world)


TEMPLATES = (
    "schedule {n}", "upvote {n}", "action done {n}", "action edit {n} new text",
    "action drop {n} {t}", "away {d}", "back {d}", "away {d}..{d}", "session cancel {d} {t}",
    "session add {d} 14:00", "session move next to {d} 09:30", "session move {d} to {d} 10:00",
    "rotation assign moderator @ben {d}", "tz {z}", "cohort schedule weekly tue 14:00 {z}",
    "cohort schedule every {n} weeks thu 09:30 {z}", "cohort schedule monthly first wed 16:00 {z}",
    "cohort schedule weekly tue 14:00 Europe/London from {d}",
    "cohort schedule weekly tue 14:00 UTC until {d}", "cohort schedule dates {d} 14:00 {z}",
    "cohort schedule daily 14:00 UTC for {n}m", "cohort reminders {n}m {n}h",
    "cohort set announce-lead {n}h", "cohort set phases casting={n}m, closing={n}d",
    "question {t}", "retract {t}",
)


@PROPERTY
@given(template=st.sampled_from(TEMPLATES), n=NUMBERS, d=DATES, z=ZONES, t=FREE_TEXT,
       platform=st.sampled_from(sorted(PLACES)))
async def test_numbers_dates_and_zones_out_of_range(
    world: World, template: str, n: str, d: str, z: str, t: str, platform: str
) -> None:
    text = template.format(n=n, d=d, z=z, t=t)
    await run_and_check(world, platform, user_for(world.place(platform), text), text, dm=False)
    await reset_if_needed(world)


def user_for(place: Place, text: str) -> str:
    """Someone who holds the role the command needs (so that it gets past authorization)."""
    return {"cohort": place.admin, "session": place.facilitator,
            "rotation": place.facilitator}.get(text.split()[0], place.member)


MENTION_TEMPLATES = (
    "cohort members add {m}", "cohort members add {m} {m}", "cohort members remove {m}",
    "cohort facilitators add {m}", "cohort facilitators remove {m}", "swap moderator {m}",
    "swap case-giver {m}", "rotation assign moderator {m}", "rotation assign case-giver {m} next",
)
MENTIONS = st.one_of(
    st.sampled_from(INJECTIONS),
    st.sampled_from(["@ben", "<@U0BEN>", "<@U0BEN|ben>", "@ben:example.org", "<@@ben:example.org>",
                     "@ben,", "@ben:example.org.", "<@U0BEN>,", "@@ben", "@:", "@;", "<@>",
                     "<@ >", "<@U0BEN", "@ben:", "@:example.org", "@ben:example.org:8448"]),
    st.text(max_size=15).map(lambda t: "@" + t),
    st.text(max_size=15).map(lambda t: f"<@{t}>"),
)


@PROPERTY
@given(template=st.sampled_from(MENTION_TEMPLATES), m=MENTIONS,
       platform=st.sampled_from(sorted(PLACES)))
async def test_mentions_in_any_form(world: World, template: str, m: str, platform: str) -> None:
    """Whatever is written where a person goes: a person the bot can mention, or a refusal."""
    text = template.format(m=m)
    await run_and_check(world, platform, user_for(world.place(platform), text), text, dm=False)
    await reset_if_needed(world)


@dataclass(frozen=True)
class Echo:
    """A command that stores user text and shows it again (in a reply or a channel post)."""

    command: str  # with {t} for the user's text
    user: str  # fresh-member (a new member, with room for actions and questions) | facilitator
    #           | admin
    dm: bool = False  # sent in a direct message (with --cohort unless `cohort` is False)
    cohort: bool = True
    then: str | None = None  # a command whose reply shows the text again


ECHOES = (
    Echo("action add {t}", "fresh-member", then="action list"),
    Echo("action add {t}", "fresh-member", then="checkin"),
    Echo("prompt {t}", "facilitator"),
    Echo("ask {t}", "fresh-member", dm=True, then="questions"),
    Echo("session cancel next {t}", "facilitator", then="schedule 2"),
    Echo("cohort create {t}", "admin", dm=True, cohort=False),
)


@PROPERTY
@given(echo=st.sampled_from(ECHOES), t=FREE_TEXT, platform=st.sampled_from(sorted(PLACES)))
async def test_user_text_is_repeated_as_literal_text(
    world: World, echo: Echo, t: str, platform: str
) -> None:
    """What a user typed comes back verbatim, as Text, never as a mention or markup."""
    first = t.split()[:1]
    assume(not first or first[0].lower() != "next")  # (`prompt next …` attaches it)
    place = world.place(platform)
    if echo.user == "fresh-member":
        n = len(await world.people())
        user = {"slack": f"U0NEW{n}", "matrix": f"@new{n}:example.org"}.get(platform, f"new{n}")
        added = await world.handle(platform, place.admin,
                                   f"cohort members add {place.mention(user)}")
        assert "Added" in added[0].message.plain(), added
    else:
        user = caller_for(place, echo.user)
    flag = f"--cohort {world.slugs[platform]} " if echo.dm and echo.cohort else ""
    command = flag + echo.command.format(t=t)
    # What the core receives, after the adapter's decoding, minus the command's words.
    received = world.invocation(platform, user, command, dm=echo.dm).text.split(
        None, len(echo.command.split()) - 1 + len(flag.split()))
    typed = received[-1].strip() if len(received) > len(echo.command.split()) - 1 else ""
    assume(typed)
    literal = " ".join(typed.split()) if echo.command.startswith("cohort create") else typed
    last = await world.last_outbox_id()
    reply = await run_and_check(world, platform, user, command, dm=echo.dm)
    if rejected(reply.message.plain()):
        return  # (too long, a name taken…: checked to change nothing)
    shown: list[Message] = [reply.message, *await world.outbox_after(last)]
    # None of these messages mentions anyone: user text cannot turn into a mention.
    assert not any(m.mentions() for m in shown), shown
    if echo.then is not None:
        then = flag + echo.then
        shown.append((await run_and_check(world, platform, user, then, dm=echo.dm)).message)
    assert any(literal in _parts_text(m) for m in shown), (literal, shown)
    await reset_if_needed(world)


def _parts_text(message: Message) -> str:
    return "".join(p.text for p in message.parts if isinstance(p, Text | Strong))


# --- examples (SQLite and PostgreSQL) ----------------------------------------------------

HUGE = 100_000


def _fill(unit: str) -> str:
    return (unit * (HUGE // len(unit) + 1))[:HUGE]


HUGE_TAILS = {
    "one word": _fill("x"),
    "many words": _fill("word "),
    "many mentions": _fill("@a "),
    "broadcasts": _fill("<!channel> @here "),
    "two-byte letters": _fill("é"),
    "lines": _fill("line\n"),
}


async def _dump(h: Harness) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    async with h.app.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(sa.select(table))).all()
            out[table.name] = sorted(" | ".join(repr(v) for v in row) for row in rows)
    return out


def _caller(spec: Spec) -> str:
    """Someone holding the spec's role in Peer A (bad input is refused before that matters,
    but a refusal for the role would hide what the parser does)."""
    return {Role.ADMIN: "root", Role.FACILITATOR: "fay"}.get(spec.role, "ana")


async def test_a_100_kb_message_after_any_command_is_refused_briefly(harness: Harness) -> None:
    """Every command, followed by 100 000 characters of several shapes: one short private
    refusal each (secret commands sent by DM), nothing stored."""
    await harness.setup_cohort()
    before = await _dump(harness)
    for spec in COMMANDS:
        for shape, tail in HUGE_TAILS.items():
            text = f"{spec.name} {tail}"
            assert len(text) >= HUGE
            channel = None if spec.secret else "peer-a"
            replies = await harness.replies(_caller(spec), text, channel)
            reply = assert_clear_reply(replies, "")
            body = reply.message.plain()
            assert rejected(body), (spec.name, shape, body[:200])
            assert reply.private and len(body) <= MAX_ERROR_REPLY, (spec.name, shape)
            assert_cannot_ping(reply.message, {UserRef("terminal", _caller(spec))})
    assert await _dump(harness) == before


#: (caller, command, what the reply must say) — each refused, changing nothing.
OUT_OF_RANGE: tuple[tuple[str, str, str], ...] = (
    # numbers
    ("ana", "schedule -1", "'-1' is not a number of sessions."),
    ("ana", "schedule 0", "Show between 1 and 12 sessions."),
    ("ana", "schedule 13", "Show between 1 and 12 sessions."),
    ("ana", "schedule 99999999999999999999999999", "is not a number of sessions."),
    ("ana", "schedule 1e3", "'1e3' is not a number of sessions."),
    ("ana", "upvote -7", "'-7' is not a question number."),
    ("ana", "upvote 999999999", "There is no anonymous question #999999999 in Peer A."),
    ("ana", "upvote 0x1f", "is not a question number."),
    ("ana", "action done -1", "'-1' is not an action number."),
    ("ana", "action done 123456789", "You have no open action 123456789"),
    ("ana", "action edit 9999999999 text", "is not an action number."),
    ("root", "cohort reminders -5m", "Can't read the duration '-5m'."),
    ("root", "cohort reminders 0m", "must be more than zero"),
    ("root", "cohort reminders 99999999999999m", "is too long; the maximum is 366 days."),
    ("root", "cohort reminders 15d", "between 1 minute and 14 days"),
    ("root", "cohort set announce-lead 999999999999d", "is too long; the maximum is 366 days."),
    ("root", "cohort set announce-lead -1h", "Can't read the duration '-1h'."),
    ("root", "cohort schedule every 0 weeks thu 09:30 UTC",
     "The interval must be between 1 and 52, not '0'."),
    ("root", "cohort schedule every 99999999999999999999 weeks thu 09:30 UTC",
     "The interval must be between 1 and 52"),
    # what once got through (digits int() cannot read, ids that are no person's, characters
    # a database cannot keep)
    ("ana", "upvote ²", "'²' is not a question number."),
    ("fay", "action done ① ", "is not an action number."),
    ("ana", "schedule ²", "is not a"),
    ("root", "cohort members add @,", "'@,' is not a mention of a person"),
    ("root", "cohort members add @.", "'@.' is not a mention of a person"),
    ("root", "cohort members add @" + "x" * 300, "is not a mention of a person"),
    ("root", "cohort members add @everyone", "'@everyone' is not a mention of a person"),
    ("root", "cohort members add @here", "'@here' is not a mention of a person"),
    ("fay", "rotation assign moderator @channel", "is not a mention of a person"),
    ("ana", "action add a\x00b", "a character I cannot keep"),
    ("ana", "ask hi\x00", "a character I cannot keep"),
    ("root", "cohort create Bad\x00name", "a character I cannot keep"),
    ("ana", "action add \ud800", "a character I cannot keep"),
    ("ana", "next x\nUsage: fake", "Unexpected 'x Usage: fake'"),
    # dates
    ("ana", "away 0000-01-01", "must be between 2000 and 2100"),
    ("ana", "away 99999-01-01", "Can't read the date '99999-01-01'"),
    ("ana", "away 2026-02-30", "There is no date '2026-02-30'"),
    ("ana", "away 2026-12-01..2100-12-31", "A range can span at most a year."),
    ("ana", "away 2026-12-09..2026-12-01", "The range ends before it starts."),
    ("ana", "back 0001-01-01", "must be between 2000 and 2100"),
    ("fay", "session add 0000-01-01 14:00", "must be between 2000 and 2100"),
    ("fay", "session add 99999-01-01 14:00", "Can't read the date and time"),
    ("fay", "session add 2000-01-01 00:00", "That time is in the past."),
    ("fay", "session add 2026-12-01 24:00", "'24:00' is not a valid time"),
    ("fay", "session move next to 2026-12-01 23:60", "is not a valid time"),
    ("fay", "session cancel 1999-12-31", "must be between 2000 and 2100"),
    ("fay", "rotation assign moderator @ben 0000-01-01", "must be between 2000 and 2100"),
    ("root", "cohort schedule dates 0000-01-01 14:00",
     "The year in '0000-01-01' must be between 2000 and 2100."),
    ("root", "cohort schedule weekly tue 14:00 UTC from 99999-01-01",
     "Can't read the date '99999-01-01'."),
    ("root", "cohort schedule weekly tue 14:00 UTC until 1999-12-31",
     "The year in '1999-12-31' must be between 2000 and 2100."),
    # zones
    ("ana", "tz Mars/Olympus", "Unknown time zone 'Mars/Olympus'."),
    ("ana", "tz Europe/Lond", "Did you mean Europe/London?"),
    ("ana", "tz ../../etc/passwd", "Unknown time zone '../../etc/passwd'."),
    ("ana", "tz UTC+5", "Unknown time zone 'UTC+5'."),
    ("ana", "tz Etc/GMT+99", "Unknown time zone 'Etc/GMT+99'."),
    ("ana", "tz " + "Europe/" + "x" * 5000, "Unknown time zone 'Europe/" + "x" * 32 + "…'."),
    ("root", "cohort schedule weekly tue 14:00 Mars/Olympus",
     "Unknown time zone 'Mars/Olympus'."),
    ("root", "cohort schedule weekly tue 14:00 Europe/Lundon",
     "Unknown time zone 'Europe/Lundon'. Did you mean Europe/London?"),
)


async def test_numbers_dates_and_zones_out_of_range_are_refused(harness: Harness) -> None:
    await harness.setup_cohort()
    before = await _dump(harness)
    for user, text, expected in OUT_OF_RANGE:
        reply = assert_clear_reply(await harness.replies(user, text), text)
        body = reply.message.plain()
        assert rejected(body) and reply.private, (text, body)
        assert expected in body, (text, body)
        # (a schedule error lists the schedule forms as its usage)
        assert re.search(r"\nUsage: (/cohort \S|Schedule forms)", body), (text, body)
    assert await _dump(harness) == before


#: (caller, command, what the reply must say) — extreme, valid, accepted (in this order).
EXTREME_BUT_VALID: tuple[tuple[str, str, str], ...] = (
    ("ana", "away 2100-12-31", "Noted: you are away 2100-12-31."),
    ("ana", "away 2026-12-01..2027-12-01", "Noted: you are away 2026-12-01 to 2027-12-01."),
    ("fay", "session add 2100-12-31 23:59", "Added a session on Fri 31 Dec 2100, 23:59 GMT."),
    ("ana", "schedule 12", "Upcoming sessions of Peer A:"),
    ("ana", "tz europe/london", "Times are now shown to you in Europe/London."),
    ("ana", "tz Pacific/Kiritimati", "Times are now shown to you in Pacific/Kiritimati."),
    ("root", "cohort reminders 14d 1m", "go out 14 days, 1 min before each session."),
    ("root", "cohort schedule weekly tue 14:00 Pacific/Kiritimati until 2100-12-31",
     "Schedule for Peer A"),
)


async def test_extreme_but_valid_values_are_accepted(harness: Harness) -> None:
    await harness.setup_cohort()
    for user, text, expected in EXTREME_BUT_VALID:
        reply = assert_clear_reply(await harness.replies(user, text), text)
        body = reply.message.plain()
        assert not rejected(body), (text, body)
        assert expected in body, (text, body)


@pytest.mark.parametrize("text", [
    "prompt @everyone <!channel> <!here> @here @room <@U123> <a href=https://x.example>x</a>",
    "prompt &lt;!channel&gt; <script>alert(1)</script> **hi** <@U0ANA|ana>",
    "session cancel next <!everyone> @room:example.org is away",
    "cohort create <!channel> Peers @here",
])
async def test_markup_in_channel_posts_is_literal(harness: Harness, text: str) -> None:
    """Text a facilitator or admin posts to the channel goes out as literal Text parts."""
    await harness.setup_cohort()
    harness.clear()
    user = "root" if text.startswith("cohort") else "fay"
    channel = "peer-b" if text.startswith("cohort") else "peer-a"
    replies = await harness.replies(user, text, channel)
    reply = assert_clear_reply(replies, text)
    assert not rejected(reply.message.plain()), reply.message.plain()
    await harness.app.dispatcher.run_due()
    shown = [reply.message] + [s.message for s in harness.messenger.sent]
    typed = text.split(None, 3 if text.startswith("session") else
                       2 if text.startswith("cohort") else 1)[-1]
    assert any(typed in _parts_text(m) for m in shown), (typed, shown)
    for message in shown:
        assert not message.mentions(), message
        assert_cannot_ping(message, set())

