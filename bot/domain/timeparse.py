"""Read and write the times, dates, durations and time zones people type in chat.

Parsing turns user text into stdlib values (`timedelta`, `ZoneInfo`, naive `datetime`,
`date`, `time`); formatting turns them back into short, deterministic English. `to_utc`
is the one place where a local wall time becomes an instant, so every DST rule lives here.

Must not: do I/O of its own (zoneinfo reading tzdata is the only exception), read the
clock (any "now" is a parameter), depend on the process locale, or let anything but
`UserError` escape from a `parse_*` function, whatever the input string.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.domain.errors import UserError

__all__ = [
    "MAX_DURATION",
    "MAX_YEAR",
    "MIN_YEAR",
    "exact_utc",
    "format_duration",
    "format_local",
    "format_wall",
    "parse_date",
    "parse_duration",
    "parse_local_datetime",
    "parse_time",
    "parse_zone",
    "quote_input",
    "to_utc",
    "zone_by_name",
]

MIN_YEAR = 2000
MAX_YEAR = 2100
MAX_DURATION = timedelta(days=366)

# English names are spelled out here rather than taken from strftime("%a"), which
# follows the process locale.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# re.ASCII everywhere: without it `\d` also matches e.g. Arabic-Indic digits, which int()
# accepts, so "٢٠٢٦-..." would quietly parse.
_NUMBER_UNIT = re.compile(r"([0-9]+)\s*([a-z]+)", re.ASCII)
_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})", re.ASCII)
#: "14:00", "9:30", "2pm", "2:30pm", "2 PM", "12am": a 24-hour time, or a 12-hour one with
#: am/pm (then the minutes may be left out).
_TIME = re.compile(r"([0-9]{1,2})(?::([0-9]{2}))?\s*(?:([AaPp])\.?[Mm]\.?)?", re.ASCII)
_DATETIME = re.compile(
    r"([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})(?:[Tt]|\s+)([0-9]{1,2}(?::[0-9]{2})?\s*(?:[AaPp]\.?[Mm]\.?)?)",
    re.ASCII,
)
_NUMERIC_TZNAME = re.compile(r"[+-][0-9]")

_UNIT_SECONDS: dict[str, int] = {}
for _names, _seconds in (
    (("w", "wk", "wks", "week", "weeks"), 7 * 86400),
    (("d", "day", "days"), 86400),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("m", "min", "mins", "minute", "minutes"), 60),
    (("s", "sec", "secs", "second", "seconds"), 1),
):
    for _name in _names:
        _UNIT_SECONDS[_name] = _seconds

_DURATION_HELP = "Use a number and a unit, like 90m, 2h, 1h30m, 2d or 1w."
_DATE_HELP = "Use YYYY-MM-DD, like 2026-12-01."
_TIME_HELP = "Use a time like 14:00, 9:30, 2pm or 2:30pm."
_DATETIME_HELP = "Use YYYY-MM-DD HH:MM, like 2026-12-01 14:00."


def quote_input(text: str, *, limit: int = 40) -> str:
    """`text` quoted for a one-line chat message: whitespace collapsed, long input cut."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return f"'{flat}'"


# --- durations ----------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """Parse "90m", "2h", "1h30m", "2d", "45s", "1w", "1 h 30 min". A unit is required.

    The result is > 0 and at most 366 days.
    """
    flat = text.strip().lower()
    if not flat:
        raise UserError(f"The duration is missing. {_DURATION_HELP}")
    total = 0
    seen: set[int] = set()
    pos = 0
    while pos < len(flat):
        if flat[pos].isspace():
            pos += 1
            continue
        match = _NUMBER_UNIT.match(flat, pos)
        if match is None or match.group(2) not in _UNIT_SECONDS:
            if flat.isdigit():
                raise UserError(f"The duration {quote_input(text)} needs a unit. {_DURATION_HELP}")
            raise UserError(f"Can't read the duration {quote_input(text)}. {_DURATION_HELP}")
        digits, unit = match.groups()
        unit_seconds = _UNIT_SECONDS[unit]
        if unit_seconds in seen:
            raise UserError(
                f"The duration {quote_input(text)} gives the same unit twice. {_DURATION_HELP}"
            )
        seen.add(unit_seconds)
        # Checked before int(): CPython refuses to convert very long digit strings, and
        # anything this long is over the limit anyway.
        if len(digits) > 9:
            raise _too_long(text)
        total += int(digits) * unit_seconds
        pos = match.end()
    if total <= 0:
        raise UserError(f"The duration {quote_input(text)} must be more than zero.")
    if total > MAX_DURATION.total_seconds():
        raise _too_long(text)
    return timedelta(seconds=total)


def _too_long(text: str) -> UserError:
    return UserError(f"The duration {quote_input(text)} is too long; the maximum is 366 days.")


def format_duration(td: timedelta) -> str:
    """Short English text: "45 min", "90 min", "2 h", "2 h 30 min", "2 days", "1 day 2 h".

    Under two hours a duration is given in minutes ("90 min") unless it is a whole hour
    ("1 h"), because that is how sessions are usually talked about. Sub-second parts are
    dropped. Negative durations are a programming error (ValueError).
    """
    if td < timedelta(0):
        raise ValueError(f"negative duration: {td!r}")
    total = int(td.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days == 0 and hours == 1 and minutes:
        hours, minutes = 0, 60 + minutes
    parts: list[str] = []
    if days:
        parts.append(f"{days} day" if days == 1 else f"{days} days")
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if seconds:
        parts.append(f"{seconds} s")
    return " ".join(parts) if parts else "0 min"


# --- time zones ---------------------------------------------------------------------


@cache
def _zone_names() -> dict[str, str]:
    """Lower-cased IANA name -> canonical spelling. Built once, on first use, because
    available_timezones() walks the tzdata package."""
    names = {name.lower(): name for name in available_timezones()}
    names.setdefault("utc", "UTC")
    return names


#: Abbreviations people type for a zone. tzdata knows some of them (EST, MST, HST, CET…) as
#: zones that never change their offset or follow rules of 1970s, so a cohort "in EST" would be
#: an hour off for half the year: they are answered with the zone they most likely mean.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "EST": ("America/New_York",), "EDT": ("America/New_York",),
    "EST5EDT": ("America/New_York",), "ET": ("America/New_York",),
    "CST": ("America/Chicago", "Asia/Shanghai"), "CDT": ("America/Chicago",),
    "CST6CDT": ("America/Chicago",), "CT": ("America/Chicago",),
    "MST": ("America/Denver", "America/Phoenix"), "MDT": ("America/Denver",),
    "MST7MDT": ("America/Denver",), "MT": ("America/Denver",),
    "PST": ("America/Los_Angeles",), "PDT": ("America/Los_Angeles",),
    "PST8PDT": ("America/Los_Angeles",), "PT": ("America/Los_Angeles",),
    "AKST": ("America/Anchorage",), "HST": ("Pacific/Honolulu",),
    "GMT": ("Europe/London", "UTC"), "BST": ("Europe/London",),
    "WET": ("Europe/Lisbon",), "WEST": ("Europe/Lisbon",),
    "CET": ("Europe/Berlin", "Europe/Paris"), "CEST": ("Europe/Berlin", "Europe/Paris"),
    "MET": ("Europe/Berlin",), "MEZ": ("Europe/Berlin",),
    "EET": ("Europe/Athens", "Europe/Helsinki"), "EEST": ("Europe/Athens", "Europe/Helsinki"),
    "MSK": ("Europe/Moscow",), "IST": ("Asia/Kolkata", "Europe/Dublin"),
    "JST": ("Asia/Tokyo",), "KST": ("Asia/Seoul",), "HKT": ("Asia/Hong_Kong",),
    "SGT": ("Asia/Singapore",), "AEST": ("Australia/Sydney",),
    "AEDT": ("Australia/Sydney",), "ACST": ("Australia/Adelaide",),
    "AWST": ("Australia/Perth",), "NZST": ("Pacific/Auckland",),
    "NZDT": ("Pacific/Auckland",), "BRT": ("America/Sao_Paulo",),
    "SAST": ("Africa/Johannesburg",), "CAT": ("Africa/Maputo",), "EAT": ("Africa/Nairobi",),
    "WAT": ("Africa/Lagos",),
}


@cache
def _cities() -> dict[str, list[str]]:
    """A city's name as people type it ("london", "new york") -> the zones named after it."""
    out: dict[str, list[str]] = {}
    for name in sorted(available_timezones()):
        area, sep, city = name.rpartition("/")
        if sep and area.split("/")[0] not in ("Etc", "SystemV", "US", "Canada", "Brazil",
                                              "Mexico", "Chile"):
            out.setdefault(city.replace("_", " ").lower(), []).append(name)
    return out


def _did_you_mean(options: tuple[str, ...] | list[str]) -> str:
    return " or ".join(options)


def zone_by_name(name: str) -> ZoneInfo | None:
    """The tzdata zone called `name` (any case), or None: a lookup, no advice."""
    canonical = _zone_names().get(name.strip().lower())
    if canonical is None:
        return None
    try:
        return ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Listed but unreadable (a broken tzdata install): same answer for the user.
        return None


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone as a person names it: "Europe/London" in any case, or "UTC".

    An abbreviation (EST, CET) or a bare city ("London") is answered with the zone it most
    likely means, never taken: an abbreviation is a fixed offset that ignores daylight
    saving, and a city name can be ambiguous."""
    wanted = name.strip()
    if not wanted:
        raise UserError("The time zone is missing. Use an IANA name like Europe/London.")
    meant = ABBREVIATIONS.get(wanted.upper())
    if meant is not None:
        raise UserError(
            f"{quote_input(wanted)} is an abbreviation, not a time zone: it would ignore "
            f"daylight saving. Did you mean {_did_you_mean(meant)}?")
    zone = zone_by_name(wanted)
    if zone is not None:
        return zone
    # Suggestions only for name-sized input: difflib is quadratic in the string length.
    if len(wanted) <= 64:
        city = " ".join(wanted.replace("_", " ").split()).lower()
        if city in _cities():
            raise UserError(f"{quote_input(wanted)} is a place, not a time zone name. Did you "
                            f"mean {_did_you_mean(_cities()[city][:3])}?")
        close = difflib.get_close_matches(wanted.lower(), _zone_names().keys(), n=1, cutoff=0.8)
        if close:
            suggestion = _zone_names()[close[0]]
            raise UserError(f"Unknown time zone {quote_input(wanted)}. Did you mean {suggestion}?")
    raise UserError(
        f"Unknown time zone {quote_input(wanted)}. Use an IANA name like Europe/London."
    )


# --- dates and times ----------------------------------------------------------------


def _checked_date(year: str, month: str, day: str, shown: str) -> date:
    y = int(year)
    if not MIN_YEAR <= y <= MAX_YEAR:
        raise UserError(
            f"The year in {quote_input(shown)} must be between {MIN_YEAR} and {MAX_YEAR}."
        )
    try:
        return date(y, int(month), int(day))
    except ValueError:
        raise UserError(f"There is no date {quote_input(shown)}. {_DATE_HELP}") from None


def _checked_time(hour: str, minute: str, shown: str) -> time:
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        raise UserError(f"{quote_input(shown)} is not a valid time. {_TIME_HELP}")
    return time(h, m)


def parse_date(text: str) -> date:
    """Parse "2026-12-01" (years 2000-2100)."""
    flat = text.strip()
    match = _DATE.fullmatch(flat)
    if match is None:
        raise UserError(f"Can't read the date {quote_input(text)}. {_DATE_HELP}")
    year, month, day = match.groups()
    return _checked_date(year, month, day, flat)


def parse_time(text: str) -> time:
    """Parse a wall time: "14:00", "9:30", "2pm", "2:30pm", "12am" (midnight)."""
    flat = text.strip()
    match = _TIME.fullmatch(flat)
    if match is None or (match.group(2) is None and match.group(3) is None):
        raise UserError(f"Can't read the time {quote_input(text)}. {_TIME_HELP}")
    hour, minute, half = match.groups()
    if half is None:
        return _checked_time(hour, minute, flat)
    h = int(hour)
    if not 1 <= h <= 12:
        raise UserError(f"{quote_input(flat)} is not a valid time. {_TIME_HELP}")
    h = h % 12 + (12 if half.lower() == "p" else 0)
    return _checked_time(str(h), minute or "0", flat)


def parse_local_datetime(text: str) -> datetime:
    """Parse a naive local wall time: "2026-12-01 14:00", "2026-12-01T14:00", "2026-12-01 9:30"."""
    flat = text.strip()
    match = _DATETIME.fullmatch(flat)
    if match is None:
        raise UserError(f"Can't read the date and time {quote_input(text)}. {_DATETIME_HELP}")
    day = parse_date(match.group(1))
    return datetime.combine(day, parse_time(match.group(2)))


# --- wall time <-> instant ----------------------------------------------------------


def to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """The aware UTC instant at which clocks in `zone` show the naive wall time `local`.

    DST rules (PEP 495 `fold=0`, which zoneinfo implements):
    - a wall time that does not exist (spring-forward gap) is read with the offset in force
      *before* the change, i.e. it moves forward by the size of the gap: 02:30 on
      America/New_York's spring-forward day is 03:30 EDT = 07:30 UTC. (In Europe/London the
      gap is 01:00-02:00, so 01:30 becomes 02:30 BST = 01:30 UTC.)
    - a wall time that happens twice (autumn fold) means the first occurrence: 01:30 on
      Europe/London's fall-back day is 01:30 BST = 00:30 UTC.
    A session therefore never silently disappears, and never happens twice.
    """
    if local.tzinfo is not None:
        raise ValueError(f"to_utc expects a naive wall time, got {local!r}")
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def exact_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """Like `to_utc`, for a one-off time a person typed: a wall time that does not exist in
    `zone` (the hour skipped when clocks go forward) is refused rather than moved."""
    instant = to_utc(local, zone)
    if instant.astimezone(zone).replace(tzinfo=None) != local:
        shown = f"{local.date().isoformat()} {local.hour:02d}:{local.minute:02d}"
        raise UserError(f"{shown} does not exist in {zone.key}: the clocks go forward that "
                        "night. Pick a time before or after the skipped hour.")
    return instant


def _zone_label(local: datetime) -> str:
    """The zone abbreviation ("GMT", "BST"), or "UTC+03:00" where tzdata has no letters."""
    name = local.tzname()
    if name and not _NUMERIC_TZNAME.match(name):
        return name
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def format_local(instant: datetime, zone: ZoneInfo) -> str:
    """An instant as wall time in `zone`: "Tue 1 Dec 2026, 14:00 GMT". English, locale-free."""
    if instant.tzinfo is None:
        raise ValueError(f"format_local expects an aware datetime, got {instant!r}")
    local = instant.astimezone(zone)
    return (
        f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}, "
        f"{local.hour:02d}:{local.minute:02d} {_zone_label(local)}"
    )


def format_wall(local: datetime) -> str:
    """A naive wall time without zone: "Tue 1 Dec 2026 14:00"."""
    return (
        f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year} "
        f"{local.hour:02d}:{local.minute:02d}"
    )
