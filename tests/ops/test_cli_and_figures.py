"""``acw-sync status`` in-process, and the ACW figures a worker observes once per call."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY

from acw_sync import status
from acw_sync.cli import main
from acw_sync.metrics import observe_call_figures
from acw_sync.model import Agent, CallOutcome, CallRecord
from acw_sync.store import StateStore

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def count(name: str, team: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_count", {"team": team}) or 0.0


def total(name: str, team: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_sum", {"team": team}) or 0.0


def test_figures_by_team_and_no_handle_time_for_missed_calls() -> None:
    answered = CallRecord(
        key="generic:f1", provider="generic", call_id="f1", agent=Agent(team="fig-billing"),
        answered_at=T0, ended_at=T0 + timedelta(seconds=120), hold_time=30, wrapup_time=45,
        outcome=CallOutcome.COMPLETED, ended=True,
    )  # fmt: skip
    missed = CallRecord(
        key="generic:f2", provider="generic", call_id="f2", agent=Agent(team="fig-billing"),
        ended_at=T0, outcome=CallOutcome.MISSED, ended=True,
    )  # fmt: skip
    before = {
        n: count(n, "fig-billing") for n in ("acw_call_talk_seconds", "acw_call_handle_seconds")
    }
    observe_call_figures(answered)
    observe_call_figures(missed)
    assert count("acw_call_talk_seconds", "fig-billing") == before["acw_call_talk_seconds"] + 1
    assert count("acw_call_handle_seconds", "fig-billing") == before["acw_call_handle_seconds"] + 1
    assert total("acw_call_handle_seconds", "fig-billing") >= 120 + 30 + 45
    observe_call_figures(answered.model_copy(update={"agent": None}))
    assert count("acw_call_wrapup_seconds", "(none)") >= 1


def test_figures_are_observed_once_per_call(store: StateStore) -> None:
    assert status.first_figures(store, "generic:once")
    assert not status.first_figures(store, "generic:once")


def test_status_command_exit_status(
    store: StateStore, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACW_BROKER_URL", redis_url)
    runner = CliRunner()
    lonely = runner.invoke(main, ["status", "--json"])
    assert lonely.exit_code == 1  # nothing wrong with Redis, but no worker is alive
    assert json.loads(lonely.output)["problems"] == ["no worker alive"]
    status.beat(store, "celery@cli", {"pid": 7, "started_at": time.time(), "concurrency": 1})
    ok = runner.invoke(main, ["status"], env={"COLUMNS": "150"})
    assert ok.exit_code == 0, ok.output
    assert "all good" in ok.output and "celery@cli" in ok.output and "sandbox" in ok.output
    status.forget_worker(store, "celery@cli")
    assert status.workers(store) == []
