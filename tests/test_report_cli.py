"""`acw-sync report` over records in a real Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from acw_sync.cli import main
from acw_sync.merge import merge_events
from acw_sync.model import Agent, CallEvent, CallOutcome, CrmObjectRef, EventType
from acw_sync.store import StateStore


def call(store: StateStore, call_id: str, agent: str, team: str, *, missed: bool = False) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=2)
    events = [
        CallEvent(
            event_id=f"{call_id}-end",
            provider="generic",
            call_id=call_id,
            type=EventType.ENDED,
            occurred_at=t0 + timedelta(minutes=5),
            agent=Agent(email=f"{agent}@example.com", name=agent, team=team),
            started_at=t0,
            answered_at=None if missed else t0 + timedelta(seconds=10),
            ended_at=t0 + timedelta(minutes=5),
            outcome=CallOutcome.MISSED if missed else CallOutcome.COMPLETED,
            talk_time=None if missed else 290,
            wrapup_time=None if missed else 30,
        )
    ]
    for e in events:
        store.add_event(e)
    store.save_record(merge_events(events))
    if missed:
        store.ledger_set_task(
            "crm",
            f"generic:{call_id}",
            "callback-missed",
            CrmObjectRef(object_type="task", id="t1"),
        )


def test_report_by_agent_and_team(
    store: StateStore, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACW_REDIS_URL", redis_url)
    call(store, "r1", "ana", "support")
    call(store, "r2", "ana", "support", missed=True)
    call(store, "r3", "ben", "sales")
    runner = CliRunner()
    result = runner.invoke(main, ["report", "--since", "1d", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["group"]: r for r in json.loads(result.output)}
    assert sorted(rows) == ["ana", "ben"]
    ana = rows["ana"]
    assert ana["offered"] == 2
    assert ana["handled"] == 1 and ana["missed"] == 1 and ana["followups"] == 1
    assert ana["avg_handle"] == pytest.approx(320)
    chart = tmp_path / "aht.html"
    by_team = runner.invoke(main, ["report", "--by", "team", "--chart", str(chart)])
    assert by_team.exit_code == 0 and "support" in by_team.output and "sales" in by_team.output
    assert "<svg" in chart.read_text()
    assert runner.invoke(main, ["report", "--since", "soon"]).exit_code != 0
