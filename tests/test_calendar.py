"""Business-time arithmetic: weekends, holidays, DST both ways, closing-time edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from acw_sync.calendar import BusinessCalendar, Due, OpeningHours

NY = ZoneInfo("America/New_York")
NINE_TO_FIVE = {d: (OpeningHours(time(9), time(17)),) for d in range(5)}


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


@pytest.fixture
def centre() -> BusinessCalendar:
    return BusinessCalendar(
        timezone="America/New_York",
        hours=NINE_TO_FIVE,
        holiday_country="US",
        closed_dates=frozenset({date(2026, 12, 24)}),
    )


def test_within_a_day(centre: BusinessCalendar) -> None:
    assert centre.add(ny(2026, 3, 4, 10, 0), timedelta(hours=1)) == ny(2026, 3, 4, 11, 0)
    assert centre.is_open(ny(2026, 3, 4, 9, 0)) and not centre.is_open(ny(2026, 3, 4, 17, 0))


def test_one_minute_before_closing_rolls_the_rest_to_the_next_morning(
    centre: BusinessCalendar,
) -> None:
    assert centre.add(ny(2026, 3, 4, 16, 59), timedelta(hours=1)) == ny(2026, 3, 5, 9, 59)
    assert centre.end_of_business_day(ny(2026, 3, 4, 16, 59)) == ny(2026, 3, 4, 17, 0)
    # exactly at closing the day is over: the next business day's close
    assert centre.end_of_business_day(ny(2026, 3, 4, 17, 0)) == ny(2026, 3, 5, 17, 0)
    # an amount ending exactly at closing stays today
    assert centre.add(ny(2026, 3, 4, 16, 0), timedelta(hours=1)) == ny(2026, 3, 4, 17, 0)


def test_weekend_skips_to_monday(centre: BusinessCalendar) -> None:
    friday_late = ny(2026, 3, 6, 16, 30)
    assert centre.add(friday_late, timedelta(hours=1)) == ny(2026, 3, 9, 9, 30)
    saturday = ny(2026, 3, 7, 11, 0)
    assert centre.add(saturday, timedelta(hours=1)) == ny(2026, 3, 9, 10, 0)
    assert centre.at_next_business_day(saturday, time(10)) == ny(2026, 3, 9, 10, 0)
    assert centre.end_of_business_day(saturday) == ny(2026, 3, 9, 17, 0)


def test_public_holidays_and_closed_dates(centre: BusinessCalendar) -> None:
    # Thanksgiving 2026 is Thursday 26 November
    assert centre.holiday_name(date(2026, 11, 26)) == "Thanksgiving Day"
    assert centre.at_next_business_day(ny(2026, 11, 25, 15, 0), time(10)) == ny(2026, 11, 27, 10)
    # 3 July 2026 is Independence Day observed (a Friday): Thursday late -> Monday 6 July
    assert centre.add(ny(2026, 7, 2, 16, 30), timedelta(hours=1)) == ny(2026, 7, 6, 9, 30)
    # an admin's closed date, then Christmas: 23 Dec 16:00 + 2h -> 28 Dec 10:00
    assert centre.add(ny(2026, 12, 23, 16, 0), timedelta(hours=2)) == ny(2026, 12, 28, 10, 0)


def test_daylight_saving_starts(centre: BusinessCalendar) -> None:
    # US clocks go forward on Sunday 8 March 2026: Friday is UTC-5, Monday UTC-4
    friday = ny(2026, 3, 6, 16, 30)
    monday = centre.add(friday, timedelta(hours=1))
    assert monday.astimezone(NY).hour == 9 and monday.astimezone(NY).minute == 30
    assert monday == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    assert friday == datetime(2026, 3, 6, 21, 30, tzinfo=UTC)


def test_daylight_saving_ends(centre: BusinessCalendar) -> None:
    # US clocks go back on Sunday 1 November 2026: Friday is UTC-4, Monday UTC-5
    due = centre.at_next_business_day(ny(2026, 10, 30, 12, 0), time(10))
    assert due == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def test_always_open_calendar_counts_real_hours_across_dst() -> None:
    berlin = BusinessCalendar(timezone="Europe/Berlin")
    # 29 March 2026, 01:30 CET; clocks jump 02:00 -> 03:00; three real hours later is 05:30 CEST
    start = datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    due = berlin.add(start, timedelta(hours=3))
    assert due - start.astimezone(UTC) == timedelta(hours=3)
    assert due.astimezone(ZoneInfo("Europe/Berlin")).hour == 5
    # 25 October 2026 has 25 hours; the day's end is midnight local, 25 h after the start
    day_start = datetime(2026, 10, 25, 0, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    end = berlin.end_of_business_day(day_start)
    assert end - day_start.astimezone(UTC) == timedelta(hours=25)


def test_split_shifts_and_business_days() -> None:
    cal = BusinessCalendar(
        timezone="Europe/London",
        hours={
            d: (OpeningHours.parse("08:00-12:00"), OpeningHours.parse("13:00-17:00"))
            for d in range(6)
        },
    )
    london = ZoneInfo("Europe/London")
    start = datetime(2026, 6, 1, 11, 30, tzinfo=london)
    assert cal.add(start, timedelta(hours=1)) == datetime(2026, 6, 1, 13, 30, tzinfo=london)
    assert not cal.is_open(datetime(2026, 6, 1, 12, 15, tzinfo=london))
    # Saturday is open, Sunday closed: +1d from Saturday 10:00 is Monday 10:00
    assert cal.add_business_days(datetime(2026, 6, 6, 10, tzinfo=london), 1) == datetime(
        2026, 6, 8, 10, tzinfo=london
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("+30m", "relative"),
        ("+2h", "relative"),
        ("+1d", "days"),
        ("next business day 10:00", "next_day"),
        ("Next Business Day at 9:30", "next_day"),
        ("end of business day", "end_of_day"),
        ("same business day", "end_of_day"),
        ("promised", "promised"),
    ],
)
def test_due_forms(text: str, kind: str) -> None:
    assert Due.parse(text).kind == kind


@pytest.mark.parametrize("text", ["tomorrow", "+2x", "+1.5d", "next business day 25:00", "2h"])
def test_due_refusals_say_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match="write"):
        Due.parse(text)


def test_opening_hours_refusals() -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        OpeningHours.parse("9-5")
    with pytest.raises(ValueError, match="closes before it opens"):
        OpeningHours.parse("17:00-09:00")
    assert OpeningHours.parse("00:00-24:00").end is None
