"""When a cohort meets: parse a spoken-style schedule spec, expand it, describe it.

A `Schedule` is a recurrence in *local wall time* (an RFC 5545 RRULE body plus a start
time, expanded with dateutil) and/or explicit local date-times, all in one IANA zone.
Wall times become instants only at the very end, through `timeparse.to_utc`, so a
"Tuesday 14:00 Europe/London" session stays at 14:00 on the wall clock across DST.

Every recurring form of the spec grammar is stored as a canonical RRULE body
("weekly tue" -> "FREQ=WEEKLY;BYDAY=TU"), so there is exactly one expansion path.

Must not: do I/O, read the clock (`occurrences` takes its window as parameters), run
async, or let anything but `UserError` escape from `parse_schedule_spec`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, weekday, weekdays

from bot.domain.errors import UserError
from bot.domain.timeparse import (
    MAX_DURATION,
    MAX_YEAR,
    MIN_YEAR,
    format_duration,
    format_wall,
    parse_date,
    parse_duration,
    parse_local_datetime,
    parse_time,
    parse_zone,
    quote_input,
    to_utc,
    zone_by_name,
)

__all__ = [
    "DEFAULT_DURATION",
    "EXAMPLE",
    "USAGE",
    "Schedule",
    "describe",
    "occurrences",
    "parse_schedule_spec",
]

DEFAULT_DURATION = timedelta(minutes=90)
EXAMPLE = "weekly tue 14:00 Europe/London for 90m"
_RRULE_EXAMPLE = "rrule FREQ=WEEKLY;BYDAY=TU at 14:00 Europe/London"
USAGE = "\n".join(
    (
        "Schedule forms (time zone, 'for <duration>', 'from <date>', 'until <date>' optional):",
        "  weekly tue 14:00 Europe/London for 90m",
        "  weekly mon,thu 09:00",
        "  every 2 weeks thu 09:30 America/New_York from 2026-12-01",
        "  every 3 days 10:00 UTC    (or: daily 10:00)",
        "  monthly first wed 16:00 UTC    (or: monthly 15 18:00)",
        "  dates 2026-12-01 14:00, 2026-12-15 14:00 Europe/Berlin",
        "  rrule FREQ=WEEKLY;BYDAY=TU at 14:00 Europe/London",
    )
)

# Phase anchor for recurrences without "from": a fixed Monday, so "every 2 weeks" (or
# 3 days, 2 months) always lands on the same weeks however often the bot restarts and
# whatever window it asks about. Weeks start on Monday (RFC 5545 default WKST=MO).
_ANCHOR = date(2000, 1, 3)
MAX_INTERVAL = 52
MAX_COUNT = 1000
MAX_DATES = 100
# Wall-clock window padding. A gap can push a wall time forward by up to a day
# (Pacific/Apia skipped 30 Dec 2011), so expand a little wider, then filter by instant.
_MARGIN = timedelta(days=2)
# Raw RRULEs must produce a session at least this often (see `_compiled`).
_MAX_GAP = timedelta(days=5 * 366)
_PROBE_TARGET = date(9960, 1, 1)

_T = TypeVar("_T")
_Freq = Literal[0, 1, 2, 3]
_FREQS: dict[str, _Freq] = {"YEARLY": YEARLY, "MONTHLY": MONTHLY, "WEEKLY": WEEKLY, "DAILY": DAILY}
_DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_FULL = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_WORDS: dict[str, int] = {}
for _i, _full in enumerate(_DAY_FULL):
    _low = _full.lower()
    for _word in (_low, _low + "s", _low[:3]):
        _DAY_WORDS[_word] = _i
_DAY_WORDS.update({"tues": 1, "weds": 2, "thur": 3, "thurs": 3})
_ORDINALS: dict[str, int] = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
    "fourth": 4, "4th": 4, "last": -1,
}  # fmt: skip
_ORDINAL_NAMES = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}

_TOKEN = re.compile(r",|[^\s,]+")
_TIME_LIKE = re.compile(r"[0-9]{1,2}:[0-9]{2}|[0-9]{1,2}(?::[0-9]{2})?[AaPp]\.?[Mm]\.?",
                        re.ASCII)
_DATE_LIKE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}", re.ASCII)
_DATETIME_LIKE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[Tt][0-9]{1,2}:[0-9]{2}", re.ASCII)
_DURATION_PIECE = re.compile(r"[0-9][0-9a-z]*|[a-z]+", re.ASCII | re.IGNORECASE)
_DAY_OF_MONTH = re.compile(r"([0-9]{1,2})(?:st|nd|rd|th)?", re.ASCII)
_RRULE_INT = re.compile(r"[+-]?[0-9]{1,3}", re.ASCII)
_RRULE_BYDAY = re.compile(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)", re.ASCII)
_RRULE_UNTIL = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})(?:T([0-9]{2})([0-9]{2})([0-9]{2})(Z?))?")


# --- the value object ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    """A validated schedule. Constructing an inconsistent one is a programming error
    (ValueError); user input goes through `parse_schedule_spec`."""

    zone: str  # IANA name, canonical spelling
    duration: timedelta = DEFAULT_DURATION
    rrule: str | None = None  # RFC 5545 RRULE body without DTSTART
    start_time: time | None = None  # local wall time of recurring sessions
    start_date: date | None = None  # first date the recurrence may produce ("from")
    until: date | None = None  # last date the recurrence may produce, inclusive
    dates: tuple[datetime, ...] = field(default=())  # explicit naive local wall times

    def __post_init__(self) -> None:
        # (a lookup, not `parse_zone`: a zone stored before abbreviations were refused loads)
        found = zone_by_name(self.zone)
        canonical = found.key if found is not None else None
        if canonical != self.zone:
            raise ValueError(f"zone must be a canonical IANA name, got {self.zone!r}")
        if not timedelta(0) < self.duration <= MAX_DURATION or self.duration.microseconds:
            raise ValueError(f"duration must be whole seconds in (0, 366 days]: {self.duration!r}")
        if (self.rrule is None) != (self.start_time is None):
            raise ValueError("rrule and start_time go together")
        if self.rrule is None and not self.dates:
            raise ValueError("a schedule needs an rrule or dates")
        if self.rrule is None and (self.start_date or self.until):
            raise ValueError("start_date/until only apply to an rrule")
        if self.start_time is not None and self.start_time.tzinfo is not None:
            raise ValueError("start_time must be a naive wall time")
        if self.start_date and self.until and self.until < self.start_date:
            raise ValueError("until is before start_date")
        if any(d.tzinfo is not None for d in self.dates):
            raise ValueError("dates must be naive local wall times")
        if self.rrule is not None:
            try:
                rule = _compiled(self.rrule, self.start_date or _ANCHOR)
            except UserError as exc:
                raise ValueError(f"invalid rrule {self.rrule!r}: {exc.message}") from None
            if rule.count is not None and self.start_date is None:
                raise ValueError("an rrule with COUNT needs start_date")

    def to_json(self) -> dict[str, object]:
        """JSON-safe primitives only; `from_json(s.to_json()) == s` exactly."""
        return {
            "v": 1,
            "zone": self.zone,
            "duration_seconds": self.duration // timedelta(seconds=1),
            "rrule": self.rrule,
            "start_time": None if self.start_time is None else self.start_time.isoformat(),
            "start_date": None if self.start_date is None else self.start_date.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "dates": [d.isoformat() for d in self.dates],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> Schedule:
        """Inverse of `to_json`. Malformed data is a storage bug: ValueError."""
        if d.get("v") != 1:
            raise ValueError(f"unsupported schedule version: {d.get('v')!r}")
        zone = d.get("zone")
        seconds = d.get("duration_seconds")
        rule = d.get("rrule")
        raw_dates = d.get("dates")
        if not isinstance(zone, str):
            raise ValueError("schedule zone must be a string")
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise ValueError("schedule duration_seconds must be an integer")
        if rule is not None and not isinstance(rule, str):
            raise ValueError("schedule rrule must be a string or null")
        if not isinstance(raw_dates, list) or not all(isinstance(x, str) for x in raw_dates):
            raise ValueError("schedule dates must be a list of strings")
        return cls(
            zone=zone,
            duration=timedelta(seconds=seconds),
            rrule=rule,
            start_time=_optional_iso(d, "start_time", time.fromisoformat),
            start_date=_optional_iso(d, "start_date", date.fromisoformat),
            until=_optional_iso(d, "until", date.fromisoformat),
            dates=tuple(datetime.fromisoformat(x) for x in raw_dates),
        )


def _optional_iso(d: Mapping[str, object], key: str, convert: Callable[[str], _T]) -> _T | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"schedule {key} must be an ISO string or null")
    return convert(value)


# --- RRULE bodies -------------------------------------------------------------------


# eq=False: identity hashing, cheap for the lru_cache keys below (instances are cached).
@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class _Rule:
    """A validated RRULE body, ready to expand from any period-aligned start."""

    body: str
    parts: tuple[tuple[str, str], ...]
    freq: _Freq
    interval: int
    wkst: int
    count: int | None
    until_utc: datetime | None  # UNTIL=...Z: an instant, filtered after conversion
    base: rrule  # dtstart is a placeholder; callers use base.replace(dtstart=...)


def _rrule_error(body: str, problem: str) -> UserError:
    return UserError(
        f"The RRULE {quote_input(body)} {problem} Example: {_RRULE_EXAMPLE}", usage=USAGE
    )


def _int_list(body: str, name: str, value: str, low: int, high: int) -> list[int]:
    numbers: list[int] = []
    for item in value.split(","):
        if not _RRULE_INT.fullmatch(item) or not low <= abs(int(item)) <= high:
            raise _rrule_error(body, f"has a bad {name} value {quote_input(item)}.")
        numbers.append(int(item))
    return numbers


@lru_cache(maxsize=1024)
def _parse_rrule_body(body: str) -> _Rule:
    """Validate an upper-cased RRULE body and build its dateutil rule. UserError if bad.

    Deliberately stricter than RFC 5545 where the RFC would let a chat user write
    something surprising: the time of day comes only from "at HH:MM" (no BYHOUR...),
    the days must be explicit (otherwise they would silently come from the internal
    phase anchor), and FREQ is at most DAILY.
    """
    if not body:
        raise _rrule_error(body, "is empty.")
    if len(body) > 300:
        raise _rrule_error(body, "is too long.")
    if "DTSTART" in body:
        raise _rrule_error(body, "must not contain DTSTART; use 'from YYYY-MM-DD' and 'at HH:MM'.")
    parts: dict[str, str] = {}
    for pair in body.split(";"):
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise _rrule_error(body, f"has a malformed part {quote_input(pair)}; use NAME=VALUE.")
        if name in parts:
            raise _rrule_error(body, f"gives {name} twice.")
        parts[name] = value
    for name in parts:
        if name in ("BYHOUR", "BYMINUTE", "BYSECOND"):
            raise _rrule_error(body, f"must not set {name}; give the time with 'at HH:MM'.")
        if name not in (
            "FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY",
            "BYMONTHDAY", "BYMONTH", "BYSETPOS", "BYYEARDAY", "BYWEEKNO",
        ):  # fmt: skip
            raise _rrule_error(body, f"has an unsupported part {quote_input(name)}.")

    freq_name = parts.get("FREQ")
    if freq_name is None:
        raise _rrule_error(body, "needs FREQ (DAILY, WEEKLY, MONTHLY or YEARLY).")
    if freq_name in ("HOURLY", "MINUTELY", "SECONDLY"):
        raise _rrule_error(body, f"uses FREQ={freq_name}; sessions can repeat at most daily.")
    if freq_name not in _FREQS:
        raise _rrule_error(body, f"has an unknown FREQ {quote_input(freq_name)}.")
    freq = _FREQS[freq_name]

    interval = 1
    if "INTERVAL" in parts:
        value = parts["INTERVAL"]
        if not value.isascii() or not value.isdigit() or not 1 <= int(value[:4]) <= MAX_INTERVAL:
            raise _rrule_error(body, f"needs INTERVAL between 1 and {MAX_INTERVAL}.")
        interval = int(value)
    count: int | None = None
    if "COUNT" in parts:
        value = parts["COUNT"]
        if not value.isascii() or not value.isdigit() or not 1 <= int(value[:5]) <= MAX_COUNT:
            raise _rrule_error(body, f"needs COUNT between 1 and {MAX_COUNT}.")
        count = int(value)
    wkst = 0
    if "WKST" in parts:
        if parts["WKST"] not in _DAY_CODES:
            raise _rrule_error(body, "needs WKST to be one of MO, TU, WE, TH, FR, SA, SU.")
        wkst = _DAY_CODES.index(parts["WKST"])

    until_local: datetime | None = None
    until_utc: datetime | None = None
    if "UNTIL" in parts and "COUNT" in parts:
        raise _rrule_error(body, "can't have both COUNT and UNTIL (RFC 5545).")
    if "UNTIL" in parts:
        match = _RRULE_UNTIL.fullmatch(parts["UNTIL"])
        bad_until = "needs UNTIL like 20261231 or 20261231T235959Z (or use 'until 2026-12-31')."
        if match is None:
            raise _rrule_error(body, bad_until)
        y, mo, d, h, mi, s, zulu = match.groups()
        try:
            if h is None:
                # A DATE value means the whole day (RFC 5545); dateutil would read midnight.
                until_local = datetime.combine(date(int(y), int(mo), int(d)), time.max)
            elif zulu:
                until_utc = datetime.fromisoformat(f"{y}-{mo}-{d}T{h}:{mi}:{s}+00:00")
            else:
                until_local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        except ValueError:
            raise _rrule_error(body, bad_until) from None
        if not MIN_YEAR <= int(y) <= MAX_YEAR:
            raise _rrule_error(body, f"needs an UNTIL year between {MIN_YEAR} and {MAX_YEAR}.")

    by_weekday: list[weekday] | None = None
    if "BYDAY" in parts:
        by_weekday = []
        for item in parts["BYDAY"].split(","):
            match = _RRULE_BYDAY.fullmatch(item)
            if match is None:
                raise _rrule_error(body, f"has a bad BYDAY value {quote_input(item)}.")
            nth_text, code = match.groups()
            day = weekdays[_DAY_CODES.index(code)]
            if nth_text is None:
                by_weekday.append(day)
                continue
            nth = int(nth_text)
            if freq not in (MONTHLY, YEARLY):
                raise _rrule_error(body, "may number BYDAY (like 1MO) only with MONTHLY or YEARLY.")
            limit = 5 if freq == MONTHLY or "BYMONTH" in parts else 53
            if not 1 <= abs(nth) <= limit:
                raise _rrule_error(body, f"has an impossible BYDAY value {quote_input(item)}.")
            by_weekday.append(day(nth))
    by_monthday = None
    if "BYMONTHDAY" in parts:
        if freq == WEEKLY:
            raise _rrule_error(body, "can't use BYMONTHDAY with FREQ=WEEKLY.")
        by_monthday = _int_list(body, "BYMONTHDAY", parts["BYMONTHDAY"], 1, 31)
    by_month = None
    if "BYMONTH" in parts:
        by_month = _int_list(body, "BYMONTH", parts["BYMONTH"], 1, 12)
        if any(m < 0 for m in by_month):
            raise _rrule_error(body, "has a negative BYMONTH.")
    by_yearday = None
    if "BYYEARDAY" in parts:
        if freq != YEARLY:
            raise _rrule_error(body, "can use BYYEARDAY only with FREQ=YEARLY.")
        by_yearday = _int_list(body, "BYYEARDAY", parts["BYYEARDAY"], 1, 366)
    by_weekno = None
    if "BYWEEKNO" in parts:
        if freq != YEARLY:
            raise _rrule_error(body, "can use BYWEEKNO only with FREQ=YEARLY.")
        by_weekno = _int_list(body, "BYWEEKNO", parts["BYWEEKNO"], 1, 53)
    by_setpos = None
    if "BYSETPOS" in parts:
        if len(parts.keys() & {"BYDAY", "BYMONTHDAY", "BYMONTH", "BYYEARDAY", "BYWEEKNO"}) == 0:
            raise _rrule_error(body, "uses BYSETPOS without another BY... part.")
        by_setpos = _int_list(body, "BYSETPOS", parts["BYSETPOS"], 1, 366)
    if freq != DAILY and not parts.keys() & {"BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO"}:
        raise _rrule_error(body, "must say which days, e.g. BYDAY=TU or BYMONTHDAY=15.")

    try:
        base = rrule(
            freq,
            dtstart=datetime.combine(_ANCHOR, time()),
            interval=interval,
            wkst=wkst,
            count=count,
            until=until_local,
            bysetpos=by_setpos,
            bymonth=by_month,
            bymonthday=by_monthday,
            byyearday=by_yearday,
            byweekno=by_weekno,
            byweekday=by_weekday,
        )
    except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:
        raise _rrule_error(body, f"is not valid ({exc}).") from None
    return _Rule(
        body=body,
        parts=tuple(parts.items()),
        freq=freq,
        interval=interval,
        wkst=wkst,
        count=count,
        until_utc=until_utc,
        base=base,
    )


def _aligned_start(rule: _Rule, anchor: date, target: date) -> date:
    """The latest start of a period in phase with `anchor` that is on or before `target`.

    Expanding from here yields exactly what expanding from `anchor` would yield on and
    after this date, without walking every period since `anchor`: the shift is a whole
    number of intervals (phase kept) and lands on a period boundary (week start per WKST,
    1st of month, 1 Jan) so the first period is complete, which matters for BYSETPOS.
    Returns `anchor` itself when `target` is inside the anchor's first interval.
    """
    n = rule.interval
    if rule.freq == DAILY:
        k = (target - anchor).days // n
        return anchor + timedelta(days=k * n) if k > 0 else anchor
    if rule.freq == WEEKLY:
        week0 = anchor - timedelta(days=(anchor.weekday() - rule.wkst) % 7)
        k = (target - week0).days // (7 * n)
        return week0 + timedelta(days=7 * n * k) if k > 0 else anchor
    if rule.freq == MONTHLY:
        month0 = anchor.year * 12 + anchor.month - 1
        k = (target.year * 12 + target.month - 1 - month0) // n
        if k <= 0:
            return anchor
        year, month = divmod(month0 + k * n, 12)
        return date(year, month + 1, 1)
    k = (target.year - anchor.year) // n
    return date(anchor.year + k * n, 1, 1) if k > 0 else anchor


@lru_cache(maxsize=4096)
def _compiled(body: str, anchor: date) -> _Rule:
    """`_parse_rrule_body` plus a check that the rule keeps producing sessions.

    dateutil looks for the next match period by period up to year 9999, so a rule that
    never matches (BYMONTH=2;BYMONTHDAY=30) or matches once in decades would make every
    expansion crawl for seconds. We probe the rule's own sequence (same phase) from a
    period start in year ~9960, where dateutil's year-9999 stop bounds the search, and
    require a session within 5 years. Calendar patterns repeat, so this is a practical
    (not a proof-grade) guarantee that expansions near today stay cheap.
    """
    rule = _parse_rrule_body(body)
    probe_day = _aligned_start(rule, anchor, _PROBE_TARGET)
    probe_start = datetime.combine(probe_day, time())
    try:
        probe = rule.base.replace(dtstart=probe_start, count=None, until=None)
        first = next(iter(probe), None)
    except (ValueError, OverflowError, IndexError, KeyError, TypeError):
        # Rules dateutil cannot expand near year 9999 are rejected like empty ones.
        first = None
    if first is None or first - probe_start > _MAX_GAP:
        raise _rrule_error(
            body, "(almost) never produces a session; it must repeat at least every 5 years."
        )
    return rule


# --- expansion ----------------------------------------------------------------------


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")


def _recurring(
    schedule: Schedule,
    body: str,
    start_time: time,
    zone: ZoneInfo,
    after: datetime,
    before: datetime,
) -> Iterator[datetime]:
    anchor = schedule.start_date or _ANCHOR
    rule = _compiled(body, anchor)
    lo = after.astimezone(zone).replace(tzinfo=None) - _MARGIN
    hi = before.astimezone(zone).replace(tzinfo=None) + _MARGIN
    if schedule.start_date is not None:
        lo = max(lo, datetime.combine(schedule.start_date, time.min))
    if schedule.until is not None:
        hi = min(hi, datetime.combine(schedule.until, time.max))
    if lo > hi:
        return
    # COUNT is counted from the true start, so such rules cannot be fast-forwarded;
    # COUNT <= 1000 keeps that walk short.
    first = anchor if rule.count is not None else _aligned_start(rule, anchor, lo.date())
    for wall in _expansion(rule, first, start_time):
        if wall > hi:
            break
        if wall < lo:
            continue
        instant = to_utc(wall, zone)
        if after <= instant < before and (rule.until_utc is None or instant <= rule.until_utc):
            yield instant


@lru_cache(maxsize=4096)
def _expansion(rule: _Rule, first: date, start_time: time) -> rrule:
    # Cached: many cohorts share a rule and start time, and building a dateutil rrule
    # costs more than iterating a two-week window of it. Iterating does not mutate it.
    return rule.base.replace(dtstart=datetime.combine(first, start_time))


def occurrences(schedule: Schedule, *, after: datetime, before: datetime) -> list[datetime]:
    """Session start instants in [after, before), as sorted aware UTC datetimes.

    The recurrence is expanded in local wall time and each wall time converted with
    `to_utc` (DST gap: moved forward; fold: first occurrence). Its phase (which weeks
    "every 2 weeks" means) is fixed by `start_date`, or without one by the week of
    2000-01-03, and expansion starts at the aligned period nearest the window, so the
    cost depends on the window, not on how long the schedule has existed (except for
    RRULEs with COUNT, which are walked from their start). Explicit `dates` are
    included too; an instant produced twice is listed once. `after`/`before` must be
    aware (ValueError otherwise: that is a programming error).
    """
    _require_aware("after", after)
    _require_aware("before", before)
    if before <= after:
        return []
    zone = ZoneInfo(schedule.zone)
    found: set[datetime] = set()
    if schedule.rrule is not None and schedule.start_time is not None:
        found.update(_recurring(schedule, schedule.rrule, schedule.start_time, zone, after, before))
    for wall in schedule.dates:
        instant = to_utc(wall, zone)
        if after <= instant < before:
            found.add(instant)
    return sorted(found)


# --- the spec grammar ---------------------------------------------------------------


class _Tokens:
    """A cursor over the words of a spec; commas are tokens of their own."""

    __slots__ = ("items", "pos")

    def __init__(self, text: str) -> None:
        self.items: list[str] = _TOKEN.findall(text)
        self.pos = 0

    def peek(self) -> str | None:
        """The next word, lower-cased, without consuming it."""
        return self.items[self.pos].lower() if self.pos < len(self.items) else None

    def take(self) -> str | None:
        """The next word as typed, consumed."""
        if self.pos >= len(self.items):
            return None
        self.pos += 1
        return self.items[self.pos - 1]

    def take_if(self, *words: str) -> bool:
        if self.peek() in words:
            self.pos += 1
            return True
        return False


def _bad(word: str | None, hint: str) -> UserError:
    if word is None:
        return UserError(f"The schedule ends too early: {hint}", usage=USAGE)
    return UserError(f"I don't understand {quote_input(word)}: {hint}", usage=USAGE)


def _take_days(tokens: _Tokens) -> list[int]:
    """Day names separated by commas, "and" or spaces: "mon,thu", "tuesday and friday"."""
    tokens.take_if("on")
    days: list[int] = []
    while True:
        word = tokens.take()
        index = None if word is None else _DAY_WORDS.get(word.lower())
        if index is None:
            raise _bad(word, "expected a day like mon, tue or thursday.")
        if index not in days:
            days.append(index)
        if tokens.take_if(",", "and"):
            continue
        if tokens.peek() not in _DAY_WORDS:
            return sorted(days)


def _weekly_body(interval: int, days: list[int]) -> str:
    byday = ",".join(_DAY_CODES[d] for d in days)
    return f"FREQ=WEEKLY;{_interval_part(interval)}BYDAY={byday}"


def _interval_part(interval: int) -> str:
    return f"INTERVAL={interval};" if interval > 1 else ""


def _take_monthly(tokens: _Tokens, interval: int) -> str:
    """ "first wed", "last fri", "2nd tue", "15", "15th", "last day"."""
    tokens.take_if("on")
    tokens.take_if("the")
    word = tokens.take()
    low = "" if word is None else word.lower()
    every = f"FREQ=MONTHLY;{_interval_part(interval)}"
    if low in _ORDINALS and tokens.peek() in _DAY_WORDS:
        day_word = tokens.take() or ""
        return f"{every}BYDAY={_ORDINALS[low]}{_DAY_CODES[_DAY_WORDS[day_word.lower()]]}"
    if low == "last" and tokens.take_if("day"):
        return f"{every}BYMONTHDAY=-1"
    match = _DAY_OF_MONTH.fullmatch(low)
    if match is not None and 1 <= int(match.group(1)) <= 31:
        return f"{every}BYMONTHDAY={int(match.group(1))}"
    if low in _ORDINALS:
        raise _bad(tokens.peek(), f"expected a day name after '{low}', like '{low} wed'.")
    raise _bad(word, "expected a day of the month like 'first wed', 'last fri' or '15'.")


def _take_every(tokens: _Tokens) -> str:
    """After "every": "2 weeks thu", "3 days", "other week mon", "month first wed", "tue"."""
    word = tokens.take()
    low = "" if word is None else word.lower()
    interval = 1
    if low in _DAY_WORDS:
        tokens.pos -= 1
        return _weekly_body(1, _take_days(tokens))
    if low == "other":
        interval = 2
        word = tokens.take()
    elif low.isascii() and low.isdigit():
        interval = int(low[:4])
        if not 1 <= interval <= MAX_INTERVAL:
            raise UserError(
                f"The interval must be between 1 and {MAX_INTERVAL}, not {quote_input(low)}.",
                usage=USAGE,
            )
        word = tokens.take()
    unit = "" if word is None else word.lower()
    if unit in ("day", "days"):
        return f"FREQ=DAILY;{_interval_part(interval)}".rstrip(";")
    if unit in ("week", "weeks"):
        return _weekly_body(interval, _take_days(tokens))
    if unit in ("month", "months"):
        return _take_monthly(tokens, interval)
    raise _bad(word, "expected days, weeks or months, like 'every 2 weeks thu 09:30'.")


def _take_time(tokens: _Tokens) -> time:
    tokens.take_if("at")
    word = tokens.take()
    if word is None or not _TIME_LIKE.fullmatch(word):
        raise _bad(word, "expected a time like 14:00 or 2pm.")
    return parse_time(word)


def _take_dates(tokens: _Tokens) -> tuple[datetime, ...]:
    """ "2026-12-01 14:00, 2026-12-15T14:00 and 2027-01-05 9:30"."""
    found: set[datetime] = set()
    while True:
        word = tokens.take()
        if word is not None and _DATETIME_LIKE.fullmatch(word):
            found.add(parse_local_datetime(word))
        elif word is not None and _DATE_LIKE.fullmatch(word):
            day = parse_date(word)
            found.add(datetime.combine(day, _take_time(tokens)))
        else:
            raise _bad(word, "expected a date and time like 2026-12-01 14:00.")
        if len(found) > MAX_DATES:
            raise UserError(f"That is more than {MAX_DATES} dates; use a repeating schedule.")
        if not tokens.take_if(",", "and"):
            return tuple(sorted(found))


@dataclass(frozen=True, kw_only=True, slots=True)
class _Tail:
    zone: str
    duration: timedelta
    start_date: date | None
    until: date | None


def _take_tail(tokens: _Tokens, default_zone: str) -> _Tail:
    """Zone, "for <duration>", "from <date>", "until <date>", in any order, all optional."""
    zone: str | None = None
    duration: timedelta | None = None
    start: date | None = None
    until: date | None = None
    while (word := tokens.take()) is not None:
        low = word.lower()
        if low == "for":
            if duration is not None:
                raise _bad(word, "the duration is given twice.")
            pieces: list[str] = []
            # Greedy: "for 1 h 30 min Europe/London" stops at the zone. A bare word only
            # continues a duration that has started ("30 min"), so "for utc" is an error.
            while (piece := tokens.peek()) is not None and _DURATION_PIECE.fullmatch(piece):
                if not piece[0].isdigit() and (not pieces or piece not in _DURATION_UNITS):
                    break
                pieces.append(tokens.take() or "")
            if not pieces:
                raise _bad(tokens.peek(), "expected a duration after 'for', like 90m or 2h.")
            duration = parse_duration(" ".join(pieces))
        elif low in ("from", "starting"):
            if start is not None:
                raise _bad(word, "'from' is given twice.")
            start = _take_date(tokens, low)
        elif low in ("until", "till"):
            if until is not None:
                raise _bad(word, "'until' is given twice.")
            until = _take_date(tokens, low)
        elif zone is None and low not in (",", "and", "at", "on"):
            try:
                zone = parse_zone(word).key
            except UserError as exc:
                if "/" in word or "Did you mean" in exc.message:
                    raise
                raise _bad(
                    word,
                    "expected a time zone like Europe/London, or 'for 90m', "
                    "'from 2026-12-01', 'until 2026-12-31'.",
                ) from None
        else:
            raise _bad(word, "expected 'for 90m', 'from 2026-12-01' or 'until 2026-12-31' here.")
    if start is not None and until is not None and until < start:
        raise UserError(f"'until {until}' is before 'from {start}'.", usage=USAGE)
    return _Tail(
        zone=zone if zone is not None else parse_zone(default_zone).key,
        duration=duration if duration is not None else DEFAULT_DURATION,
        start_date=start,
        until=until,
    )


_DURATION_UNITS = frozenset(
    {"w", "wk", "wks", "week", "weeks", "d", "day", "days", "h", "hr", "hrs", "hour", "hours"}
    | {"m", "min", "mins", "minute", "minutes", "s", "sec", "secs", "second", "seconds"}
)


def _take_date(tokens: _Tokens, keyword: str) -> date:
    word = tokens.take()
    if word is None:
        raise _bad(None, f"expected a date after '{keyword}', like 2026-12-01.")
    return parse_date(word)


def parse_schedule_spec(text: str, *, default_zone: str) -> Schedule:
    """Parse a spec like "weekly tue 14:00 Europe/London for 90m" (see `USAGE`).

    Case-insensitive. The zone defaults to `default_zone`, the duration to 90 minutes.
    Any problem raises UserError naming the offending word, with an example spec.
    """
    try:
        return _parse_spec(text, default_zone)
    except UserError as exc:
        if "Example:" in exc.message:
            raise
        raise UserError(f"{exc.message} Example: {EXAMPLE}", usage=USAGE) from None


def _parse_spec(text: str, default_zone: str) -> Schedule:
    words = text.split()
    if not words:
        raise UserError("The schedule is empty.")
    kind = words[0].lower()
    if kind == "rrule":
        if len(words) < 2:
            raise _bad(None, f"put the RRULE after 'rrule'. Example: {_RRULE_EXAMPLE}")
        body = words[1].upper()
        body = body.removeprefix("RRULE:")
        rule = _parse_rrule_body(body)
        tokens = _Tokens(" ".join(words[2:]))
        start_time = _take_time(tokens)
        tail = _take_tail(tokens, default_zone)
        if rule.count is not None and tail.start_date is None:
            raise _rrule_error(body, "uses COUNT, so it needs a start: add 'from YYYY-MM-DD'.")
        _compiled(body, tail.start_date or _ANCHOR)
        return _schedule(tail, rrule_body=body, start_time=start_time)

    tokens = _Tokens(text)
    tokens.take()
    if kind == "dates":
        dates = _take_dates(tokens)
        tail = _take_tail(tokens, default_zone)
        if tail.start_date is not None or tail.until is not None:
            raise UserError("'from' and 'until' only apply to repeating schedules, not to dates.")
        return Schedule(zone=tail.zone, duration=tail.duration, dates=dates)
    if kind == "weekly":
        body = _weekly_body(1, _take_days(tokens))
    elif kind == "daily":
        body = "FREQ=DAILY"
    elif kind == "monthly":
        body = _take_monthly(tokens, 1)
    elif kind == "every":
        body = _take_every(tokens)
    else:
        raise _bad(words[0], "start with weekly, daily, every, monthly, dates or rrule.")
    start_time = _take_time(tokens)
    tail = _take_tail(tokens, default_zone)
    return _schedule(tail, rrule_body=body, start_time=start_time)


def _schedule(tail: _Tail, *, rrule_body: str, start_time: time) -> Schedule:
    return Schedule(
        zone=tail.zone,
        duration=tail.duration,
        rrule=rrule_body,
        start_time=start_time,
        start_date=tail.start_date,
        until=tail.until,
    )


# --- describing ---------------------------------------------------------------------


def _join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _describe_rule(rule: _Rule) -> str:
    """Friendly text for the bodies the grammar produces; anything else verbatim."""
    parts = dict(rule.parts)
    freq = parts.pop("FREQ")
    parts.pop("INTERVAL", None)
    n = rule.interval
    keys = set(parts)
    if freq == "DAILY" and not keys:
        return "every day" if n == 1 else f"every {n} days"
    byday = [_RRULE_BYDAY.fullmatch(x) for x in parts.get("BYDAY", "").split(",")]
    if freq == "WEEKLY" and keys == {"BYDAY"} and all(m and m.group(1) is None for m in byday):
        names = _join_words([_DAY_FULL[_DAY_CODES.index(m.group(2))] for m in byday if m])
        return f"every {names}" if n == 1 else f"every {n} weeks on {names}"
    every_month = "every month" if n == 1 else f"every {n} months"
    if freq == "MONTHLY" and keys == {"BYDAY"} and len(byday) == 1 and byday[0]:
        nth_text, code = byday[0].groups()
        nth = int(nth_text) if nth_text else 0
        if nth in _ORDINAL_NAMES:
            day_name = _DAY_FULL[_DAY_CODES.index(code)]
            return f"on the {_ORDINAL_NAMES[nth]} {day_name} of {every_month}"
    if freq == "MONTHLY" and keys == {"BYMONTHDAY"} and "," not in parts["BYMONTHDAY"]:
        day = int(parts["BYMONTHDAY"])
        if day == -1:
            return f"on the last day of {every_month}"
        if day > 0:
            return f"on the {_ordinal(day)} of {every_month}"
    return f"by RRULE {rule.body}"


def _clock(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}" + (f":{t.second:02d}" if t.second else "")


def describe(schedule: Schedule) -> str:
    """Short English text, e.g. "every Tuesday at 14:00 (Europe/London), 90 min"."""
    pieces: list[str] = []
    if schedule.rrule is not None and schedule.start_time is not None:
        rule = _parse_rrule_body(schedule.rrule)
        pieces.append(f"{_describe_rule(rule)} at {_clock(schedule.start_time)}")
    if schedule.dates:
        shown = [format_wall(d) for d in sorted(schedule.dates)]
        listed = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
        noun = "date" if len(shown) == 1 else "dates"
        pieces.append(f"on {len(shown)} {noun}: {listed}")
    text = " and ".join(pieces) + f" ({schedule.zone})"
    if schedule.start_date is not None:
        text += f" from {schedule.start_date.isoformat()}"
    if schedule.until is not None:
        text += f" until {schedule.until.isoformat()}"
    return f"{text}, {format_duration(schedule.duration)}"
