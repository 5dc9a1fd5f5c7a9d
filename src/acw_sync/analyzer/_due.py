"""Reading a due moment out of one sentence ("tomorrow at 3", "by Friday", "in two hours").

Everything is computed in the centre's timezone from a reference moment (the call's end), and
returned in UTC. The conventions (documented in the README):

* a bare hour is a business hour: 1-7 means p.m., 8-11 a.m., 12 noon; "3pm", "15:00",
  "half past two" are taken as said; morning 09:00, noon 12:00, afternoon 14:00, evening and
  tonight 18:00, end of day / close of business 17:00;
* a day without a time is due at 09:00, or at 17:00 when it is a deadline ("by Friday",
  "before the 15th", "within 3 days", "end of the week") and for "today";
* "tomorrow" is the next calendar day, weekend or not; "Monday", "on Monday", "this Monday"
  are the next such day after today; "next Monday" is the Monday of next calendar week
  (weeks start on Monday); "next week" / "after the weekend" is next Monday 09:00;
  "end of the week" is this week's Friday 17:00; "end of the month" is the month's last
  weekday (Mon-Fri) 17:00; "next month" is the first weekday of next month 09:00;
* "in N minutes/hours" and "within N hours" are elapsed time (so a DST change moves the wall
  clock); "in N days/weeks/months" keeps the wall-clock time of the reference;
  "in/within N business days" skips Saturdays and Sundays and is due 17:00;
* a clock time with no day is today if still ahead, else tomorrow; a wall time that does
  not exist (spring-forward gap) moves forward by the gap. Public holidays are not considered.

Pure functions, no I/O.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from acw_sync.analyzer._clock import (
    END_OF_DAY,
    NUMBERS,
    PART_OF_DAY,
    PARTS,
    START_OF_DAY,
    clock_time,
    number,
)

__all__ = ["DueTime", "resolve_due"]

_WEEKDAYS = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "thurs": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name} | {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}

_NUM = r"(?:\d+|" + "|".join(sorted((re.escape(k) for k in NUMBERS), key=len, reverse=True)) + r")"
_MONTH = r"(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")"
_DEADLINE_WORD = re.compile(r"(?:by|before|until|till)\s")
_DEADLINE = re.compile(r"\b(?:by|before|until|till|no later than|latest|within)\s+(?:the\s+)?$")

_SPAN = re.compile(
    rf"\b(?P<prep>in|within)\s+(?:the\s+next\s+|about\s+|around\s+)?"
    rf"(?:(?P<n>{_NUM})\s*(?:(?:to|-)\s*(?P<n2>\d+)\s*)?(?P<half>and a half\s+)?"
    r"(?P<unit>minutes?|mins?|hours?|hrs?|days?|weeks?|months?|business days?|working days?)"
    r"(?P<half2>\s+and a half)?|(?P<halfhour>half an hour|a half hour|the hour))\b"
)
_ISO = re.compile(r"\b(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})\b")
_DAY_MONTH = re.compile(
    rf"\b(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mo>{_MONTH})\b"
)
_MONTH_DAY = re.compile(rf"\b(?P<mo>{_MONTH})\s+(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?!:)")
_ORDINAL = re.compile(r"\bthe\s+(?P<d>\d{1,2})(?:st|nd|rd|th)\b")

# Day anchors: (pattern, kind). Earlier entries win when two overlap.
_ANCHORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bsame time tomorrow\b"), "same_time_tomorrow"),
    (re.compile(r"\bthe day after tomorrow\b"), "day_after_tomorrow"),
    (re.compile(r"\b(?:tomorrow|tomorow|tmrw|tmr|2moro)\b"), "tomorrow"),
    (re.compile(r"\bnext (?:business|working) day\b"), "next_business_day"),
    (re.compile(r"\bend of (?:the )?next week\b"), "end_of_next_week"),
    (re.compile(r"\b(?:end of (?:the |this )?week|later this week|end of week)\b"), "end_of_week"),
    (
        re.compile(r"\b(?:(?:early |beginning of |start of )?next week|after the weekend)\b"),
        "next_week",
    ),
    (re.compile(r"\bend of (?:the )?next month\b"), "end_of_next_month"),
    (re.compile(r"\b(?:end of (?:the |this )?month|month[- ]end)\b"), "end_of_month"),
    (re.compile(r"\b(?:(?:early |beginning of |start of )?next month)\b"), "next_month"),
    (re.compile(r"\b(?:today|tonight|this (?:morning|afternoon|evening)|later today)\b"), "today"),
    (
        re.compile(
            r"\b(?:(?P<mod>next|this|coming|on|by|until|before)\s+)?(?P<wd>"
            + "|".join(_WEEKDAYS)
            + r")s?\b"
        ),
        "weekday",
    ),
]

# "end of day" names a day only when nothing else does ("by end of day tomorrow").
_WEAK_TODAY = re.compile(r"\b(?:end of (?:the )?day|eod|cob|close of business|end of business)\b")


@dataclass(frozen=True, slots=True)
class DueTime:
    """A resolved due moment."""

    at: datetime
    """Timezone-aware, UTC."""
    explicit_time: bool
    """True when a clock time or part of the day was said (it then wins over a vaguer mention)."""
    phrase: str


def _localize(day: date, at: time, zone: ZoneInfo) -> datetime:
    # fold=0: an ambiguous wall time is its first occurrence; a non-existent one (spring gap)
    # gets the pre-transition offset, which lands it after the gap when converted.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _add_business_days(day: date, count: int) -> date:
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def _next_business_day(day: date) -> date:
    return _add_business_days(day, 1)


def _last_business_day(year: int, month: int) -> date:
    day = date(year, month, calendar.monthrange(year, month)[1])
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _first_business_day(year: int, month: int) -> date:
    day = date(year, month, 1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _explicit_date(text: str, today: date) -> tuple[date, int, int] | None:
    """A calendar date said in ``text``: (date, start, end)."""
    if m := _ISO.search(text):
        try:
            return date(int(m["y"]), int(m["mo"]), int(m["d"])), m.start(), m.end()
        except ValueError:
            return None
    for pattern in (_DAY_MONTH, _MONTH_DAY):
        if m := pattern.search(text):
            month, day_no = _MONTHS[m["mo"]], int(m["d"])
            for year in (today.year, today.year + 1):
                try:
                    candidate = date(year, month, day_no)
                except ValueError:
                    return None
                if candidate >= today:
                    return candidate, m.start(), m.end()
            return None
    if (m := _ORDINAL.search(text)) and 1 <= int(m["d"]) <= 31:
        day_no = int(m["d"])
        probe = today.replace(day=1)
        for _ in range(3):
            if day_no <= calendar.monthrange(probe.year, probe.month)[1]:
                candidate = probe.replace(day=day_no)
                if candidate >= today:
                    return candidate, m.start(), m.end()
            probe = _add_months(probe, 1)
    return None


def _anchor(text: str, local: datetime) -> tuple[date, time | None, int, int, str] | None:
    """The first day mentioned: (day, inherent time or None, start, end, kind)."""
    today = local.date()
    best: tuple[date, time | None, int, int, str] | None = None
    for pattern, kind in _ANCHORS:
        for m in pattern.finditer(text):
            if best is not None and m.start() >= best[2]:
                break
            found = _anchor_day(kind, m, local)
            if found is not None:
                best = (found[0], found[1], m.start(), m.end(), kind)
            break
    explicit = _explicit_date(text, today)
    if explicit is not None and (best is None or explicit[1] < best[2]):
        best = (explicit[0], None, explicit[1], explicit[2], "date")
    if best is None and (weak := _WEAK_TODAY.search(text)):
        best = (today, None, weak.start(), weak.end(), "today")
    return best


def _anchor_day(kind: str, m: re.Match[str], local: datetime) -> tuple[date, time | None] | None:
    today = local.date()
    monday_next = today + timedelta(days=7 - today.weekday())
    if kind == "same_time_tomorrow":
        return today + timedelta(days=1), local.time().replace(second=0, microsecond=0)
    if kind == "day_after_tomorrow":
        return today + timedelta(days=2), None
    if kind == "tomorrow":
        return today + timedelta(days=1), None
    if kind == "next_business_day":
        return _next_business_day(today), None
    if kind == "end_of_next_week":
        return monday_next + timedelta(days=4), END_OF_DAY
    if kind == "end_of_week":
        friday = today + timedelta(days=4 - today.weekday())
        return (friday if friday >= today else friday + timedelta(days=7)), END_OF_DAY
    if kind == "next_week":
        return monday_next, START_OF_DAY
    if kind == "end_of_month":
        last = _last_business_day(today.year, today.month)
        if last < today:
            nxt = _add_months(today.replace(day=1), 1)
            last = _last_business_day(nxt.year, nxt.month)
        return last, END_OF_DAY
    if kind == "end_of_next_month":
        nxt = _add_months(today.replace(day=1), 1)
        return _last_business_day(nxt.year, nxt.month), END_OF_DAY
    if kind == "next_month":
        nxt = _add_months(today.replace(day=1), 1)
        return _first_business_day(nxt.year, nxt.month), START_OF_DAY
    if kind == "today":
        return today, None
    if kind == "weekday":
        target = _WEEKDAYS[m["wd"]]
        mod = m["mod"]
        if mod == "next":
            return monday_next + timedelta(days=target), None
        delta = target - today.weekday()
        if delta <= 0:
            delta += 7
        return today + timedelta(days=delta), None
    return None


def _is_deadline(text: str, start: int) -> bool:
    return bool(_DEADLINE.search(text[max(0, start - 16) : start]))


def resolve_due(sentence: str, reference: datetime, zone: ZoneInfo) -> DueTime | None:
    """The due moment a sentence states, relative to ``reference`` in ``zone``; None if none."""
    try:
        return _resolve(sentence, reference, zone)
    except (ValueError, OverflowError):
        return None  # "on the 0th", "in 99999999 days": no moment we could schedule


def _resolve(sentence: str, reference: datetime, zone: ZoneInfo) -> DueTime | None:
    text = sentence.lower().replace("\u2019", "'")
    # Elapsed-time arithmetic must happen in UTC: an aware datetime in a ZoneInfo zone adds
    # timedeltas on the wall clock and would ignore a DST change.
    reference = reference.astimezone(UTC)
    local = reference.astimezone(zone)

    span = _SPAN.search(text)
    if span is not None:
        due = _from_span(span, text, reference, local, zone)
        if due is not None:
            return due

    part_match = PART_OF_DAY.search(text)
    part = part_match.group(1).replace("lunch time", "lunchtime") if part_match else None
    if part == "end of today":
        part = "end of the day"
    clock = clock_time(text, part)
    anchor = _anchor(text, local)

    if anchor is not None:
        day, inherent, start, end, kind = anchor
        explicit = clock is not None or part is not None
        if clock is not None:
            at = clock[0]
        elif part is not None:
            at = PARTS[part]
        elif inherent is not None:
            at = inherent
        elif kind == "today" or _is_deadline(text, start) or _DEADLINE_WORD.match(text, start):
            at = END_OF_DAY
        else:
            at = START_OF_DAY
        moment = _localize(day, at, zone)
        if moment <= reference and day == local.date():
            # "this afternoon" said at 15:30: the rest of the working day, else an hour.
            eod = _localize(day, END_OF_DAY, zone)
            moment = eod if eod > reference else reference + timedelta(hours=1)
        return DueTime(moment, explicit, sentence[start:end])

    if clock is not None or part is not None:
        at = clock[0] if clock is not None else PARTS[part or "morning"]
        moment = _localize(local.date(), at, zone)
        if moment <= reference:
            moment = _localize(local.date() + timedelta(days=1), at, zone)
        return DueTime(moment, True, part or "")
    return None


def _from_span(
    m: re.Match[str], text: str, reference: datetime, local: datetime, zone: ZoneInfo
) -> DueTime | None:
    phrase = m.group(0)
    if m["halfhour"]:
        return DueTime(
            reference + timedelta(minutes=60 if m["halfhour"] == "the hour" else 30), True, phrase
        )
    amount = number(m["n2"] or m["n"])
    if m["half"] or m["half2"]:
        amount += 0.5
    if amount <= 0:
        return None
    unit = m["unit"]
    if unit.startswith(("min", "hour", "hr")):
        minutes = amount if unit.startswith("min") else amount * 60
        return DueTime(reference + timedelta(minutes=minutes), True, phrase)
    within = m["prep"] == "within"
    part_match = PART_OF_DAY.search(text)
    part = part_match.group(1) if part_match else None
    clock = clock_time(text, part)
    if unit.startswith(("business", "working")):
        day = _add_business_days(local.date(), int(amount))
        return DueTime(
            _localize(day, clock[0] if clock else END_OF_DAY, zone), clock is not None, phrase
        )
    if unit.startswith("day"):
        day = local.date() + timedelta(days=int(amount))
    elif unit.startswith("week"):
        day = local.date() + timedelta(days=7 * int(amount))
    else:
        day = _add_months(local.date(), int(amount))
    if clock is not None:
        at, explicit = clock[0], True
    elif part is not None:
        at, explicit = PARTS[part.replace("lunch time", "lunchtime")], True
    elif within:
        at, explicit = END_OF_DAY, False
    else:
        # "in two days" keeps the wall-clock time of the call, across DST changes.
        at, explicit = local.time().replace(second=0, microsecond=0), False
    return DueTime(_localize(day, at, zone), explicit, phrase)
