"""Unit tests for bot.domain.schedule: grammar, expansion (incl. DST), JSON, describe."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.errors import UserError
from bot.domain.schedule import (
    DEFAULT_DURATION,
    Schedule,
    describe,
    occurrences,
    parse_schedule_spec,
)
from bot.domain.timeparse import parse_duration, parse_local_datetime, parse_zone, to_utc


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def parse(text: str, zone: str = "UTC") -> Schedule:
    return parse_schedule_spec(text, default_zone=zone)


def starts(schedule: Schedule, after: datetime, before: datetime) -> list[datetime]:
    return occurrences(schedule, after=after, before=before)


# --- grammar: every form ----------------------------------------------------------------


def test_weekly_full_spec() -> None:
    s = parse("weekly tue 14:00 Europe/London for 90m")
    assert s == Schedule(
        zone="Europe/London",
        duration=timedelta(minutes=90),
        rrule="FREQ=WEEKLY;BYDAY=TU",
        start_time=time(14, 0),
    )


def test_weekly_defaults_zone_and_duration() -> None:
    s = parse("weekly mon,thu 09:00", zone="Europe/Berlin")
    assert s.zone == "Europe/Berlin"
    assert s.duration == DEFAULT_DURATION == timedelta(minutes=90)
    assert s.rrule == "FREQ=WEEKLY;BYDAY=MO,TH"
    assert s.start_time == time(9, 0)
    assert s.start_date is None and s.until is None and s.dates == ()


def test_grammar_is_case_insensitive_and_tolerates_speech_fillers() -> None:
    expected = parse("weekly mon,thu 09:00 Europe/London")
    for text in (
        "WEEKLY MON,THU 09:00 europe/london",
        "Weekly Monday, Thursday at 9:00 EUROPE/LONDON",
        "weekly on thursdays and mondays at 09:00 Europe/London",
        "every mon thu 09:00 Europe/London",
    ):
        assert parse(text) == expected, text


def test_every_two_weeks_with_from() -> None:
    s = parse("every 2 weeks thu 09:30 America/New_York from 2026-12-01")
    assert s.rrule == "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH"
    assert s.zone == "America/New_York"
    assert s.start_time == time(9, 30)
    assert s.start_date == date(2026, 12, 1)
    assert parse("every other week thu 09:30 America/New_York from 2026-12-01") == s


def test_every_n_days_and_daily() -> None:
    assert parse("every 3 days 10:00 UTC").rrule == "FREQ=DAILY;INTERVAL=3"
    assert parse("daily 10:00").rrule == "FREQ=DAILY"
    assert parse("every day at 10:00") == parse("daily 10:00")


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("monthly first wed 16:00 UTC", "FREQ=MONTHLY;BYDAY=1WE"),
        ("monthly second tue 16:00", "FREQ=MONTHLY;BYDAY=2TU"),
        ("monthly 3rd thu 16:00", "FREQ=MONTHLY;BYDAY=3TH"),
        ("monthly fourth friday 16:00", "FREQ=MONTHLY;BYDAY=4FR"),
        ("monthly last fri 16:00", "FREQ=MONTHLY;BYDAY=-1FR"),
        ("monthly on the 1st mon 16:00", "FREQ=MONTHLY;BYDAY=1MO"),
        ("monthly 15 18:00", "FREQ=MONTHLY;BYMONTHDAY=15"),
        ("monthly on the 15th at 18:00", "FREQ=MONTHLY;BYMONTHDAY=15"),
        ("monthly 1st 18:00", "FREQ=MONTHLY;BYMONTHDAY=1"),
        ("monthly last day 18:00", "FREQ=MONTHLY;BYMONTHDAY=-1"),
        ("every 2 months first wed 16:00", "FREQ=MONTHLY;INTERVAL=2;BYDAY=1WE"),
    ],
)
def test_monthly_forms(text: str, body: str) -> None:
    assert parse(text).rrule == body


def test_dates_form() -> None:
    s = parse("dates 2026-12-15 14:00, 2026-12-01 14:00 Europe/Berlin for 60m")
    assert s == Schedule(
        zone="Europe/Berlin",
        duration=timedelta(minutes=60),
        dates=(datetime(2026, 12, 1, 14, 0), datetime(2026, 12, 15, 14, 0)),
    )
    assert parse("dates 2026-12-01T14:00 and 2026-12-15 at 14:00", zone="Europe/Berlin") == (
        Schedule(zone="Europe/Berlin", dates=s.dates)
    )


def test_raw_rrule_form() -> None:
    s = parse("rrule FREQ=WEEKLY;BYDAY=TU at 14:00 Europe/London")
    assert s == parse("weekly tue 14:00 Europe/London")
    lower = parse("rrule rrule:freq=monthly;byday=mo,tu,we,th,fr;bysetpos=-1 17:00")
    assert lower.rrule == "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"
    assert lower.start_time == time(17, 0)


def test_tail_clauses_in_any_order() -> None:
    a = parse("weekly tue 14:00 Europe/London for 2h from 2026-12-01 until 2027-03-01")
    b = parse("weekly tue 14:00 until 2027-03-01 for 2 h Europe/London from 2026-12-01")
    assert a == b
    assert a.duration == timedelta(hours=2)
    assert (a.start_date, a.until) == (date(2026, 12, 1), date(2027, 3, 1))


# --- grammar: errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("garbage here", ["'garbage'", "weekly, daily, every, monthly, dates or rrule"]),
        ("weekly tue 14:00 Europe/Lundon", ["'Europe/Lundon'", "Did you mean Europe/London?"]),
        ("weekly tue 14:00 Mars/Base", ["Unknown time zone 'Mars/Base'"]),
        ("weekly tue 14:00 londres", ["'londres'", "time zone like Europe/London"]),
        ("weekly blursday 14:00", ["'blursday'", "expected a day"]),
        ("weekly tue 25:00", ["'25:00' is not a valid time", "2pm"]),
        ("weekly tue", ["ends too early", "time like 14:00"]),
        ("weekly tue noon", ["'noon'", "time like 14:00"]),
        ("every 0 weeks tue 10:00", ["between 1 and 52", "'0'"]),
        ("every 53 weeks tue 10:00", ["between 1 and 52", "'53'"]),
        ("every 2 fortnights tue 10:00", ["'fortnights'", "days, weeks or months"]),
        ("monthly fifth wed 10:00", ["'fifth'"]),
        ("monthly first 10:00", ["'10:00'", "day name after 'first'"]),
        ("monthly 32 10:00", ["'32'"]),
        ("weekly tue 14:00 for 90", ["'90' needs a unit"]),
        ("weekly tue 14:00 for", ["duration after 'for'"]),
        ("weekly tue 14:00 for 0m", ["more than zero"]),
        ("weekly tue 14:00 from 2026-02-30", ["no date '2026-02-30'"]),
        ("weekly tue 14:00 from 2026-12-01 until 2026-11-01", ["before 'from 2026-12-01'"]),
        ("weekly tue 14:00 UTC Europe/London", ["'Europe/London'"]),
        ("dates 2026-12-01 14:00 from 2026-12-01", ["only apply to repeating"]),
        ("dates 2026-12-01", ["ends too early", "time like 14:00"]),
        ("dates tomorrow 14:00", ["'tomorrow'", "2026-12-01 14:00"]),
        ("rrule", ["put the RRULE after 'rrule'"]),
        ("rrule FREQ=SECONDLY at 10:00", ["FREQ=SECONDLY", "at most daily"]),
        ("rrule FREQ=MINUTELY at 10:00", ["FREQ=MINUTELY"]),
        ("rrule FREQ=HOURLY;BYDAY=MO at 10:00", ["FREQ=HOURLY"]),
        ("rrule FREQ=WEEKLY;BYDAY=TU;DTSTART=20260101T100000 at 10:00", ["DTSTART"]),
        ("rrule DTSTART:20260101T100000 at 10:00", ["DTSTART"]),
        ("rrule FREQ=WEEKLY;BYDAY=XX at 10:00", ["'XX'"]),
        ("rrule FREQ=WEEKLY at 10:00", ["which days"]),
        ("rrule FREQ=DAILY;BYHOUR=9 at 10:00", ["BYHOUR", "at HH:MM"]),
        ("rrule FREQ=DAILY;INTERVAL=0 at 10:00", ["INTERVAL between 1 and 52"]),
        ("rrule FREQ=DAILY;FOO=1 at 10:00", ["'FOO'"]),
        ("rrule FREQ=DAILY;COUNT=3 at 10:00", ["COUNT", "from YYYY-MM-DD"]),
        ("rrule FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30 at 10:00", ["never produces a session"]),
        ("rrule FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31 at 10:00", ["never produces a session"]),
        ("rrule FREQ=DAILY;UNTIL=tomorrow at 10:00", ["UNTIL"]),
        ("rrule FREQ=DAILY;COUNT=2;UNTIL=20270101 at 10:00 from 2026-12-01", ["COUNT and UNTIL"]),
        ("rrule FREQ=WEEKLY;BYDAY=1MO at 10:00", ["only with MONTHLY or YEARLY"]),
        ("rrule FREQ=MONTHLY;BYDAY=6MO at 10:00", ["impossible BYDAY value '6MO'"]),
        ("rrule FREQ=DAILY", ["ends too early", "time like 14:00"]),
    ],
)
def test_spec_errors_are_helpful(text: str, fragments: list[str]) -> None:
    with pytest.raises(UserError) as info:
        parse(text)
    message = info.value.message
    for fragment in fragments:
        assert fragment in message, message
    assert "Example: " in message
    assert "\n" not in message
    assert info.value.usage is not None


# --- expansion and DST ------------------------------------------------------------------


def test_weekly_london_is_wall_clock_across_2026_dst_changes() -> None:
    s = parse("weekly tue 14:00 Europe/London")
    assert starts(s, utc(2026, 3, 20), utc(2026, 4, 4)) == [
        utc(2026, 3, 24, 14, 0),  # GMT
        utc(2026, 3, 31, 13, 0),  # BST from 29 March
    ]
    assert starts(s, utc(2026, 10, 17), utc(2026, 11, 1)) == [
        utc(2026, 10, 20, 13, 0),  # BST
        utc(2026, 10, 27, 14, 0),  # GMT from 25 October
    ]
    assert starts(s, utc(2026, 1, 1), utc(2026, 1, 8)) == [utc(2026, 1, 6, 14, 0)]
    assert starts(s, utc(2026, 7, 1), utc(2026, 7, 8)) == [utc(2026, 7, 7, 13, 0)]


def test_weekly_new_york_across_dst_changes() -> None:
    s = parse("weekly tue 09:00 America/New_York")
    assert starts(s, utc(2026, 3, 1), utc(2026, 3, 15)) == [
        utc(2026, 3, 3, 14, 0),  # EST
        utc(2026, 3, 10, 13, 0),  # EDT from 8 March
    ]
    assert starts(s, utc(2026, 10, 25), utc(2026, 11, 8)) == [
        utc(2026, 10, 27, 13, 0),
        utc(2026, 11, 3, 14, 0),  # EST from 1 November
    ]


def test_session_in_spring_forward_gap_moves_forward() -> None:
    s = parse("daily 02:30 America/New_York")
    assert starts(s, utc(2026, 3, 7), utc(2026, 3, 10)) == [
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7, 30),  # 02:30 does not exist: 03:30 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]
    london = parse("daily 01:30 Europe/London")
    assert starts(london, utc(2026, 3, 28), utc(2026, 3, 31)) == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 30),  # 01:30 does not exist: 02:30 BST
        utc(2026, 3, 30, 0, 30),
    ]


def test_session_in_fall_back_fold_happens_once_at_first_occurrence() -> None:
    s = parse("daily 01:30 Europe/London")
    assert starts(s, utc(2026, 10, 24), utc(2026, 10, 27)) == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # first 01:30 (BST), not the second (GMT)
        utc(2026, 10, 26, 1, 30),
    ]
    ny = parse("weekly sun 01:30 America/New_York")
    assert starts(ny, utc(2026, 10, 31), utc(2026, 11, 2)) == [utc(2026, 11, 1, 5, 30)]


def test_every_two_weeks_phase_is_fixed_without_from() -> None:
    s = parse("every 2 weeks thu 09:30 UTC")
    expected = [utc(2026, 12, 3, 9, 30), utc(2026, 12, 17, 9, 30), utc(2026, 12, 31, 9, 30)]
    assert starts(s, utc(2026, 12, 1), utc(2027, 1, 1)) == expected
    # Whatever window the bot asks about, the same weeks come back.
    seen: set[datetime] = set()
    for offset in range(31):
        after = utc(2026, 11, 20) + timedelta(days=offset, hours=offset % 7)
        found = starts(s, after, after + timedelta(days=14))
        assert len(found) == 1
        seen.update(found)
    assert seen == set(expected)


def test_every_two_weeks_phase_follows_from_date() -> None:
    s = parse("every 2 weeks thu 09:30 America/New_York from 2026-12-10")
    assert starts(s, utc(2026, 11, 1), utc(2027, 1, 15)) == [
        utc(2026, 12, 10, 14, 30),
        utc(2026, 12, 24, 14, 30),
        utc(2027, 1, 7, 14, 30),
    ]


def test_every_three_days_phase_is_stable() -> None:
    s = parse("every 3 days 10:00 UTC")
    full = starts(s, utc(2026, 12, 1), utc(2027, 1, 1))
    assert full[:3] == [utc(2026, 12, 3, 10), utc(2026, 12, 6, 10), utc(2026, 12, 9, 10)]
    for day in range(1, 20):
        after = utc(2026, 12, day)
        assert starts(s, after, after + timedelta(days=10)) == [
            x for x in full if after <= x < after + timedelta(days=10)
        ]


def test_monthly_first_wednesday_and_last_friday() -> None:
    first_wed = parse("monthly first wed 16:00 UTC")
    assert starts(first_wed, utc(2026, 12, 1), utc(2027, 2, 1)) == [
        utc(2026, 12, 2, 16, 0),
        utc(2027, 1, 6, 16, 0),
    ]
    last_fri = parse("monthly last fri 16:00 Europe/London")
    assert starts(last_fri, utc(2026, 12, 1), utc(2027, 2, 1)) == [
        utc(2026, 12, 25, 16, 0),
        utc(2027, 1, 29, 16, 0),
    ]
    day15 = parse("monthly 15 18:00 Europe/London")
    assert starts(day15, utc(2026, 12, 1), utc(2027, 2, 1)) == [
        utc(2026, 12, 15, 18, 0),
        utc(2027, 1, 15, 18, 0),
    ]


def test_from_and_until_are_respected_inclusive() -> None:
    s = parse("weekly tue 14:00 UTC from 2026-12-08 until 2026-12-22")
    assert starts(s, utc(2026, 11, 1), utc(2027, 2, 1)) == [
        utc(2026, 12, 8, 14),
        utc(2026, 12, 15, 14),
        utc(2026, 12, 22, 14),
    ]
    assert starts(s, utc(2026, 12, 23), utc(2027, 2, 1)) == []
    assert starts(s, utc(2026, 1, 1), utc(2026, 12, 8)) == []


def test_dates_are_converted_in_their_zone() -> None:
    s = parse("dates 2026-12-01 14:00, 2027-07-01 14:00 Europe/Berlin")
    assert starts(s, utc(2026, 1, 1), utc(2028, 1, 1)) == [
        utc(2026, 12, 1, 13, 0),
        utc(2027, 7, 1, 12, 0),
    ]
    assert starts(s, utc(2026, 12, 1, 13, 0), utc(2026, 12, 1, 13, 1)) == [utc(2026, 12, 1, 13)]
    assert starts(s, utc(2026, 12, 1, 12, 0), utc(2026, 12, 1, 13, 0)) == []  # before excluded


def test_rrule_and_dates_together_are_merged_and_deduplicated() -> None:
    s = Schedule(
        zone="UTC",
        rrule="FREQ=WEEKLY;BYDAY=TU",
        start_time=time(14, 0),
        dates=(datetime(2026, 12, 1, 14, 0), datetime(2026, 12, 3, 9, 0)),
    )
    assert starts(s, utc(2026, 12, 1), utc(2026, 12, 9)) == [
        utc(2026, 12, 1, 14),
        utc(2026, 12, 3, 9),
        utc(2026, 12, 8, 14),
    ]


def test_raw_rrule_count_until_and_setpos() -> None:
    counted = parse("rrule FREQ=WEEKLY;BYDAY=TU;COUNT=3 at 14:00 UTC from 2026-12-01")
    assert starts(counted, utc(2026, 1, 1), utc(2028, 1, 1)) == [
        utc(2026, 12, 1, 14),
        utc(2026, 12, 8, 14),
        utc(2026, 12, 15, 14),
    ]
    assert starts(counted, utc(2026, 12, 10), utc(2027, 12, 1)) == [utc(2026, 12, 15, 14)]
    until_day = parse("rrule FREQ=DAILY;UNTIL=20261203 at 14:00 UTC from 2026-12-01")
    assert starts(until_day, utc(2026, 11, 1), utc(2027, 1, 1)) == [
        utc(2026, 12, 1, 14),
        utc(2026, 12, 2, 14),
        utc(2026, 12, 3, 14),  # a DATE UNTIL includes that whole day
    ]
    until_instant = parse("rrule FREQ=DAILY;UNTIL=20261202T130000Z at 14:00 Europe/Berlin")
    assert starts(until_instant, utc(2026, 11, 30), utc(2027, 1, 1)) == [
        utc(2026, 11, 30, 13),
        utc(2026, 12, 1, 13),
        utc(2026, 12, 2, 13),
    ]
    last_weekday = parse("rrule FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1 at 17:00 UTC")
    assert starts(last_weekday, utc(2026, 10, 1), utc(2027, 2, 1)) == [
        utc(2026, 10, 30, 17),
        utc(2026, 11, 30, 17),
        utc(2026, 12, 31, 17),
        utc(2027, 1, 29, 17),
    ]


def test_occurrences_window_must_be_aware() -> None:
    s = parse("daily 10:00")
    with pytest.raises(ValueError):
        occurrences(s, after=datetime(2026, 1, 1), before=utc(2026, 2, 1))
    with pytest.raises(ValueError):
        occurrences(s, after=utc(2026, 1, 1), before=datetime(2026, 2, 1))
    assert occurrences(s, after=utc(2026, 2, 1), before=utc(2026, 1, 1)) == []


def test_window_in_another_offset_is_handled_as_instants() -> None:
    s = parse("weekly tue 14:00 Europe/London")
    tokyo = ZoneInfo("Asia/Tokyo")
    found = starts(s, datetime(2026, 12, 1, 23, 0, tzinfo=tokyo), utc(2026, 12, 16))
    assert found == [utc(2026, 12, 1, 14), utc(2026, 12, 8, 14), utc(2026, 12, 15, 14)]
    assert all(x.tzinfo is UTC for x in found)


def test_fast_forward_matches_brute_force_expansion() -> None:
    """Expanding near the window must give what dateutil gives from the true start."""
    bodies = [
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,TU,FR;WKST=SU;BYSETPOS=2",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA,SU,MO;WKST=TH",
        "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=31",
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR",
        "FREQ=YEARLY;INTERVAL=2;BYWEEKNO=1,20;BYDAY=MO",
        "FREQ=DAILY;INTERVAL=7;BYMONTH=1,6",
    ]
    for body in bodies:
        for start in (None, date(2003, 5, 17), date(2026, 2, 28)):
            spec = f"rrule {body} at 08:15 America/New_York" + (f" from {start}" if start else "")
            s = parse(spec)
            zone = ZoneInfo("America/New_York")
            dtstart = datetime.combine(start or date(2000, 1, 3), time(8, 15))
            reference = rrulestr(body, dtstart=dtstart)
            for after in (utc(2026, 1, 1), utc(2026, 3, 5, 12), utc(2027, 10, 30)):
                before = after + timedelta(days=120)
                walls = reference.between(datetime(2025, 1, 1), datetime(2029, 1, 1))
                expected = [x for w in walls if after <= (x := to_utc(w, zone)) < before]
                assert starts(s, after, before) == expected, (spec, after)


def test_fast_forward_keeps_whole_weeks_for_bysetpos() -> None:
    # From Tuesday 1 Dec: dateutil's first week is cut at DTSTART ({Tu, Fr} -> 2nd is Fri),
    # every later week is whole ({Mo, Tu, Fr} -> 2nd is Tue). Skipping ahead must not
    # start a later week mid-way, or it would report Fri 18 Dec.
    s = parse("rrule FREQ=WEEKLY;BYDAY=MO,TU,FR;BYSETPOS=2 at 10:00 UTC from 2026-12-01")
    assert starts(s, utc(2026, 11, 1), utc(2026, 12, 16)) == [
        utc(2026, 12, 4, 10),
        utc(2026, 12, 8, 10),
        utc(2026, 12, 15, 10),
    ]
    assert starts(s, utc(2026, 12, 17), utc(2026, 12, 24)) == [utc(2026, 12, 22, 10)]


_BODY_PARTS = [
    "INTERVAL=2", "INTERVAL=3", "INTERVAL=5", "COUNT=7", "BYDAY=MO", "BYDAY=MO,TU,FR",
    "BYDAY=1MO", "BYDAY=-1FR", "BYMONTHDAY=31", "BYMONTHDAY=1,15", "BYMONTH=2,4,11",
    "BYSETPOS=1", "BYSETPOS=-1", "BYSETPOS=2", "WKST=SU", "WKST=TH", "BYWEEKNO=1,20",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
    st.lists(st.sampled_from(_BODY_PARTS), max_size=4, unique_by=lambda p: p.split("=")[0]),
    st.one_of(st.none(), st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 1, 1))),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    st.sampled_from(["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe"]),
)
def test_fast_forward_matches_brute_force_for_any_rule(
    freq: str, parts: list[str], start: date | None, after_naive: datetime, zone_name: str
) -> None:
    body = ";".join([f"FREQ={freq}", *parts])
    spec = f"rrule {body} at 02:30 {zone_name}" + (f" from {start}" if start else "")
    try:
        s = parse(spec)
    except UserError:
        return  # e.g. BYWEEKNO with FREQ=WEEKLY, COUNT without from
    zone = ZoneInfo(zone_name)
    after = after_naive.replace(tzinfo=UTC)
    before = after + timedelta(days=45)
    reference = rrulestr(body, dtstart=datetime.combine(start or date(2000, 1, 3), time(2, 30)))
    lo = after.astimezone(zone).replace(tzinfo=None) - timedelta(days=2)
    hi = before.astimezone(zone).replace(tzinfo=None) + timedelta(days=2)
    instants = {to_utc(w, zone) for w in reference.between(lo, hi, inc=True)}
    assert starts(s, after, before) == sorted(x for x in instants if after <= x < before)


def test_ten_thousand_schedules_over_fourteen_days() -> None:
    zones = ["UTC", "Europe/London", "America/New_York", "Asia/Tokyo", "Europe/Berlin"]
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    # (spec template, sessions in any 14-day window without a DST change)
    forms = [
        ("weekly {d} {t} {z}", 2),
        ("weekly {d},{e} {t} {z}", 4),
        ("every 2 weeks {d} {t} {z}", 1),
        ("daily {t} {z}", 14),
        ("every 7 days {t} {z}", 2),
    ]
    schedules: list[tuple[Schedule, int]] = []
    for i in range(10_000):
        template, count = forms[i % len(forms)]
        d, e = days[i % 7], days[(i + 3) % 7]
        spec = template.format(d=d, e=e, t=f"{6 + i % 14}:{(i * 5) % 60:02d}", z=zones[i % 5])
        schedules.append((parse(spec), count))
    after = utc(2027, 1, 11, 7, 13)  # mid-January: no DST change in these zones
    before = after + timedelta(days=14)
    total = 0
    for schedule, count in schedules:
        found = occurrences(schedule, after=after, before=before)
        assert len(found) == count, describe(schedule)
        total += len(found)
    assert total == 2000 * (2 + 4 + 1 + 14 + 2)


# --- JSON -------------------------------------------------------------------------------


def test_to_json_shape() -> None:
    s = parse("every 2 weeks thu 09:30 America/New_York from 2026-12-01 until 2027-06-30 for 1h")
    assert s.to_json() == {
        "v": 1,
        "zone": "America/New_York",
        "duration_seconds": 3600,
        "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH",
        "start_time": "09:30:00",
        "start_date": "2026-12-01",
        "until": "2027-06-30",
        "dates": [],
    }


@pytest.mark.parametrize(
    "spec",
    [
        "weekly tue 14:00 Europe/London for 90m",
        "every 2 weeks thu 09:30 America/New_York from 2026-12-01 until 2027-01-31",
        "monthly last fri 16:00 UTC for 45s",
        "dates 2026-12-01 14:00, 2026-12-15 14:00 Europe/Berlin for 60m",
        "rrule FREQ=DAILY;UNTIL=20261202T130000Z at 14:00 Europe/Berlin",
    ],
)
def test_json_round_trip_is_exact(spec: str) -> None:
    s = parse(spec)
    assert Schedule.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_from_json_rejects_malformed_data() -> None:
    good = parse("weekly tue 14:00").to_json()
    for key, value in [
        ("v", 2),
        ("zone", "Europe/Lundon"),
        ("zone", "europe/london"),  # not canonical
        ("duration_seconds", "90"),
        ("duration_seconds", 0),
        ("rrule", "FREQ=SECONDLY"),
        ("start_time", None),
        ("start_time", "25:00"),
        ("dates", "2026-12-01"),
    ]:
        with pytest.raises(ValueError):
            Schedule.from_json({**good, key: value})


def test_schedule_invariants() -> None:
    with pytest.raises(ValueError):
        Schedule(zone="UTC")  # nothing scheduled
    with pytest.raises(ValueError):
        Schedule(zone="UTC", rrule="FREQ=DAILY")  # no start_time
    with pytest.raises(ValueError):
        Schedule(zone="UTC", dates=(utc(2026, 12, 1),))  # aware date
    with pytest.raises(ValueError):
        Schedule(zone="UTC", rrule="FREQ=DAILY", start_time=time(9), duration=timedelta(0))
    with pytest.raises(ValueError):
        Schedule(zone="UTC", rrule="FREQ=DAILY;COUNT=2", start_time=time(9))  # COUNT needs from


# --- describe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("weekly tue 14:00 Europe/London", "every Tuesday at 14:00 (Europe/London), 90 min"),
        (
            "every 2 weeks thu 09:30 America/New_York from 2026-12-01",
            "every 2 weeks on Thursday at 09:30 (America/New_York) from 2026-12-01, 90 min",
        ),
        (
            "monthly first wed 16:00 UTC",
            "on the first Wednesday of every month at 16:00 (UTC), 90 min",
        ),
        (
            "dates 2026-12-01 14:00, 2026-12-15 14:00 Europe/Berlin",
            "on 2 dates: Tue 1 Dec 2026 14:00, Tue 15 Dec 2026 14:00 (Europe/Berlin), 90 min",
        ),
        (
            "weekly mon,wed,fri 9:00 for 1h",
            "every Monday, Wednesday and Friday at 09:00 (UTC), 1 h",
        ),
        ("daily 10:00 for 2h30m", "every day at 10:00 (UTC), 2 h 30 min"),
        ("every 3 days 10:00", "every 3 days at 10:00 (UTC), 90 min"),
        ("monthly last fri 16:00", "on the last Friday of every month at 16:00 (UTC), 90 min"),
        ("monthly 15 18:00 for 2d", "on the 15th of every month at 18:00 (UTC), 2 days"),
        ("monthly last day 18:00", "on the last day of every month at 18:00 (UTC), 90 min"),
        (
            "every 2 months 2nd tue 19:00 until 2027-06-30",
            "on the second Tuesday of every 2 months at 19:00 (UTC) until 2027-06-30, 90 min",
        ),
        (
            "rrule FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1 at 10:00",
            "by RRULE FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1 at 10:00 (UTC), 90 min",
        ),
        (
            "weekly tue 14:00 for 26h",
            "every Tuesday at 14:00 (UTC), 1 day 2 h",
        ),
    ],
)
def test_describe(spec: str, text: str) -> None:
    assert describe(parse(spec)) == text


def test_describe_many_dates_is_shortened() -> None:
    spec = "dates " + ", ".join(f"2026-12-{d:02d} 10:00" for d in range(1, 9))
    assert describe(parse(spec)) == (
        "on 8 dates: Tue 1 Dec 2026 10:00, Wed 2 Dec 2026 10:00, Thu 3 Dec 2026 10:00, "
        "Fri 4 Dec 2026 10:00, Sat 5 Dec 2026 10:00 and 3 more (UTC), 90 min"
    )


# --- robustness -------------------------------------------------------------------------

_WORDS = [
    "weekly", "daily", "every", "monthly", "dates", "rrule", "other", "2", "0", "53", "999",
    "weeks", "days", "months", "mon", "tue,thu", "sunday", ",", "and", "at", "on", "the",
    "first", "last", "1st", "4th", "15", "31", "day", "14:00", "9:30", "25:00", "for", "90m",
    "1h30m", "0m", "h", "min", "from", "until", "2026-12-01", "2026-02-30", "1999-01-01",
    "2026-12-01T14:00", "UTC", "Europe/London", "europe/lundon", "Pacific/Apia",
]  # fmt: skip
_RRULE_PARTS = [
    "FREQ=DAILY", "FREQ=WEEKLY", "FREQ=MONTHLY", "FREQ=YEARLY", "FREQ=SECONDLY", "INTERVAL=2",
    "INTERVAL=0", "COUNT=3", "UNTIL=20270101", "UNTIL=20270101T120000Z", "UNTIL=99999999",
    "BYDAY=MO,FR", "BYDAY=1MO", "BYDAY=-1FR", "BYDAY=5SU", "BYDAY=53MO", "BYMONTHDAY=31",
    "BYMONTHDAY=-1", "BYMONTH=2", "BYSETPOS=3", "BYYEARDAY=366", "BYWEEKNO=53", "WKST=SU",
    "DTSTART=1", "=", "BYDAY=", "X",
]  # fmt: skip
_SPEC_SOUP = st.lists(st.sampled_from(_WORDS), max_size=12).map(" ".join)
_RRULE_SOUP = st.builds(
    lambda parts, rest: "rrule " + ";".join(parts) + " " + " ".join(rest),
    st.lists(st.sampled_from(_RRULE_PARTS), min_size=1, max_size=5),
    st.lists(st.sampled_from(["at", "14:00", "from", "2026-12-01", "UTC", "until"]), max_size=5),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), _SPEC_SOUP, _RRULE_SOUP))
def test_arbitrary_text_parses_or_raises_user_error(text: str) -> None:
    for parse_one in (parse_duration, parse_local_datetime, parse_zone):
        with contextlib.suppress(UserError):
            parse_one(text)
    try:
        schedule = parse_schedule_spec(text, default_zone="Europe/London")
    except UserError as exc:
        assert exc.message and "\n" not in exc.message
        return
    # Whatever parses must also expand, describe and round-trip.
    found = occurrences(schedule, after=utc(2026, 12, 1), before=utc(2027, 1, 15))
    assert found == sorted(set(found))
    assert describe(schedule)
    assert Schedule.from_json(schedule.to_json()) == schedule
