"""Unit tests for bot.domain.timeparse: parsing, DST conversion, formatting."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.errors import UserError
from bot.domain.timeparse import (
    format_duration,
    format_local,
    format_wall,
    parse_date,
    parse_duration,
    parse_local_datetime,
    parse_time,
    parse_zone,
    quote_input,
    to_utc,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")

# --- parse_duration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("45s", timedelta(seconds=45)),
        ("1w", timedelta(weeks=1)),
        ("  1H 30M ", timedelta(minutes=90)),
        ("1 h 30 min", timedelta(minutes=90)),
        ("2 days", timedelta(days=2)),
        ("1 day 2 h", timedelta(hours=26)),
        ("90 minutes", timedelta(minutes=90)),
        ("366d", timedelta(days=366)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("90", "needs a unit"),
        ("", "missing"),
        ("0m", "more than zero"),
        ("367d", "too long"),
        ("53w", "too long"),
        ("9" * 5000 + "m", "too long"),
        ("1.5h", "Can't read the duration"),
        ("2 fortnights", "Can't read the duration"),
        ("1h1h", "same unit twice"),
        ("-5m", "Can't read the duration"),
        ("٩٠m", "Can't read the duration"),  # Arabic-Indic digits are not accepted
    ],
)
def test_parse_duration_rejects(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as info:
        parse_duration(text)
    assert fragment in info.value.message
    assert "\n" not in info.value.message


# --- parse_zone -----------------------------------------------------------------------


def test_parse_zone_is_case_insensitive_and_canonical() -> None:
    assert parse_zone("europe/london").key == "Europe/London"
    assert parse_zone(" AMERICA/NEW_YORK ").key == "America/New_York"
    assert parse_zone("utc").key == "UTC"
    assert parse_zone("UTC").key == "UTC"


def test_parse_zone_unknown_suggests_close_name() -> None:
    with pytest.raises(UserError) as info:
        parse_zone("Europe/Lundon")
    assert info.value.message == "Unknown time zone 'Europe/Lundon'. Did you mean Europe/London?"


def test_parse_zone_unknown_without_suggestion() -> None:
    with pytest.raises(UserError) as info:
        parse_zone("Mars/Olympus_Mons")
    assert info.value.message == (
        "Unknown time zone 'Mars/Olympus_Mons'. Use an IANA name like Europe/London."
    )


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "/etc/localtime", "Europe/\x00London"])
def test_parse_zone_rejects_paths_and_junk(name: str) -> None:
    with pytest.raises(UserError):
        parse_zone(name)


# --- dates and times ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01 14:00", datetime(2026, 12, 1, 14, 0)),
        ("2026-12-01T14:00", datetime(2026, 12, 1, 14, 0)),
        ("2026-12-01 9:30", datetime(2026, 12, 1, 9, 30)),
        ("  2026-12-01   09:30 ", datetime(2026, 12, 1, 9, 30)),
        ("2000-01-01 00:00", datetime(2000, 1, 1, 0, 0)),
        ("2100-12-31 23:59", datetime(2100, 12, 31, 23, 59)),
    ],
)
def test_parse_local_datetime_accepts(text: str, expected: datetime) -> None:
    result = parse_local_datetime(text)
    assert result == expected
    assert result.tzinfo is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2026-12-01", "YYYY-MM-DD HH:MM"),
        ("tomorrow 14:00", "YYYY-MM-DD HH:MM"),
        ("2026-12-01 25:00", "'25:00' is not a valid time"),
        ("2026-12-01 14:60", "'14:60' is not a valid time"),
        ("2026-02-30 14:00", "There is no date '2026-02-30'"),
        ("1999-12-31 14:00", "between 2000 and 2100"),
        ("2101-01-01 14:00", "between 2000 and 2100"),
    ],
)
def test_parse_local_datetime_rejects(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as info:
        parse_local_datetime(text)
    assert fragment in info.value.message


def test_parse_date_and_time() -> None:
    assert parse_date("2026-12-01") == date(2026, 12, 1)
    assert parse_time("14:00") == time(14, 0)
    assert parse_time("9:30") == time(9, 30)
    assert parse_time("0:05") == time(0, 5)
    for bad_date in ("2026-13-01", "01-12-2026", "2026/12/01", "1999-01-01", ""):
        with pytest.raises(UserError):
            parse_date(bad_date)
    assert parse_time("2pm") == time(14, 0)
    assert parse_time("2:30pm") == time(14, 30)
    assert parse_time("12am") == time(0, 0)
    for bad_time in ("25:00", "24:00", "14", "13pm", "0am", "14:0", "14:00:00", ""):
        with pytest.raises(UserError):
            parse_time(bad_time)


# --- to_utc ---------------------------------------------------------------------------


def test_to_utc_plain_winter_and_summer() -> None:
    assert to_utc(datetime(2026, 1, 13, 14, 0), LONDON) == datetime(2026, 1, 13, 14, 0, tzinfo=UTC)
    assert to_utc(datetime(2026, 7, 14, 14, 0), LONDON) == datetime(2026, 7, 14, 13, 0, tzinfo=UTC)


def test_to_utc_spring_forward_gap_moves_forward() -> None:
    # New York skips 02:00-03:00 on 2026-03-08: 02:30 becomes 03:30 EDT.
    result = to_utc(datetime(2026, 3, 8, 2, 30), NEW_YORK)
    assert result == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert result.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 30)
    # London skips 01:00-02:00 on 2026-03-29: 01:30 becomes 02:30 BST; 02:30 is real BST.
    assert to_utc(datetime(2026, 3, 29, 1, 30), LONDON) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert to_utc(datetime(2026, 3, 29, 2, 30), LONDON) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_to_utc_fall_back_fold_takes_first_occurrence() -> None:
    assert to_utc(datetime(2026, 10, 25, 1, 30), LONDON) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    assert to_utc(datetime(2026, 11, 1, 1, 30), NEW_YORK) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )


def test_to_utc_ignores_incoming_fold_and_rejects_aware() -> None:
    folded = datetime(2026, 10, 25, 1, 30, fold=1)
    assert to_utc(folded, LONDON) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        to_utc(datetime(2026, 1, 1, tzinfo=UTC), LONDON)


# --- formatting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "zone", "expected"),
    [
        (datetime(2026, 12, 1, 14, 0, tzinfo=UTC), "Europe/London", "Tue 1 Dec 2026, 14:00 GMT"),
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "Europe/London", "Wed 1 Jul 2026, 13:00 BST"),
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "America/New_York", "Wed 1 Jul 2026, 08:00 EDT"),
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "Asia/Dubai", "Wed 1 Jul 2026, 16:00 UTC+04:00"),
        (
            datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
            "America/Sao_Paulo",
            "Wed 1 Jul 2026, 09:00 UTC-03:00",
        ),
        (
            datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
            "Asia/Kathmandu",
            "Wed 1 Jul 2026, 17:45 UTC+05:45",
        ),
        (datetime(2027, 1, 3, 9, 5, tzinfo=UTC), "UTC", "Sun 3 Jan 2027, 09:05 UTC"),
    ],
)
def test_format_local(instant: datetime, zone: str, expected: str) -> None:
    assert format_local(instant, ZoneInfo(zone)) == expected


def test_format_local_rejects_naive() -> None:
    with pytest.raises(ValueError):
        format_local(datetime(2026, 1, 1), LONDON)


def test_format_wall() -> None:
    assert format_wall(datetime(2026, 12, 15, 9, 30)) == "Tue 15 Dec 2026 09:30"


@pytest.mark.parametrize(
    ("td", "expected"),
    [
        (timedelta(minutes=90), "90 min"),
        (timedelta(minutes=45), "45 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=2), "2 h"),
        (timedelta(hours=2, minutes=30), "2 h 30 min"),
        (timedelta(days=2), "2 days"),
        (timedelta(days=1, hours=2), "1 day 2 h"),
        (timedelta(days=1, minutes=5), "1 day 5 min"),
        (timedelta(weeks=1), "7 days"),
        (timedelta(seconds=45), "45 s"),
        (timedelta(0), "0 min"),
    ],
)
def test_format_duration(td: timedelta, expected: str) -> None:
    assert format_duration(td) == expected


def test_format_duration_round_trips_through_parse() -> None:
    for minutes in (1, 45, 60, 90, 100, 150, 24 * 60, 26 * 60 + 15, 366 * 24 * 60):
        td = timedelta(minutes=minutes)
        assert parse_duration(format_duration(td)) == td
    with pytest.raises(ValueError):
        format_duration(timedelta(minutes=-1))


def test_quote_input_is_one_short_line() -> None:
    assert quote_input("a\nb\tc") == "'a b c'"
    assert quote_input("x" * 100) == "'" + "x" * 39 + "…'"


# --- robustness -----------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_parsers_raise_only_user_error_on_arbitrary_text(text: str) -> None:
    for parse in (parse_duration, parse_zone, parse_local_datetime, parse_date, parse_time):
        try:
            parse(text)
        except UserError as exc:
            assert exc.message
            assert "\n" not in exc.message


_DIGITISH = st.text(alphabet="0123456789-:T tmhdws", max_size=20)


@settings(max_examples=400, deadline=None)
@given(_DIGITISH)
def test_parsers_raise_only_user_error_on_near_miss_text(text: str) -> None:
    for parse in (parse_duration, parse_local_datetime, parse_date, parse_time):
        with contextlib.suppress(UserError):
            parse(text)
