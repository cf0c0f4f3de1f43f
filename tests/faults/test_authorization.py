"""The authorization matrix, generated from the command table.

Every command in `bot.chat.grammar.COMMANDS` is run by every kind of caller in the first
cohort's channel: a member of that cohort, its facilitator, the facilitator of *another*
cohort, an admin and a stranger. Whoever ranks below the role the command's spec requires
gets a private refusal naming the role, and nothing in the database changes (the outbox
included); whoever ranks at or above it never gets a permission refusal.

The commands are not listed here by hand: each spec needs an example in `EXAMPLES`, and a
command added to the grammar without one makes `test_every_command_has_a_valid_example` fail.
Commands marked `secret` (they tie the caller to an anonymous question) go by direct message
with `--cohort <id>`, as a client would send them; typed where the channel sees them they are
refused before anything runs, which is checked here for every caller too.

Cells run one after another on one database per test; when an allowed command changes a
cohort or its memberships (archive, forget-me, members remove…), the next cells get fresh
cohorts in fresh channels, so every cell meets the callers in the roles it expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from bot.chat.grammar import COMMANDS, Role, Spec, parse
from bot.db.tables import metadata
from bot.domain.refs import ChannelRef, UserRef
from bot.service.api import Invocation, Reply
from tests.conftest import Harness

#: A syntactically valid invocation of each command (what follows its words).
EXAMPLES: dict[str, str] = {
    "help": "next",
    "next": "",
    "schedule": "3",
    "away": "next",
    "back": "all",
    "swap accept": "",
    "swap decline": "",
    "swap": "moderator @ben",
    "action add": "Ask my manager about the budget",
    "action list": "",
    "action done": "1 it went well",
    "action partly": "1",
    "action notyet": "1 next week",
    "action drop": "1",
    "action edit": "1 Ask my manager about the travel budget",
    "checkin share": "",
    "checkin private": "",
    "checkin": "",
    "ask": "How do you say no to a senior colleague?",
    "questions review": "",
    "questions": "",
    "question": "ABCD-EFGH-JKLM",
    "upvote": "1",
    "retract": "ABCD-EFGH-JKLM",
    "tz": "Europe/Berlin",
    "my-data": "",
    "forget-me": "confirm",
    "prompt": "What surprised you this week?",
    "session start": "",
    "session next": "",
    "session end": "",
    "session cancel": "next the room is booked",
    "session move": "next to 2026-12-03 15:00",
    "session add": "2026-12-10 14:00",
    "approve": "abcd",
    "return": "abcd please make it less specific",
    "release": "",
    "summary": "",
    "rotation assign": "moderator @ben",
    "cohort create": "Peer Z",
    "cohort link": "",
    "cohort list": "",
    "cohort show": "",
    "cohort schedule": "weekly wed 10:00 Europe/Berlin for 60m",
    "cohort members add": "@zoe",
    "cohort members remove": "@eli",
    "cohort facilitators add": "@ben",
    "cohort facilitators remove": "@fay",
    "cohort roles": "case-giver moderator",
    "cohort reminders": "2h 30m",
    "cohort set": "moderation on",
    "cohort pause": "",
    "cohort resume": "",
    "cohort archive": "",
    "cohort unlink": "",
    "cohort rename": "Peer Z",
}

WORD = "/cohort"  # how commands are written on the terminal platform


def _listed(help_reply: str, spec: Spec) -> bool:
    """Whether `help` lists `spec`, alone or merged with its neighbours ("swap accept|decline")."""
    stem = " ".join((WORD, *spec.words[:-1]))
    for line in help_reply.split("\n"):
        for form in line.split(": ", 1)[-1].strip().split(" · "):
            words = form.split()
            n = len(spec.words)
            if " ".join(words[:n]) == stem and len(words) > n \
                    and spec.words[-1] in words[n].split("|"):
                return True
    return False
PLATFORM = "terminal"


@dataclass(frozen=True)
class Caller:
    kind: str
    user: str
    role: Role  # what they are in the first cohort


CALLERS = (
    Caller("member", "ana", Role.MEMBER),
    Caller("facilitator", "fay", Role.FACILITATOR),
    Caller("facilitator-of-another-cohort", "gus", Role.ANYONE),
    Caller("admin", "root", Role.ADMIN),
    Caller("stranger", "zed", Role.ANYONE),
)


def invocation_text(spec: Spec) -> str:
    args = EXAMPLES[spec.name]
    return f"{spec.name} {args}".strip()


def refusal(spec: Spec, cohort: str) -> str:
    """The first line of the bus's refusal for a caller below `spec.role`."""
    what = f"'{spec.name}'"
    if spec.role == Role.ADMIN:
        return f"Only an admin can use {what}."
    if spec.role == Role.FACILITATOR:
        return f"Only a facilitator of {cohort} can use {what}."
    return f"Only members of {cohort} can use {what}."


#: How a refusal for lack of a role or membership starts, from the bus or from a handler
#: (context.py); a refused command's reply is that line, then the usage line.
REFUSALS = ("Only an admin can use ", "Only a facilitator of ", "Only members of ",
            "This is for members of ")


def refused(body: str, cohort: str) -> bool:
    first = body.split("\n")[0]
    return first.startswith(REFUSALS) or first == f"{cohort} is archived."
#: The bus's replies to an unexpected exception or an outage.
BROKEN = ("Something went wrong on our side", "temporarily unavailable")


def test_every_command_has_a_valid_example() -> None:
    names = [spec.name for spec in COMMANDS]
    missing = [name for name in names if name not in EXAMPLES]
    assert not missing, f"add an example invocation for {missing} to EXAMPLES"
    assert sorted(set(EXAMPLES) - set(names)) == [], "EXAMPLES names commands that are gone"
    for spec in COMMANDS:
        parsed = parse(invocation_text(spec), platform=PLATFORM)
        assert parsed.spec is spec, f"{invocation_text(spec)!r} parses as {parsed.spec.name!r}"
    # The matrix means something only if every role level is represented.
    assert {spec.role for spec in COMMANDS} == set(Role)
    assert any(spec.secret for spec in COMMANDS)


def test_refusal_wording_is_what_the_matrix_expects() -> None:
    spec = next(s for s in COMMANDS if s.role == Role.FACILITATOR)
    assert refusal(spec, "Peer A") == f"Only a facilitator of Peer A can use '{spec.name}'."


Snapshot = dict[str, list[str]]


async def snapshot(h: Harness) -> Snapshot:
    """Every row of every table, as sorted text (seen_events included: none are used here)."""
    out: Snapshot = {}
    async with h.app.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(sa.select(table))).all()
            out[table.name] = sorted(" | ".join(repr(v) for v in row) for row in rows)
    return out


@dataclass
class World:
    """The first cohort (where every cell runs) and a second one with its own facilitator."""

    h: Harness
    generation: int = 0
    name: str = ""
    slug: str = ""
    channel: str = ""

    async def build(self) -> None:
        self.generation += 1
        n = self.generation
        suffix = "" if n == 1 else f" {n}"
        self.name, self.channel = f"Peer A{suffix}", f"peer-a{suffix.replace(' ', '-')}"
        self.slug = self.channel
        other, other_channel = f"Peer B{suffix}", f"peer-b{suffix.replace(' ', '-')}"
        setup = [
            (self.channel, f"cohort create {self.name}", f"(id {self.slug})"),
            (self.channel, "cohort schedule weekly tue 14:00 Europe/London for 90m",
             "Schedule"),
            (self.channel, "cohort members add @ana @ben @cleo @dev @eli", "Added"),
            (self.channel, "cohort facilitators add @fay", "now facilitates"),
            (other_channel, f"cohort create {other}", "Created"),
            (other_channel, "cohort members add @hal @ivy", "Added"),
            (other_channel, "cohort facilitators add @gus", "now facilitates"),
        ]
        for channel, text, expected in setup:
            replies = await self.run("root", text, channel)
            assert expected in replies[0].message.plain(), (text, replies)

    async def run(self, user: str, text: str, channel: str | None,
                  *, seen_by_channel: bool = False) -> list[Reply]:
        return await self.h.app.bot.handle(Invocation(
            user=UserRef(PLATFORM, user), text=text,
            channel=ChannelRef(PLATFORM, channel) if channel else None,
            seen_by_channel=seen_by_channel,
        ))

    async def cell(self, caller: Caller, spec: Spec) -> list[Reply]:
        text = invocation_text(spec)
        if spec.secret:
            # As a client sends it: privately, naming the cohort.
            return await self.run(caller.user, f"--cohort {self.slug} {text}", None)
        return await self.run(caller.user, text, self.channel)


def _texts(replies: list[Reply]) -> str:
    return "\n".join(r.message.plain() for r in replies)


@pytest.mark.parametrize("caller", CALLERS, ids=[c.kind for c in CALLERS])
async def test_authorization_matrix(harness: Harness, caller: Caller) -> None:
    world = World(harness)
    await world.build()
    # The callers are who the matrix says they are.
    help_reply = _texts(await world.run(caller.user, "help", world.channel))
    assert f"(as {caller.role.label})" in help_reply, help_reply
    # …and `help` lists exactly what they may run.
    for spec in COMMANDS:
        assert _listed(help_reply, spec) == (caller.role >= spec.role), (caller.kind, spec.name)

    state = await snapshot(harness)
    denied = allowed = 0
    for spec in COMMANDS:
        where = f"{caller.kind} × {invocation_text(spec)!r}"
        replies = await world.cell(caller, spec)
        after = await snapshot(harness)
        assert len(replies) == 1, (where, replies)
        reply = replies[0]
        body = reply.message.plain()
        assert not any(b in body for b in BROKEN), (where, body)
        if caller.role < spec.role:
            denied += 1
            expected = refusal(spec, world.name)
            assert reply.private, where
            assert body.split("\n")[0] == expected, (where, body)
            assert f"\nUsage: {spec.usage(WORD)}" in body, (where, body)
            for table in state:
                assert after[table] == state[table], (where, table)
            continue
        allowed += 1
        if refused(body, world.name) and caller.role == Role.ADMIN and spec.role == Role.MEMBER:
            # The admin holds every role but is nobody's member: a command about the
            # caller's own membership (their role, actions, absences…) may say so (from
            # context.py), never refuse the role itself.
            assert body.startswith(f"This is for members of {world.name}, and you are not "
                                   "one"), (where, body)
        else:
            assert not refused(body, world.name), (where, body)
        # Only setting up a channel (cohort create/link) may answer where everyone sees it.
        assert reply.private or (spec.role == Role.ADMIN and not spec.needs_cohort), where
        if after["cohorts"] != state["cohorts"] or after["members"] != state["members"]:
            await world.build()  # fresh cohorts for the cells that follow
            after = await snapshot(harness)
        state = after
    expected_denied = sum(1 for s in COMMANDS if caller.role < s.role)
    assert (denied, allowed) == (expected_denied, len(COMMANDS) - expected_denied)


@pytest.mark.parametrize("caller", CALLERS, ids=[c.kind for c in CALLERS])
async def test_denied_through_cohort_flag_in_a_direct_message(harness: Harness,
                                                              caller: Caller) -> None:
    """The same refusals when the cohort is named with --cohort from a direct message
    (where the facilitator of another cohort would otherwise reach their own)."""
    world = World(harness)
    await world.build()
    state = await snapshot(harness)
    for spec in COMMANDS:
        if caller.role >= spec.role:
            continue
        text = f"--cohort {world.slug} {invocation_text(spec)}"
        replies = await world.run(caller.user, text, None)
        assert len(replies) == 1 and replies[0].private, (caller.kind, text)
        body = replies[0].message.plain()
        assert body.split("\n")[0] == refusal(spec, world.name), (caller.kind, text, body)
        assert await snapshot(harness) == state, (caller.kind, text)


@pytest.mark.parametrize("caller", CALLERS, ids=[c.kind for c in CALLERS])
async def test_secret_commands_seen_by_the_channel_do_nothing(harness: Harness,
                                                              caller: Caller) -> None:
    """A secret command typed where everyone sees it (a Matrix room message) is not run, by
    anyone, whatever their role: the reply goes by DM and asks for the message to go."""
    world = World(harness)
    await world.build()
    state = await snapshot(harness)
    secret = [spec for spec in COMMANDS if spec.secret]
    assert secret
    for spec in secret:
        text = invocation_text(spec)
        replies = await world.run(caller.user, text, world.channel, seen_by_channel=True)
        assert len(replies) == 1, (caller.kind, text)
        reply = replies[0]
        assert reply.private and reply.direct and reply.withdraw, (caller.kind, text)
        body = reply.message.plain()
        assert "Everyone in the channel can see that message" in body, body
        assert f"{WORD} {spec.name}" in body, body
        assert EXAMPLES[spec.name] not in body  # the secret is not repeated
        assert await snapshot(harness) == state, (caller.kind, text)
