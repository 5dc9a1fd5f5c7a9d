"""ACW figures: talk, hold, wrap-up (ACW) and handle time per call, and their aggregation.

Pure over an iterable of :class:`~acw_sync.model.CallRecord`: the caller (the CLI over the
Redis store, a test over a list) decides where records come from.

* talk time is the platform's, else answered -> ended; hold time only where the platform
  gives it (unknown counts as 0 in AHT); ACW is the platform's wrap-up time;
* AHT = talk + hold + ACW, for connected calls with a known talk time;
* a call is *offered* to a group when it started in the period; *handled* when connected;
  *missed* when not connected (missed, no answer, busy, abandoned, voicemail);
* follow-ups created per call come from the ``followups`` mapping (call key -> tasks created)
  when given, else from the number of action items the analyzer found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from acw_sync.model import CallRecord

__all__ = ["CallFigures", "ReportRow", "call_figures", "parse_since", "report"]

UNASSIGNED = "(unassigned)"
NO_TEAM = "(no team)"


@dataclass(frozen=True, slots=True)
class CallFigures:
    """Seconds; None where the platform gave nothing to compute it from."""

    talk: float | None
    hold: float | None
    acw: float | None
    handle: float | None
    """AHT = talk + hold + ACW (hold and ACW count as 0 when unknown)."""


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One agent's or team's figures over the period. Averages are over handled calls."""

    group: str
    offered: int
    handled: int
    missed: int
    missed_rate: float
    avg_talk: float | None
    avg_hold: float | None
    avg_acw: float | None
    avg_handle: float | None
    total_acw: float
    followups: int


def call_figures(call: CallRecord) -> CallFigures:
    talk = call.talk_time
    if talk is None and call.answered_at is not None and call.ended_at is not None:
        talk = max(0.0, (call.ended_at - call.answered_at).total_seconds())
    if call.missed:
        return CallFigures(talk=None, hold=call.hold_time, acw=call.wrapup_time, handle=None)
    handle = None if talk is None else talk + (call.hold_time or 0.0) + (call.wrapup_time or 0.0)
    return CallFigures(talk=talk, hold=call.hold_time, acw=call.wrapup_time, handle=handle)


_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> timedelta:
    """``"7d"``, ``"24h"``, ``"90m"``, ``"2w"`` -> a timedelta (for ``--since``)."""
    m = _SINCE.match(text.lower())
    if m is None:
        raise ValueError(f"not a period: {text!r} (use e.g. 7d, 24h, 90m, 2w)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def _when(call: CallRecord) -> datetime | None:
    return call.started_at or call.answered_at or call.ended_at or call.last_event_at


def _group(call: CallRecord, by: str) -> str:
    agent = call.agent
    if by == "team":
        return (agent.team if agent and agent.team else None) or NO_TEAM
    if agent is None:
        return UNASSIGNED
    return agent.name or agent.email or agent.id or UNASSIGNED


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def report(
    records: Iterable[CallRecord],
    since: datetime | timedelta,
    *,
    by: Literal["agent", "team"] = "agent",
    until: datetime | None = None,
    followups: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> list[ReportRow]:
    """Figures per agent or team for calls started in ``[since, until)``; busiest first."""
    if by not in ("agent", "team"):
        raise ValueError(f"by must be 'agent' or 'team', not {by!r}")
    now = now or datetime.now(UTC)
    start = now - since if isinstance(since, timedelta) else since
    groups: dict[str, list[CallRecord]] = {}
    for call in records:
        when = _when(call)
        if when is None or when < start or (until is not None and when >= until):
            continue
        groups.setdefault(_group(call, by), []).append(call)

    rows = []
    for name, calls in groups.items():
        figures = [call_figures(c) for c in calls]
        handled = [f for c, f in zip(calls, figures, strict=True) if not c.missed]
        missed = len(calls) - len(handled)
        created = sum(
            followups.get(c.key, 0)
            if followups is not None
            else len(c.analysis.action_items)
            if c.analysis
            else 0
            for c in calls
        )
        rows.append(
            ReportRow(
                group=name,
                offered=len(calls),
                handled=len(handled),
                missed=missed,
                missed_rate=missed / len(calls),
                avg_talk=_mean([f.talk for f in handled if f.talk is not None]),
                avg_hold=_mean([f.hold for f in handled if f.hold is not None]),
                avg_acw=_mean([f.acw for f in handled if f.acw is not None]),
                avg_handle=_mean([f.handle for f in handled if f.handle is not None]),
                total_acw=sum(f.acw for f in handled if f.acw is not None),
                followups=created,
            )
        )
    rows.sort(key=lambda r: (-r.handled, -r.offered, r.group))
    return rows
