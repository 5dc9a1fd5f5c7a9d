"""ACW/AHT per call, the per-agent and per-team aggregation, and its renderings."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acw_sync.analyzer import call_figures, parse_since, render_report, report, write_chart
from acw_sync.model import ActionItem, Agent, Analysis, CallOutcome
from tests.analyzer.builders import make_call

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
ANNA = Agent(id="a1", name="Anna", team="Support")
BEN = Agent(id="b1", name="Ben", team="Support")
CARA = Agent(id="c1", email="cara@example.com", team="Sales")


def calls() -> list:
    return [
        make_call(
            key="t:1", agent=ANNA, talk=300, hold=60, wrapup=120, ended=NOW - timedelta(days=1)
        ),
        make_call(
            key="t:2", agent=ANNA, talk=100, hold=None, wrapup=20, ended=NOW - timedelta(days=2)
        ),
        make_call(
            key="t:3",
            agent=ANNA,
            outcome=CallOutcome.MISSED,
            talk=None,
            ended=NOW - timedelta(days=1),
        ),
        make_call(
            key="t:4", agent=BEN, talk=200, hold=0, wrapup=40, ended=NOW - timedelta(hours=3)
        ),
        make_call(
            key="t:5", agent=CARA, talk=600, hold=30, wrapup=300, ended=NOW - timedelta(days=3)
        ),
        make_call(
            key="t:6", agent=CARA, talk=50, wrapup=10, ended=NOW - timedelta(days=30)
        ),  # too old
        make_call(
            key="t:7",
            agent=None,
            outcome=CallOutcome.NO_ANSWER,
            talk=None,
            ended=NOW - timedelta(hours=1),
        ),
    ]


def test_call_figures() -> None:
    f = call_figures(make_call(talk=300, hold=60, wrapup=120))
    assert (f.talk, f.hold, f.acw, f.handle) == (300, 60, 120, 480)
    assert call_figures(make_call(talk=100, hold=None, wrapup=None)).handle == 100
    missed = call_figures(make_call(outcome=CallOutcome.MISSED, talk=None))
    assert missed.handle is None and missed.talk is None


def test_talk_time_from_answer_and_end() -> None:
    call = make_call(talk=None, wrapup=30)
    call.answered_at = call.ended_at - timedelta(seconds=90)  # type: ignore[operator]
    assert call_figures(call).handle == 120


def test_report_by_agent() -> None:
    rows = {r.group: r for r in report(calls(), timedelta(days=7), now=NOW)}
    anna = rows["Anna"]
    assert (anna.offered, anna.handled, anna.missed) == (3, 2, 1)
    assert anna.missed_rate == pytest.approx(1 / 3)
    assert anna.avg_talk == 200 and anna.avg_acw == 70
    assert anna.avg_handle == pytest.approx((480 + 120) / 2)
    assert anna.avg_hold == 60  # only where the platform gave it
    assert rows["cara@example.com"].offered == 1  # the 30-day-old call is outside the period
    assert rows["(unassigned)"].missed_rate == 1.0


def test_report_by_team_with_followups_and_window() -> None:
    rows = report(
        calls(),
        NOW - timedelta(days=7),
        by="team",
        now=NOW,
        followups={"t:1": 2, "t:4": 1, "t:5": 1},
    )
    by_group = {r.group: r for r in rows}
    assert by_group["Support"].offered == 4 and by_group["Support"].followups == 3
    assert by_group["Sales"].followups == 1
    assert rows[0].group == "Support"  # busiest first
    recent = report(calls(), timedelta(days=7), by="team", now=NOW, until=NOW - timedelta(hours=4))
    assert {r.group: r.offered for r in recent}["Support"] == 3


def test_followups_default_to_action_items() -> None:
    call = make_call(key="t:9", agent=ANNA, ended=NOW - timedelta(hours=1))
    call.analysis = Analysis(action_items=[ActionItem(text="call back"), ActionItem(text="email")])
    assert report([call], timedelta(days=1), now=NOW)[0].followups == 2


def test_render_formats(tmp_path: Path) -> None:
    rows = report(calls(), timedelta(days=7), now=NOW)
    table = render_report(rows, "table")
    assert "Anna" in table and "AHT" in table and table.splitlines()[-1].startswith("All")
    assert "5:00" in table  # Anna's AHT, (480 + 120) / 2 s
    parsed = list(csv.DictReader(io.StringIO(render_report(rows, "csv"))))
    assert {r["group"] for r in parsed} == {r.group for r in rows}
    data = json.loads(render_report(rows, "json"))
    assert data[0]["group"] == rows[0].group and "avg_handle" in data[0]
    assert render_report([], "table") == "No calls in this period."
    with pytest.raises(ValueError, match="unknown format"):
        render_report(rows, "xml")  # type: ignore[arg-type]


def test_chart_is_self_contained(tmp_path: Path) -> None:
    rows = report(calls(), timedelta(days=7), now=NOW)
    page = write_chart(rows, tmp_path / "acw.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "Anna" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    svg = write_chart(rows, tmp_path / "acw.svg").read_text()
    assert svg.startswith("<svg") and "AHT" in svg
    hostile = report(
        [make_call(agent=Agent(name="<b>Eve</b>"), ended=NOW)], timedelta(days=1), now=NOW
    )
    assert "<b>Eve" not in write_chart(hostile, tmp_path / "x.svg").read_text()


@pytest.mark.parametrize(
    ("text", "seconds"), [("7d", 604800), ("24h", 86400), ("90m", 5400), ("2w", 1209600)]
)
def test_parse_since(text: str, seconds: int) -> None:
    assert parse_since(text).total_seconds() == seconds


def test_parse_since_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="not a period"):
        parse_since("last week")
