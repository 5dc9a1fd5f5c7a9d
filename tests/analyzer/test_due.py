"""Due-time rules: every convention of the README, across weekends, month ends and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acw_sync.analyzer import resolve_due

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")


def due(text: str, ref: datetime, zone: ZoneInfo = BERLIN) -> datetime | None:
    found = resolve_due(text, ref, zone)
    return None if found is None else found.at.astimezone(zone).replace(tzinfo=None)


FRI = datetime(2026, 3, 27, 16, 40, tzinfo=BERLIN)  # Friday before the spring DST change
WED = datetime(2026, 6, 10, 11, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("text", "ref", "expected"),
    [
        # bare hours are business hours
        ("I'll call you back tomorrow at 3", FRI, datetime(2026, 3, 28, 15, 0)),
        ("I'll call you tomorrow at 9", FRI, datetime(2026, 3, 28, 9, 0)),
        ("call you tomorrow at 12", FRI, datetime(2026, 3, 28, 12, 0)),
        ("tomorrow at 3pm", FRI, datetime(2026, 3, 28, 15, 0)),
        ("tomorrow at 3 p.m.", FRI, datetime(2026, 3, 28, 15, 0)),
        ("tomorrow at 10am", FRI, datetime(2026, 3, 28, 10, 0)),
        ("tomorrow at 15:30", FRI, datetime(2026, 3, 28, 15, 30)),
        ("at half past two tomorrow", FRI, datetime(2026, 3, 28, 14, 30)),
        ("tomorrow at quarter to four", FRI, datetime(2026, 3, 28, 15, 45)),
        ("tomorrow at 8 in the evening", FRI, datetime(2026, 3, 28, 20, 0)),
        ("tmrw 10am", FRI, datetime(2026, 3, 28, 10, 0)),
        # parts of the day
        ("tomorrow morning", FRI, datetime(2026, 3, 28, 9, 0)),
        ("first thing tomorrow", FRI, datetime(2026, 3, 28, 9, 0)),
        ("tomorrow afternoon", FRI, datetime(2026, 3, 28, 14, 0)),
        ("by end of day tomorrow", FRI, datetime(2026, 3, 28, 17, 0)),
        ("this afternoon", WED, datetime(2026, 6, 10, 14, 0)),
        ("today", WED, datetime(2026, 6, 10, 17, 0)),
        ("by noon on Monday", WED, datetime(2026, 6, 15, 12, 0)),
        # days: 09:00, or 17:00 for a deadline
        ("we'll send the replacement by Friday", WED, datetime(2026, 6, 12, 17, 0)),
        ("I'll call you on Friday", WED, datetime(2026, 6, 12, 9, 0)),
        ("by Friday", FRI, datetime(2026, 4, 3, 17, 0)),  # said on a Friday: the next one
        ("next Friday", WED, datetime(2026, 6, 19, 9, 0)),  # Friday of next calendar week
        ("this Friday", WED, datetime(2026, 6, 12, 9, 0)),
        ("on Monday", FRI, datetime(2026, 3, 30, 9, 0)),
        ("next Monday at 8", FRI, datetime(2026, 3, 30, 8, 0)),
        ("the day after tomorrow", FRI, datetime(2026, 3, 29, 9, 0)),
        ("next business day", FRI, datetime(2026, 3, 30, 9, 0)),
        # weeks and months
        ("can you call me next week", FRI, datetime(2026, 3, 30, 9, 0)),
        ("after the weekend", FRI, datetime(2026, 3, 30, 9, 0)),
        ("by the end of the week", WED, datetime(2026, 6, 12, 17, 0)),
        ("by the end of next week", WED, datetime(2026, 6, 19, 17, 0)),
        ("by the end of the month", WED, datetime(2026, 6, 30, 17, 0)),
        # May 2026 ends on a Sunday: its last weekday is Friday the 29th
        (
            "end of the month",
            datetime(2026, 5, 25, 10, 0, tzinfo=BERLIN),
            datetime(2026, 5, 29, 17, 0),
        ),
        ("next month", datetime(2026, 7, 20, 10, 0, tzinfo=BERLIN), datetime(2026, 8, 3, 9, 0)),
        ("in a month", datetime(2026, 1, 31, 10, 0, tzinfo=BERLIN), datetime(2026, 2, 28, 10, 0)),
        ("next Monday", datetime(2026, 12, 31, 15, 0, tzinfo=BERLIN), datetime(2027, 1, 4, 9, 0)),
        (
            "end of the month",
            datetime(2026, 12, 28, 9, 0, tzinfo=BERLIN),
            datetime(2026, 12, 31, 17, 0),
        ),
        # spans
        ("in two hours", FRI, datetime(2026, 3, 27, 18, 40)),
        ("in 20 minutes", FRI, datetime(2026, 3, 27, 17, 0)),
        ("in half an hour", FRI, datetime(2026, 3, 27, 17, 10)),
        ("within the hour", FRI, datetime(2026, 3, 27, 17, 40)),
        ("in a couple of days", WED, datetime(2026, 6, 12, 11, 0)),
        ("in two weeks", WED, datetime(2026, 6, 24, 11, 0)),
        ("within 3 days", WED, datetime(2026, 6, 13, 17, 0)),
        (
            "within 3 business days",
            datetime(2026, 4, 30, 10, 0, tzinfo=BERLIN),
            datetime(2026, 5, 5, 17, 0),
        ),
        ("within 5 working days", FRI, datetime(2026, 4, 3, 17, 0)),
        # explicit dates
        (
            "on June 5th at 10:30",
            datetime(2026, 5, 20, 9, 0, tzinfo=BERLIN),
            datetime(2026, 6, 5, 10, 30),
        ),
        (
            "by the 5th of June",
            datetime(2026, 5, 20, 9, 0, tzinfo=BERLIN),
            datetime(2026, 6, 5, 17, 0),
        ),
        ("on the 31st", datetime(2026, 4, 10, 9, 0, tzinfo=BERLIN), datetime(2026, 5, 31, 9, 0)),
        ("on 2026-07-01", WED, datetime(2026, 7, 1, 9, 0)),
        ("on March 3rd", WED, datetime(2027, 3, 3, 9, 0)),
        # a clock time alone: today if ahead, else tomorrow
        ("at 9", datetime(2026, 6, 10, 16, 0, tzinfo=BERLIN), datetime(2026, 6, 11, 9, 0)),
        ("at 5", datetime(2026, 6, 10, 10, 0, tzinfo=BERLIN), datetime(2026, 6, 10, 17, 0)),
    ],
)
def test_conventions(text: str, ref: datetime, expected: datetime) -> None:
    assert due(text, ref) == expected


def test_elapsed_hours_cross_spring_forward() -> None:
    ref = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)  # 00:30 UTC, CET
    found = resolve_due("I'll call you back in two hours", ref, BERLIN)
    assert found is not None
    assert found.at == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)
    assert found.at.astimezone(BERLIN).hour == 4  # 04:30 CEST: the clock jumped


def test_elapsed_hours_cross_us_spring_forward() -> None:
    ref = datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK)
    assert due("we'll call you in 2 hours", ref, NEW_YORK) == datetime(2026, 3, 8, 4, 30)


def test_days_keep_wall_time_across_fall_back() -> None:
    ref = datetime(2026, 10, 24, 10, 0, tzinfo=BERLIN)  # CEST
    found = resolve_due("in two days", ref, BERLIN)
    assert found is not None
    assert found.at.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 10, 26, 10, 0)
    assert (found.at - ref).total_seconds() == 49 * 3600  # one hour longer: clocks went back


def test_hours_are_elapsed_across_fall_back() -> None:
    ref = datetime(2026, 10, 24, 10, 0, tzinfo=BERLIN)
    assert due("within 24 hours", ref, BERLIN) == datetime(2026, 10, 25, 9, 0)


def test_tomorrow_lands_after_southern_dst_end() -> None:
    ref = datetime(2026, 4, 4, 16, 0, tzinfo=SYDNEY)  # AEDT; DST ends 5 April 03:00
    found = resolve_due("I'll ring you tomorrow at 10", ref, SYDNEY)
    assert found is not None
    assert found.at == datetime(2026, 4, 5, 0, 0, tzinfo=UTC)  # 10:00 AEST = UTC+10


def test_wall_time_in_the_spring_gap_moves_forward() -> None:
    ref = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    found = resolve_due("tomorrow at 2:30am", ref, BERLIN)
    assert found is not None
    assert found.at.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 30)


def test_result_is_utc_and_explicit_flag() -> None:
    found = resolve_due("tomorrow at 3", FRI, BERLIN)
    vague = resolve_due("tomorrow", FRI, BERLIN)
    assert found is not None and vague is not None
    assert found.at.tzinfo is UTC
    assert found.explicit_time and not vague.explicit_time


@pytest.mark.parametrize(
    "text",
    [
        "I'll look into it.",
        "Please call me back on 07700 900142.",
        "You can call us on 1-800-555-0199.",
        "It costs 35 pounds.",
        "on the 0th",
        "in 99999999 days",
        "at 99",
        "",
    ],
)
def test_no_due_time(text: str) -> None:
    assert resolve_due(text, WED, BERLIN) is None


_DUE_WORDS = st.sampled_from(
    [
        "at",
        "by",
        "on",
        "in",
        "within",
        "the",
        "next",
        "this",
        "end",
        "of",
        "week",
        "month",
        "day",
        "tomorrow",
        "today",
        "tonight",
        "morning",
        "afternoon",
        "evening",
        "noon",
        "Monday",
        "Friday",
        "Sunday",
        "June",
        "February",
        "0th",
        "31st",
        "29th",
        "30",
        "0",
        "1",
        "2",
        "3",
        "7",
        "8",
        "12",
        "13",
        "23",
        "24",
        "25",
        "99",
        "15:00",
        "2:30am",
        "10:99am",
        "12pm",
        "0am",
        "half",
        "past",
        "quarter",
        "to",
        "hours",
        "minutes",
        "days",
        "weeks",
        "months",
        "business",
        "working",
        "a",
        "an",
        "two",
        "couple",
        "few",
        "2026-02-30",
        "2026-13-01",
        "and",
        "between",
    ]
)
_ZONES = st.sampled_from(
    ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]
)


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(_DUE_WORDS, max_size=10),
    ref=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    zone=_ZONES,
)
def test_any_wording_resolves_or_not_without_error(
    words: list[str], ref: datetime, zone: str
) -> None:
    found = resolve_due(" ".join(words), ref, ZoneInfo(zone))
    if found is not None:
        assert found.at.tzinfo is UTC
        assert found.at > ref - timedelta(days=1)
