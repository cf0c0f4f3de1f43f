"""Commands: what a person asked the bot to do, already parsed and typed.

One frozen dataclass per command; the service has one handler per class. Dates and times stay
as the words the person typed (`DayRef`, naive local datetimes) because only the service knows
which cohort's zone and which "next" session they refer to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.domain.refs import UserRef

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Days named relative to today, as people say them.
RELATIVE = ("today", "tomorrow", "this-week", "next-week", *WEEKDAYS)


@dataclass(frozen=True, kw_only=True, slots=True)
class DayRef:
    """`next` (the next session), a range of days (inclusive), or days named relative to
    today (`relative`: one of RELATIVE), which only the service can date."""

    next: bool = False
    first: date | None = None
    last: date | None = None
    relative: str | None = None

    def span(self, today: date) -> tuple[date, date] | None:
        """The days of a relative reference, seen from `today` (None if not relative)."""
        r = self.relative
        if r is None:
            return None
        if r == "today":
            return today, today
        if r == "tomorrow":
            day = today + timedelta(days=1)
            return day, day
        if r == "this-week":
            return today, today + timedelta(days=6 - today.weekday())
        if r == "next-week":
            monday = today + timedelta(days=7 - today.weekday())
            return monday, monday + timedelta(days=6)
        ahead = (WEEKDAYS.index(r) - today.weekday()) % 7
        day = today + timedelta(days=ahead)
        return day, day


@dataclass(frozen=True, kw_only=True, slots=True)
class DayTime:
    """A wall time on a day named relative to today ("tue 2pm", "tomorrow 14:00")."""

    day: DayRef  # (relative: today, tomorrow or a weekday)
    at: time

    def on(self, today: date) -> datetime:
        span = self.day.span(today)
        assert span is not None
        return datetime.combine(span[0], self.at)


class Command:
    """Base class of every command (for typing only)."""


# --- anyone / member -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, slots=True)
class Help(Command):
    topic: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Next(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class ShowSchedule(Command):
    count: int = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class Away(Command):
    when: DayRef


@dataclass(frozen=True, kw_only=True, slots=True)
class Back(Command):
    when: DayRef | None  # None: every recorded absence


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestSwap(Command):
    role: str
    other: UserRef


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerSwap(Command):
    accept: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class AddAction(Command):
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ListActions(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerAction(Command):
    number: int
    answer: str  # done | partly | notyet | dropped
    note: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EditAction(Command):
    number: int
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ShowCheckin(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class ShareCheckins(Command):
    share: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class AskQuestion(Command):
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ListQuestions(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class QuestionStatus(Command):
    code: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Upvote(Command):
    number: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Retract(Command):
    code: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SetTimezone(Command):
    zone: str | None  # None: show the current one


@dataclass(frozen=True, kw_only=True, slots=True)
class MyData(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgetMe(Command):
    confirmed: bool


# --- facilitator -----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, slots=True)
class PostPrompt(Command):
    text: str
    next_session: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionStart(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionNext(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionEnd(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class CancelSession(Command):
    when: DayRef
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MoveSession(Command):
    when: DayRef
    to: datetime | DayTime


@dataclass(frozen=True, kw_only=True, slots=True)
class AddSession(Command):
    at: datetime | DayTime


@dataclass(frozen=True, kw_only=True, slots=True)
class ReviewQuestions(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class ApproveQuestion(Command):
    review_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ReturnQuestion(Command):
    review_id: str
    note: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ReleaseQuestions(Command):
    confirm: bool = False  # post even fewer than the cohort's minimum batch


@dataclass(frozen=True, kw_only=True, slots=True)
class ShowSummary(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class AssignRole(Command):
    role: str
    member: UserRef
    when: DayRef


# --- admin -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, slots=True)
class CreateCohort(Command):
    name: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkCohort(Command):
    slug: str | None
    name: str | None = None  # several words: a cohort's name where its id belongs


@dataclass(frozen=True, kw_only=True, slots=True)
class ListCohorts(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class ShowCohort(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class SetSchedule(Command):
    spec: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChangeMembers(Command):
    add: bool
    users: tuple[UserRef, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ChangeFacilitators(Command):
    add: bool
    users: tuple[UserRef, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class SetRoles(Command):
    roles: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class SetReminders(Command):
    offsets_min: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class SetCohortOption(Command):
    key: str | None  # None: list every setting with its value
    value: str | None  # None: show the current value


@dataclass(frozen=True, kw_only=True, slots=True)
class ChangeCohortStatus(Command):
    status: str  # pause | resume | archive
    confirmed: bool = False  # (archive asks first)


@dataclass(frozen=True, kw_only=True, slots=True)
class UnlinkCohort(Command):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class RenameCohort(Command):
    name: str
