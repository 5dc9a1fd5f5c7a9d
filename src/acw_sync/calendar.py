"""Business time: the centre's opening hours, public holidays, and arithmetic over them.

A :class:`BusinessCalendar` answers "is the centre open at this instant?", "what is two
business hours after this call ended?", "when is 10:00 on the next business day?". Everything
is computed in the centre's timezone (``zoneinfo``) and returned as UTC: opening intervals are
built from local wall-clock times and converted, so daylight-saving changes shift the UTC
instants and never the local opening hours, and a business hour is always 60 real minutes.

This module is pure: no configuration loading, no I/O beyond the ``holidays`` tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

__all__ = ["WEEKDAYS", "BusinessCalendar", "Due", "OpeningHours"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far ahead we look for an open moment before deciding the calendar is never open.
MAX_DAYS_AHEAD = 3 * 366


@dataclass(frozen=True)
class OpeningHours:
    """One opening interval of a weekday, local wall-clock time. ``end`` of None means 24:00."""

    start: time
    end: time | None

    @classmethod
    def parse(cls, text: str) -> OpeningHours:
        """``"09:00-17:00"`` (``"00:00-24:00"`` is the whole day)."""
        try:
            first, second = (part.strip() for part in text.split("-"))
            start = time.fromisoformat(first)
            end = None if second in ("24:00", "24:00:00") else time.fromisoformat(second)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an opening interval (write it as HH:MM-HH:MM, e.g. 09:00-17:00)"
            ) from None
        if end is not None and end <= start:
            raise ValueError(f"{text!r} closes before it opens (use 24:00 for midnight)")
        return cls(start, end)


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours per weekday in one timezone, minus public holidays and closed dates."""

    timezone: str = "UTC"
    hours: dict[int, Sequence[OpeningHours]] = field(
        default_factory=lambda: {d: (OpeningHours(time(0), None),) for d in range(7)}
    )
    """Weekday (0 = Monday) -> intervals; a weekday absent from the map is closed."""
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closed_dates: frozenset[date] = frozenset()

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _holidays(self) -> object | None:
        if self.holiday_country is None:
            return None
        import holidays  # deferred: loading the tables costs ~50 ms we need only when used

        return holidays.country_holidays(self.holiday_country, subdiv=self.holiday_subdivision)

    # -- days --------------------------------------------------------------------------------
    def holiday_name(self, day: date) -> str | None:
        """The public holiday or closure on ``day`` (local date), or None."""
        if day in self.closed_dates:
            return "closed"
        table = self._holidays
        if table is not None and day in table:  # type: ignore[operator]
            return str(table.get(day))  # type: ignore[attr-defined]
        return None

    def is_business_day(self, day: date) -> bool:
        return bool(self.hours.get(day.weekday())) and self.holiday_name(day) is None

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of a local date, as UTC instants (empty when closed)."""
        if not self.is_business_day(day):
            return []
        out = []
        for span in self.hours[day.weekday()]:
            start = datetime.combine(day, span.start, self.zone)
            end = (
                datetime.combine(day + timedelta(days=1), time(0), self.zone)
                if span.end is None
                else datetime.combine(day, span.end, self.zone)
            )
            out.append((start.astimezone(UTC), end.astimezone(UTC)))
        return out

    def local_date(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def _open_from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals (clipped to start at ``at``) from ``at`` onwards, in order."""
        at = at.astimezone(UTC)  # same-zone aware arithmetic in Python is wall-clock: avoid it
        day = self.local_date(at) - timedelta(days=1)  # an interval may straddle midnight UTC
        for _ in range(MAX_DAYS_AHEAD):
            for start, end in self.intervals(day):
                if end > at:
                    yield max(start, at), end
            day += timedelta(days=1)
        raise ValueError(f"the calendar is never open in the {MAX_DAYS_AHEAD} days after {at}")

    # -- instants ----------------------------------------------------------------------------
    def is_open(self, at: datetime) -> bool:
        """True when ``at`` falls inside an opening interval (start inclusive, end exclusive)."""
        at = at.astimezone(UTC)
        return any(start <= at < end for start, end in self.intervals(self.local_date(at)))

    def next_open(self, at: datetime) -> datetime:
        """``at`` when open, else the next opening."""
        for start, _ in self._open_from(at):
            return start
        raise AssertionError("unreachable")  # pragma: no cover

    def add(self, at: datetime, amount: timedelta) -> datetime:
        """``amount`` of business time after ``at``; counting starts at the next opening.

        An amount that ends exactly at a closing time yields that closing time (a call-back due
        at 17:00 is still due today), never the next morning.
        """
        left = amount
        at = at.astimezone(UTC)
        for start, end in self._open_from(at):
            if left <= end - start:
                return start + left
            left -= end - start
        raise AssertionError("unreachable")  # pragma: no cover

    def add_business_days(self, at: datetime, days: int) -> datetime:
        """The same local time ``days`` business days later (then the next opening if closed)."""
        local = at.astimezone(self.zone)
        day = local.date()
        for _ in range(days):
            day = self.next_business_day(day)
        moved = datetime.combine(day, local.time(), self.zone).astimezone(UTC)
        return self.next_open(moved)

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after the local date ``day``."""
        for offset in range(1, MAX_DAYS_AHEAD):
            candidate = day + timedelta(days=offset)
            if self.is_business_day(candidate):
                return candidate
        raise ValueError(f"no business day in the {MAX_DAYS_AHEAD} days after {day}")

    def at_next_business_day(self, at: datetime, clock: time) -> datetime:
        """``clock`` (local) on the first business day after the local date of ``at``."""
        day = self.next_business_day(self.local_date(at))
        return datetime.combine(day, clock, self.zone).astimezone(UTC)

    def end_of_business_day(self, at: datetime) -> datetime:
        """The closing time of the business day ``at`` falls in; if the centre has closed for
        the day (or is closed all day), the closing time of the next business day."""
        at = at.astimezone(UTC)
        day = self.local_date(at)
        spans = self.intervals(day)
        if spans and spans[-1][1] > at:
            return spans[-1][1]
        spans = self.intervals(self.next_business_day(day))
        return spans[-1][1]

    def describe(self, at: datetime) -> str:
        """``Wed 11 Mar 10:00 America/New_York``: a UTC instant as the centre reads it."""
        return f"{at.astimezone(self.zone):%a %d %b %H:%M} {self.timezone}"


_RELATIVE = re.compile(r"^\+\s*(\d+(?:\.\d+)?)\s*(m|min|h|d)$")
_NEXT_DAY = re.compile(r"^next business day(?: (?:at )?(\d{1,2}:\d{2}))?$")
DUE_FORMS = '"+30m", "+2h", "+1d", "next business day 10:00", "end of business day" or "promised"'


@dataclass(frozen=True)
class Due:
    """When a task is due, as the admin wrote it (``+2h``, ``next business day 10:00``...)."""

    kind: str
    """relative | days | next_day | end_of_day | promised"""
    amount: timedelta = timedelta(0)
    days: int = 0
    clock: time = time(9, 0)

    @classmethod
    def parse(cls, text: str) -> Due:
        spec = " ".join(str(text).lower().split())
        if spec == "promised":
            return cls("promised")
        if spec in ("end of business day", "same business day"):
            return cls("end_of_day")
        match = _NEXT_DAY.match(spec)
        if match:
            clock = match.group(1)
            try:
                return cls(
                    "next_day", clock=time.fromisoformat(clock.zfill(5)) if clock else time(9)
                )
            except ValueError:
                raise ValueError(f"{text!r}: {clock} is not a time of day (write HH:MM)") from None
        match = _RELATIVE.match(spec)
        if match:
            number, unit = float(match.group(1)), match.group(2)
            if unit == "d":
                if number != int(number):
                    raise ValueError(f"{text!r}: business days are whole (write +1d, or +12h)")
                return cls("days", days=int(number))
            minutes = number * (60 if unit == "h" else 1)
            return cls("relative", amount=timedelta(minutes=minutes))
        raise ValueError(f"{text!r} is not a due time (write {DUE_FORMS})")

    def resolve(
        self, calendar: BusinessCalendar, start: datetime, *, business_time: bool = True
    ) -> datetime:
        """The due instant for a call that ended at ``start`` (``promised`` is the caller's)."""
        if self.kind == "relative":
            if not business_time:
                return start.astimezone(UTC) + self.amount
            return calendar.add(start, self.amount)
        if self.kind == "days":
            if not business_time:
                return start.astimezone(UTC) + timedelta(days=self.days)
            return calendar.add_business_days(start, self.days)
        if self.kind == "next_day":
            return calendar.at_next_business_day(start, self.clock)
        if self.kind == "end_of_day":
            return calendar.end_of_business_day(start)
        raise ValueError(f"a {self.kind!r} due time is resolved by the rule engine")
