"""The one command grammar: text after `/cohort` or `!cohort` → a typed `Command`.

The command table below is the single source of the grammar, the usage lines, the help text
and the role each command needs. Parsing is pure: mentions arrive in the platform's own form
(`<@U123|ana>` on Slack, `@ana:example.org` on Matrix, `@ana` in the terminal) and become
`UserRef`s; dates and times are parsed but not resolved against any zone or clock here.
Errors are `UsageError`s whose message says what was wrong and which carry the usage line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from bot.chat import commands as c
from bot.domain.errors import UserError
from bot.domain.refs import UserRef
from bot.domain.timeparse import parse_date, parse_duration, parse_local_datetime, parse_time

MAX_TEXT = 2000  # questions and prompts
MAX_SHORT_TEXT = 300  # actions, notes, reasons
MAX_NAME = 60


class Role(IntEnum):
    ANYONE = 0
    MEMBER = 1
    FACILITATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return {0: "anyone", 1: "member", 2: "facilitator", 3: "admin"}[int(self)]


class UsageError(UserError):
    """Input that does not fit the grammar; `usage` is the line that would have."""

    #: The words were near a command that ties its sender to an anonymous question ("aks"
    #: for "ask"): the message that carried them is withdrawn like that command's would be.
    near_secret: bool = False


_MENTION = re.compile(r"^<@([^>|\s]+)(?:\|[^>]*)?>$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_ROLE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
_NUMBER = re.compile(r"[0-9]{1,9}")
_WEEKDAY = re.compile(r"mon(day)?|tue(s|sday)?|wed(nesday)?|thu(r|rs|rsday)?|fri(day)?|"
                      r"sat(urday)?|sun(day)?", re.ASCII)


class Args:
    """The words after a command's own words, consumed left to right."""

    def __init__(self, remainder: str, platform: str, usage: str, word: str = "cohort") -> None:
        self.remainder = remainder.strip()
        self.platform = platform
        self.usage = usage
        self.prefix = word  # the command word, for hints: "/cohort"

    def fail(self, message: str) -> UsageError:
        return UsageError(message, usage=self.usage)

    @property
    def empty(self) -> bool:
        return not self.remainder

    def peek(self) -> str | None:
        return self.remainder.split(None, 1)[0] if self.remainder else None

    def word(self, what: str) -> str:
        if not self.remainder:
            raise self.fail(f"Missing {what}.")
        head, *tail = self.remainder.split(None, 1)
        self.remainder = tail[0] if tail else ""
        return head

    def optional_word(self) -> str | None:
        return self.word("") if self.remainder else None

    def rest(self, what: str, *, limit: int = MAX_TEXT, required: bool = True) -> str:
        text, self.remainder = self.remainder, ""
        if not text and required:
            raise self.fail(f"Missing {what}.")
        if len(text) > limit:
            raise self.fail(f"The {what} is too long ({len(text)} characters; at most {limit}).")
        return text

    def optional_rest(self, what: str, *, limit: int = MAX_SHORT_TEXT) -> str | None:
        return self.rest(what, limit=limit, required=False) or None

    def done(self) -> None:
        if self.remainder:
            raise self.fail(f"Unexpected '{_short(self.remainder, 40)}'.")

    def mention(self) -> UserRef:
        token = self.word("a member (mention them with @)")
        user = parse_mention(token, self.platform)
        if user is None:
            raise self.fail(f"'{_short(token)}' is not a mention of a person (use @name).")
        return user

    def mentions(self) -> tuple[UserRef, ...]:
        users = [self.mention()]
        while self.remainder:
            users.append(self.mention())
        if len(users) > 50:
            raise self.fail("At most 50 people at once.")
        return tuple(dict.fromkeys(users))

    def number(self, what: str) -> int:
        token = self.word(what).lstrip("#")
        if not _NUMBER.fullmatch(token):  # (ASCII digits: str.isdigit() also takes "²")
            raise self.fail(f"'{_short(token)}' is not {_article(what)} {what}.")
        return int(token)

    def dayref(self, *, allow_next: bool = True) -> c.DayRef:
        token = self.word("a day (next, tue, next week, 2026-12-01 or 2026-12-01..2026-12-15)")
        low = token.lower()
        following = (self.peek() or "").lower()
        if low in ("next", "this") and following == "week":
            self.word("week")
            return c.DayRef(relative=f"{low}-week")
        if low == "next" and following[:3] in c.WEEKDAYS and _WEEKDAY.fullmatch(following):
            self.word("a day")  # "next tue": the coming Tuesday
            return c.DayRef(relative=following[:3])
        if low == "next" and allow_next:
            return c.DayRef(next=True)
        if low in ("today", "tomorrow"):
            return c.DayRef(relative=low)
        if _WEEKDAY.fullmatch(low):
            return c.DayRef(relative=low[:3])
        first_s, sep, last_s = token.partition("..")
        try:
            first = parse_date(first_s)
            last = parse_date(last_s) if sep else first
        except UserError as e:
            raise self.fail(e.message) from None
        if last < first:
            raise self.fail("The range ends before it starts.")
        if (last - first).days > 366:
            raise self.fail("A range can span at most a year.")
        return c.DayRef(first=first, last=last)

    def datetime(self) -> datetime | c.DayTime:
        text = self.rest("a date and time like 2026-12-01 14:00", limit=40)
        try:
            return parse_local_datetime(text)
        except UserError as e:
            words = text.lower().split()
            if words[:1] == ["next"]:
                words = words[1:]
            day = words[0] if words else ""
            if len(words) >= 2 and (day in ("today", "tomorrow") or _WEEKDAY.fullmatch(day)):
                try:
                    at = parse_time(" ".join(words[1:]))
                except UserError as bad_time:
                    raise self.fail(bad_time.message) from None
                return c.DayTime(day=c.DayRef(relative=day if day in ("today", "tomorrow")
                                              else day[:3]), at=at)
            raise self.fail(e.message) from None


def _short(text: str, limit: int = 30) -> str:
    """User input quoted back on one line: whitespace and control characters collapsed."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


#: What a person's id looks like on each platform (Slack: U… or W…; Matrix: @local:server).
_USER_ID = {
    "slack": re.compile(r"[UW][A-Z0-9]{0,31}"),
    "matrix": re.compile(r"@[A-Za-z0-9._=/+-]+:[A-Za-z0-9.:\[\]-]+"),
}
_OTHER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Words that address everyone in a room on some platform: never a person.
BROADCAST = frozenset({"here", "channel", "everyone", "all", "room"})


def parse_mention(token: str, platform: str) -> UserRef | None:
    """A mention of a person in any form a client sends, or None (also for a broadcast
    such as @here, and for anything that is not an id on `platform`)."""
    m = _MENTION.match(token)
    if m:
        ident = m.group(1)
        if platform == "slack":
            ident = ident.lstrip("@")
    elif token.startswith("@") and len(token) > 1:
        # Matrix ids keep their sigil (@ana:example.org); elsewhere the @ is only a marker.
        ident = (token if platform == "matrix" else token[1:]).rstrip(",.;")
    else:
        return None
    valid = _USER_ID.get(platform, _OTHER_ID)
    if len(ident) > 255 or not valid.fullmatch(ident) or ident.lower() in BROADCAST:
        return None
    return UserRef(platform, ident)


@dataclass(frozen=True, slots=True)
class Spec:
    words: tuple[str, ...]
    args: str  # the usage after the words
    summary: str
    role: Role
    build: Callable[[Args], c.Command]
    needs_cohort: bool = True
    #: Running it ties the caller to an anonymous question: never from where others can see,
    #: and its reply (a code, a question's fate, an upvote) is fleeting (`Reply.fleeting`).
    secret: bool = False

    @property
    def name(self) -> str:
        return " ".join(self.words)

    @property
    def shareable(self) -> bool:
        """Its confirmation reveals nothing private (see `Reply.shareable`)."""
        return self.name in SHAREABLE

    def usage(self, word: str) -> str:
        return f"{word} {self.name}{' ' + self.args if self.args else ''}"


def _no_args(command: c.Command) -> Callable[[Args], c.Command]:
    def build(a: Args) -> c.Command:
        a.done()
        return command

    return build


def _schedule(a: Args) -> c.Command:
    first = (a.peek() or "").lower()
    if first and not _NUMBER.fullmatch(first.lstrip("#")):
        raise a.fail(f"'{_short(first)}' is not a number of sessions. To set the schedule: "
                     f"{a.prefix} cohort schedule weekly tue 14:00 Europe/London for 90m.")
    count = a.number("number of sessions") if not a.empty else 4
    a.done()
    if not 1 <= count <= 12:
        raise a.fail("Show between 1 and 12 sessions.")
    return c.ShowSchedule(count=count)


def _back(a: Args) -> c.Command:
    if a.empty or (a.peek() or "").lower() == "all":
        a.optional_word()
        a.done()
        return c.Back(when=None)
    when = a.dayref()
    a.done()
    return c.Back(when=when)


def _away(a: Args) -> c.Command:
    when = a.dayref()
    a.done()
    return c.Away(when=when)


def _swap(a: Args) -> c.Command:
    role = a.word("a role").lower()
    other = a.mention()
    a.done()
    return c.RequestSwap(role=role, other=other)


def _answer(answer: str) -> Callable[[Args], c.Command]:
    def build(a: Args) -> c.Command:
        number = a.number("action number")
        note = a.optional_rest("note")
        return c.AnswerAction(number=number, answer=answer, note=note)

    return build


def _action_edit(a: Args) -> c.Command:
    number = a.number("action number")
    return c.EditAction(number=number, text=a.rest("action text", limit=MAX_SHORT_TEXT))


def _tz(a: Args) -> c.Command:
    zone = a.optional_word()
    a.done()
    return c.SetTimezone(zone=zone)


def _forget(a: Args) -> c.Command:
    word = a.optional_word()
    a.done()
    if word not in (None, "confirm"):
        raise a.fail(f"'{_short(word or '')}': type 'confirm' to go ahead.")
    return c.ForgetMe(confirmed=word == "confirm")


def _release(a: Args) -> c.Command:
    word = a.optional_word()
    a.done()
    if word not in (None, "confirm"):
        raise a.fail(f"'{_short(word or '')}': type '{a.prefix} release confirm' to post even a "
                     "small batch.")
    return c.ReleaseQuestions(confirm=word == "confirm")


def _prompt(a: Args) -> c.Command:
    attach = (a.peek() or "").lower() == "next"
    if attach:
        a.word("next")
    return c.PostPrompt(text=a.rest("prompt text"), next_session=attach)


def _cancel(a: Args) -> c.Command:
    when = a.dayref()
    return c.CancelSession(when=when, reason=a.optional_rest("reason"))


def _move(a: Args) -> c.Command:
    when = a.dayref()
    if (a.optional_word() or "").lower() != "to":
        raise a.fail("Say where to: '… to 2026-12-03 14:00'.")
    return c.MoveSession(when=when, to=a.datetime())


def _add_session(a: Args) -> c.Command:
    return c.AddSession(at=a.datetime())


def _review_id(a: Args) -> str:
    token = a.word("question id").lower().lstrip("#")
    if not re.fullmatch(r"[a-z0-9]{2,12}", token):
        raise a.fail(f"'{_short(token)}' is not a question id from "
                     f"'{a.prefix} questions review'.")
    return token


def _approve(a: Args) -> c.Command:
    rid = _review_id(a)
    a.done()
    return c.ApproveQuestion(review_id=rid)


def _return(a: Args) -> c.Command:
    rid = _review_id(a)
    return c.ReturnQuestion(review_id=rid, note=a.optional_rest("note"))


def _assign(a: Args) -> c.Command:
    role = a.word("a role").lower()
    member = a.mention()
    when = a.dayref() if not a.empty else c.DayRef(next=True)
    a.done()
    return c.AssignRole(role=role, member=member, when=when)


def _cohort_name(a: Args) -> str:
    name = " ".join(a.rest("cohort name", limit=MAX_NAME).split())
    if not re.search(r"[A-Za-z0-9]", name):
        raise a.fail("A cohort name needs at least one letter or digit.")
    return name


def _create(a: Args) -> c.Command:
    return c.CreateCohort(name=_cohort_name(a))


def _archive(a: Args) -> c.Command:
    word = a.optional_word()
    a.done()
    if word not in (None, "confirm"):
        raise a.fail(f"'{_short(word or '')}': type 'confirm' to go ahead.")
    return c.ChangeCohortStatus(status="archive", confirmed=word == "confirm")


def _link(a: Args) -> c.Command:
    if len(a.remainder.split()) > 1:  # "cohort link Peer A": a name, answered with its id
        return c.LinkCohort(slug=None, name=_cohort_name(a))
    slug = a.optional_word()
    a.done()
    if slug is not None and not _SLUG.match(slug.lower()):
        raise a.fail(f"'{_short(slug)}' is not a cohort id (see '{a.prefix} cohort list').")
    return c.LinkCohort(slug=slug.lower() if slug else None)


def _members(add: bool, facilitators: bool) -> Callable[[Args], c.Command]:
    def build(a: Args) -> c.Command:
        users = a.mentions()
        if facilitators:
            return c.ChangeFacilitators(add=add, users=users)
        return c.ChangeMembers(add=add, users=users)

    return build


def _roles(a: Args) -> c.Command:
    roles = tuple(r.lower() for r in a.rest("roles", limit=400).replace(",", " ").split())
    for r in roles:
        if not _ROLE.match(r):
            raise a.fail(f"'{_short(r)}' is not a role name (letters, digits and '-').")
    if len(set(roles)) != len(roles):
        raise a.fail("Each role can be named once.")
    if not 1 <= len(roles) <= 8:
        raise a.fail("A cohort has between 1 and 8 roles.")
    return c.SetRoles(roles=roles)


def _reminders(a: Args) -> c.Command:
    words = a.rest("offsets", limit=200).replace(",", " ").split()
    if [w.lower() for w in words] in (["off"], ["none"]):
        return c.SetReminders(offsets_min=())
    offsets: list[int] = []
    for w in words:
        try:
            td = parse_duration(w)
        except UserError as e:
            raise a.fail(e.message) from None
        offsets.append(int(td.total_seconds() // 60))
    if len(offsets) > 6:
        raise a.fail("At most 6 reminders per session.")
    if any(o < 1 or o > 14 * 24 * 60 for o in offsets):
        raise a.fail("Reminders go between 1 minute and 14 days before a session.")
    return c.SetReminders(offsets_min=tuple(sorted(set(offsets), reverse=True)))


def _set(a: Args) -> c.Command:
    if a.empty:
        return c.SetCohortOption(key=None, value=None)
    key = a.word("a setting").lower()
    value = a.optional_rest("value", limit=400)
    return c.SetCohortOption(key=key, value=value)


def _help(a: Args) -> c.Command:
    topic = a.optional_rest("topic", limit=60)
    return c.Help(topic=topic.lower() if topic else None)


M, F, A, ANY = Role.MEMBER, Role.FACILITATOR, Role.ADMIN, Role.ANYONE

#: The setup and facilitator actions whose confirmation reveals nothing private: a platform
#: without ephemeral replies may show it where the command was typed (`Reply.shareable`).
SHAREABLE = frozenset({
    "cohort create", "cohort link", "cohort schedule", "cohort members add",
    "cohort members remove", "cohort facilitators add", "cohort facilitators remove",
    "cohort roles", "cohort reminders", "cohort set", "cohort pause", "cohort resume",
    "cohort archive", "cohort unlink", "cohort rename", "prompt", "release", "session start",
    "session next", "session end",
    "session cancel", "session move", "session add", "rotation assign",
})

#: The grammar. Order matters only for help listings; matching takes the longest word run.
COMMANDS: tuple[Spec, ...] = (
    Spec(("help",), "[command]", "what you can do here, or how to use one command", ANY, _help,
         needs_cohort=False),
    Spec(("next",), "", "the next session, your role and your open actions", M,
         _no_args(c.Next())),
    Spec(("schedule",), "[n]", "the next n sessions with their roles", M, _schedule),
    Spec(("away",), "<next|tue|next week|date|date..date>",
         "say you will miss sessions (no pings for them)", M, _away),
    Spec(("back",), "[next|tue|next week|date|date..date|all]", "undo an away", M, _back),
    Spec(("swap", "accept"), "", "accept the role swap someone asked you for", M,
         _no_args(c.AnswerSwap(accept=True))),
    Spec(("swap", "decline"), "", "decline the role swap someone asked you for", M,
         _no_args(c.AnswerSwap(accept=False))),
    Spec(("swap",), "<role> @member", "ask a member to take your role next session", M, _swap),
    Spec(("action", "add"), "<text>", "record a small action until the next session", M,
         lambda a: c.AddAction(text=a.rest("action text", limit=MAX_SHORT_TEXT))),
    Spec(("action", "list"), "", "your open actions", M, _no_args(c.ListActions())),
    Spec(("action", "done"), "<n> [note]", "check-in: you did action n", M, _answer("done")),
    Spec(("action", "partly"), "<n> [note]", "check-in: you partly did action n", M,
         _answer("partly")),
    Spec(("action", "notyet"), "<n> [note]", "check-in: not yet (it carries over)", M,
         _answer("notyet")),
    Spec(("action", "drop"), "<n> [note]", "check-in: you dropped action n", M,
         _answer("dropped")),
    Spec(("action", "edit"), "<n> <text>", "change the text of action n", M, _action_edit),
    Spec(("checkin", "share"), "", "show your own check-in lines in the summary", M,
         _no_args(c.ShareCheckins(share=True))),
    Spec(("checkin", "private"), "", "only counts of your check-in in the summary (default)", M,
         _no_args(c.ShareCheckins(share=False))),
    Spec(("checkin",), "", "your check-in for the next session", M, _no_args(c.ShowCheckin())),
    Spec(("ask",), "<question>", "ask the group anonymously", M,
         lambda a: c.AskQuestion(text=a.rest("question")), secret=True),
    Spec(("questions", "review"), "", "pending anonymous questions to approve or return", F,
         _no_args(c.ReviewQuestions())),
    Spec(("questions",), "", "the anonymous questions released so far", M,
         _no_args(c.ListQuestions())),
    Spec(("question",), "<code>", "what happened to the question you asked", ANY,
         lambda a: c.QuestionStatus(code=a.rest("code", limit=40)), needs_cohort=False,
         secret=True),
    Spec(("upvote",), "<question number>", "privately upvote an anonymous question", M,
         lambda a: c.Upvote(number=a.number("question number")), secret=True),
    Spec(("retract",), "<code>", "withdraw a question you asked, with its code", ANY,
         lambda a: c.Retract(code=a.rest("code", limit=40)), needs_cohort=False, secret=True),
    Spec(("tz",), "[Area/City]", "show or set your time zone", ANY, _tz, needs_cohort=False),
    Spec(("my-data",), "", "what the bot keeps about you", ANY, _no_args(c.MyData()),
         needs_cohort=False),
    Spec(("forget-me",), "[confirm]", "delete everything the bot keeps about you", ANY,
         _forget, needs_cohort=False),
    Spec(("prompt",), "[next] <text>", "post a prompt now, or at the start of the next session",
         F, _prompt),
    Spec(("session", "start"), "", "start the session's guided phases", F,
         _no_args(c.SessionStart())),
    Spec(("session", "next"), "", "move on to the next phase", F, _no_args(c.SessionNext())),
    Spec(("session", "end"), "", "end the session", F, _no_args(c.SessionEnd())),
    Spec(("session", "cancel"), "<next|date> [reason]", "cancel a session", F, _cancel),
    Spec(("session", "move"), "<next|date> to <date|tue|tomorrow> <time>", "move a session", F,
         _move),
    Spec(("session", "add"), "<date|tue|tomorrow> <time>", "add a one-off session", F,
         _add_session),
    Spec(("approve",), "<id>", "approve an anonymous question", F, _approve),
    Spec(("return",), "<id> [note]", "return an anonymous question to its author", F, _return),
    Spec(("release",), "[confirm]", "post the waiting anonymous questions now", F, _release),
    Spec(("summary",), "", "the check-in summary for the next session so far", F,
         _no_args(c.ShowSummary())),
    Spec(("rotation", "assign"), "<role> @member [next|date]", "give a role to a member", F,
         _assign),
    Spec(("cohort", "create"), "<name>", "create a cohort (linked to this channel)", A,
         _create, needs_cohort=False),
    Spec(("cohort", "link"), "[cohort-id]", "link a cohort to this channel", A, _link,
         needs_cohort=False),
    Spec(("cohort", "list"), "", "all cohorts", A, _no_args(c.ListCohorts()), needs_cohort=False),
    Spec(("cohort", "show"), "", "this cohort's settings", F, _no_args(c.ShowCohort())),
    Spec(("cohort", "schedule"), "<spec>", "set the schedule, e.g. weekly tue 14:00 "
         "Europe/London for 90m", A, lambda a: c.SetSchedule(spec=a.rest("schedule", limit=400))),
    # (facilitators too, unless an admin turned the cohort's facilitator-members setting off)
    Spec(("cohort", "members", "add"), "@member…", "add members", F, _members(True, False)),
    Spec(("cohort", "members", "remove"), "@member…", "remove members", F,
         _members(False, False)),
    Spec(("cohort", "facilitators", "add"), "@member…", "add facilitators", A,
         _members(True, True)),
    Spec(("cohort", "facilitators", "remove"), "@member…", "remove facilitators", A,
         _members(False, True)),
    Spec(("cohort", "roles"), "<role…>", "set the session roles, in priority order", A, _roles),
    Spec(("cohort", "reminders"), "<offset…|off>", "when reminders go out, e.g. 24h 1h", A,
         _reminders),
    Spec(("cohort", "set"), "<setting> [value]", "change or show a setting", A, _set),
    Spec(("cohort", "pause"), "", "pause reminders and announcements", A,
         _no_args(c.ChangeCohortStatus(status="pause"))),
    Spec(("cohort", "resume"), "", "resume a paused cohort", A,
         _no_args(c.ChangeCohortStatus(status="resume"))),
    Spec(("cohort", "archive"), "[confirm]", "archive the cohort for good (frees its channel)",
         A, _archive),
    Spec(("cohort", "unlink"), "", "unlink the cohort from its channel", A,
         _no_args(c.UnlinkCohort())),
    Spec(("cohort", "rename"), "<name>", "give the cohort a new name (its id stays)", A,
         lambda a: c.RenameCohort(name=_cohort_name(a))),
)


@dataclass(frozen=True, slots=True)
class Parsed:
    spec: Spec
    command: c.Command
    cohort: str | None  # a `--cohort <id>` the caller gave


def _match(words: list[str]) -> Spec | None:
    best: Spec | None = None
    for spec in COMMANDS:
        n = len(spec.words)
        if tuple(w.lower() for w in words[:n]) == spec.words and (
            best is None or n > len(best.words)
        ):
            best = spec
    return best


#: Words people reach for that mean one of ours: suggested ("did you mean"), never run.
SYNONYMS: dict[str, str] = {
    "finished": "done", "finish": "done", "complete": "done", "completed": "done",
    "did": "done", "dropped": "drop", "abandon": "drop", "delete": "drop", "remove": "drop",
    "not-yet": "notyet", "later": "notyet", "partial": "partly", "partially": "partly",
    "new": "add", "ls": "list", "show": "list", "when": "next", "sessions": "schedule",
    "leave": "away", "absent": "away", "vacation": "away", "holiday": "away", "begin": "start",
    "stop": "end", "finish-session": "end", "commands": "help", "?": "help", "timezone": "tz",
    "zone": "tz", "members": "members", "make": "create", "new-cohort": "create",
    "unarchive": "resume",
}


def _words_after(prefix: tuple[str, ...]) -> list[str]:
    """The words that may follow `prefix` in some command, in table order."""
    n = len(prefix)
    return list(dict.fromkeys(s.words[n] for s in COMMANDS
                              if s.words[:n] == prefix and len(s.words) > n))


def _known_prefix(low: list[str]) -> int:
    """How many leading words are the start of some command ("cohort crate" -> 1)."""
    best = 0
    for s in COMMANDS:
        k = 0
        while k < min(len(low), len(s.words)) and low[k] == s.words[k]:
            k += 1
        best = max(best, k)
    return best


def _near(word: str, options: list[str]) -> list[str]:
    found = difflib.get_close_matches(word, options, n=2, cutoff=0.6)
    synonym = SYNONYMS.get(word)
    if synonym in options and synonym not in found:
        found.insert(0, synonym)
    prefixed = [o for o in options if len(word) >= 2 and o.startswith(word) and o not in found]
    return (found + prefixed)[:3]


def unknown(tokens: list[str], word: str) -> UsageError:
    """What to say about words that are no command: the first word that is wrong (never a
    correct one before it) and the nearest valid words."""
    low = [t.lower() for t in tokens]
    k = _known_prefix(low)
    prefix = tuple(low[:k])
    options = _words_after(prefix)
    shown = " ".join(prefix)
    if k == len(low):  # the words are right but stop too early: "cohort", "action"
        return UsageError(f"'{shown}' needs one more word: {', '.join(options)}.",
                          usage=f"{word} help {shown}")
    bad = tokens[k]
    near = _near(low[k], options)
    if not k and not near:
        # An admin verb without its "cohort" word, e.g. "crate" for "cohort create".
        admin = _words_after(("cohort",))
        near += [f"cohort {w}" for w in _near(low[0], admin) if f"cohort {w}" not in near]
    where = f" after '{shown}'" if k else ""
    secret = {s.name for s in COMMANDS if s.secret}
    text = f"Unknown command '{_short(bad)}'{where}."
    if near:
        full = [f"'{word} {shown + ' ' if k else ''}{n}'" for n in near[:3]]
        text += f" Did you mean {' or '.join(full)}?"
    elif k:
        text += f" After '{shown}' come: {', '.join(options)}."
    error = UsageError(text, usage=f"{word} help" + (f" {shown}" if k else ""))
    error.near_secret = any(f"{shown} {n}".strip() in secret for n in near)
    return error


def _cohort_guess(remainder: str) -> tuple[str, str] | None:
    """For "--cohort Peer A next": the name typed ("Peer A") and the command after it, when
    the words after --cohort only make a command once a few are taken as the cohort's."""
    words = remainder.split()
    for n in range(2, min(len(words), 5)):
        if _match(words[n:]) is not None:
            return " ".join(words[:n]), " ".join(words[n:])
    return None


class CohortNameError(UsageError):
    """`--cohort` was given a name (several words) where the id belongs; the service turns
    `name` into a suggestion from the caller's own cohorts."""

    def __init__(self, message: str, *, usage: str, name: str) -> None:
        super().__init__(message, usage=usage)
        self.name = name


def parse(text: str, *, platform: str, word: str = "cohort") -> Parsed:
    """Parse what follows the command word (`/cohort` or `!cohort`)."""
    remainder = text.strip()
    cohort: str | None = None
    head = remainder.split(None, 2)
    by_flag = False
    if head and (head[0] == "--cohort" or head[0].startswith("--cohort=")):
        by_flag = True
        if head[0] == "--cohort":
            if len(head) < 2:
                raise UsageError("Missing the cohort id after --cohort.",
                                 usage=f"{word} --cohort <cohort-id> <command>")
            cohort, remainder = head[1].lower(), head[2] if len(head) > 2 else ""
        else:
            cohort = head[0].split("=", 1)[1].lower()
            remainder = remainder.split(None, 1)[1] if len(head) > 1 else ""
    if not remainder:
        remainder = "help"
    tokens = remainder.split()
    spec = _match(tokens)
    if spec is None and by_flag and cohort is not None and head[0] == "--cohort":
        guess = _cohort_guess(f"{head[1]} {remainder}")
        if guess is not None:
            name, _ = guess
            raise CohortNameError(
                f"'{_short(name)}' is a name: --cohort takes a cohort's id (one word, see "
                f"{word} cohort list).", usage=f"{word} --cohort <cohort-id> <command>",
                name=name)
    if spec is None and tokens[0].lower() not in _words_after(()) \
            and tokens[0].lower() in _words_after(("cohort",)):
        # An admin verb without its "cohort" word ("create Peer C"): nothing else is called so.
        tokens = ["cohort", *tokens]
        remainder = "cohort " + remainder
        spec = _match(tokens)
    if spec is None:
        error = unknown(tokens, word)
        if "Did you mean" not in error.message and _known_prefix(
                [t.lower() for t in tokens]) == 0:
            error = UsageError(error.message + f" '{word} help' lists what you can do.",
                               usage=error.usage)  # (nothing near: not near a secret one)
        raise error
    rest = remainder
    for _ in spec.words:
        rest = rest.split(None, 1)[1] if len(rest.split(None, 1)) > 1 else ""
    args = Args(rest, platform, spec.usage(word), word)
    return Parsed(spec, spec.build(args), cohort)


def find_specs(topic: str) -> list[Spec]:
    words = tuple(topic.lower().split())
    return [s for s in COMMANDS if s.words[: len(words)] == words]


def help_lines(role: Role, *, word: str = "cohort", specs: Iterable[Spec] = COMMANDS) -> list[str]:
    """One line per command the caller may run, generated from the table."""
    return [f"{s.usage(word)} — {s.summary}" for s in specs if s.role <= role]
