"""Builders for call records in the analyzer tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from acw_sync.model import Agent, CallOutcome, CallRecord, Note, Speaker, Utterance

BERLIN = ZoneInfo("Europe/Berlin")


def make_call(
    transcript: list[tuple[str, str]] | None = None,
    *,
    notes: list[str] | None = None,
    ended: datetime | None = None,
    outcome: CallOutcome | None = CallOutcome.COMPLETED,
    disposition: str | None = None,
    tags: list[str] | None = None,
    agent: Agent | None = None,
    talk: float | None = 300.0,
    hold: float | None = None,
    wrapup: float | None = None,
    key: str = "test:1",
) -> CallRecord:
    ended = ended or datetime(2026, 6, 10, 11, 0, tzinfo=BERLIN)
    return CallRecord(
        key=key,
        provider="test",
        call_id=key.split(":", 1)[-1],
        started_at=ended - timedelta(seconds=(talk or 0) + (hold or 0)),
        ended_at=ended,
        talk_time=talk,
        hold_time=hold,
        wrapup_time=wrapup,
        outcome=outcome,
        disposition=disposition,
        tags=tags or [],
        agent=agent,
        notes=[Note(text=t) for t in notes or []],
        transcript=[Utterance(speaker=Speaker(s), text=t) for s, t in transcript or []],
        ended=True,
    )
