"""Clock times and parts of the day said in a sentence ("at 3", "10am", "half past two").

A bare hour is read as a business hour: 1-7 p.m., 8-11 a.m., 12 noon, unless a part of the day
says otherwise ("8 in the evening"). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

__all__ = ["END_OF_DAY", "NUMBERS", "PARTS", "PART_OF_DAY", "START_OF_DAY", "clock_time", "number"]

START_OF_DAY = time(9, 0)
END_OF_DAY = time(17, 0)
PARTS = {
    "first thing": time(9, 0),
    "morning": time(9, 0),
    "noon": time(12, 0),
    "midday": time(12, 0),
    "lunchtime": time(12, 0),
    "lunch time": time(12, 0),
    "afternoon": time(14, 0),
    "evening": time(18, 0),
    "tonight": time(18, 0),
    "end of day": END_OF_DAY,
    "end of the day": END_OF_DAY,
    "eod": END_OF_DAY,
    "cob": END_OF_DAY,
    "close of business": END_OF_DAY,
    "end of business": END_OF_DAY,
    "end of today": END_OF_DAY,
}
NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "forty-five": 45,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
    "a couple of": 2,
    "couple of": 2,
    "a few": 3,
    "few": 3,
    "twenty-four": 24,
    "forty-eight": 48,
    "seventy-two": 72,
}
_HOUR_WORD = r"(?:\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"

_CLOCK_AMPM = re.compile(
    r"\b(?:at\s+|around\s+|by\s+)?(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))?\s*(?P<ap>a\.?m\b\.?|p\.?m\b\.?)"
)
_CLOCK_AT = re.compile(
    rf"\b(?:at|around|by|for|between|from|before|until|till)\s+(?P<h>{_HOUR_WORD})(?::(?P<m>\d{{2}}))?(?:\s*o'?clock)?(?![\d/\-:])(?!\s*(?:pounds|euros|dollars|percent|%|days|hours|minutes|weeks|kilos|seats))\b"
)
_CLOCK_24 = re.compile(r"\b(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)\b")
_CLOCK_HALF = re.compile(rf"\b(?P<kind>half past|quarter past|quarter to)\s+(?P<h>{_HOUR_WORD})\b")
PART_OF_DAY = re.compile(
    r"\b(first thing|morning|noon|midday|lunch ?time|afternoon|evening|tonight|"
    r"end of (?:the )?day|end of today|eod|cob|close of business|end of business)\b"
)


def number(word: str) -> float:
    word = word.strip()
    return float(word) if word.isdigit() else float(NUMBERS.get(word, 0))


def _hour_value(raw: str) -> int:
    return int(raw) if raw.isdigit() else int(NUMBERS[raw])


def _business_hour(hour: int, part: str | None) -> int:
    """A bare hour read as a business hour (see the module docstring)."""
    if hour >= 13 or hour == 0:
        return hour % 24
    if part in {"afternoon", "evening", "tonight"} and hour < 12:
        return hour + 12
    if part in {"morning", "first thing"}:
        return hour % 12
    if 1 <= hour <= 7:
        return hour + 12
    return hour


def clock_time(text: str, part: str | None) -> tuple[time, int] | None:
    """A clock time said in ``text`` and where it starts."""
    if m := _CLOCK_AMPM.search(text):
        hour, minute = int(m["h"]) % 12, int(m["m"] or 0)
        if m["ap"].startswith("p"):
            hour += 12
        if hour < 24 and minute < 60:
            return time(hour, minute), m.start()
    if m := _CLOCK_HALF.search(text):
        hour = _business_hour(_hour_value(m["h"]), part)
        stamp = datetime.combine(date(2000, 1, 3), time(hour % 24))
        if m["kind"] == "half past":
            stamp += timedelta(minutes=30)
        elif m["kind"] == "quarter past":
            stamp += timedelta(minutes=15)
        else:
            stamp -= timedelta(minutes=15)
        return stamp.time(), m.start()
    if m := _CLOCK_24.search(text):
        hour, minute = int(m["h"]), int(m["m"])
        if hour < 13 and not text[max(0, m.start() - 4) : m.start()].strip().endswith("at"):
            hour = _business_hour(hour, part) if hour < 12 else hour
        return time(hour, minute), m.start()
    if m := _CLOCK_AT.search(text):
        hour = _hour_value(m["h"])
        if hour > 23:
            return None
        return time(_business_hour(hour, part), int(m["m"] or 0)), m.start()
    return None
