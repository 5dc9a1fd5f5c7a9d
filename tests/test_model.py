from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from acw_sync.merge import merge_events
from acw_sync.model import CallEvent, CallOutcome, EventType, FollowUp, Note
from acw_sync.phone import mask, same_number, stored_formats, to_e164

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def event(n: int, kind: EventType, **kw: object) -> CallEvent:
    return CallEvent(
        event_id=f"e{n}",
        provider="generic",
        call_id="c1",
        type=kind,
        occurred_at=kw.pop("occurred_at", T0 + timedelta(seconds=n)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_phone_numbers_are_e164_and_masked() -> None:
    assert to_e164("(415) 555-0100", "US") == "+14155550100"
    assert to_e164("441234567890") == "+441234567890"
    assert to_e164("anonymous", "US") is None
    assert to_e164("client:alice", "US") is None
    assert "415-555-0100" in stored_formats("+14155550100")
    assert same_number("415.555.0100", "+14155550100")
    assert not same_number("415.555.0101", "+14155550100")
    assert mask("+14155550100") == "***0100"


def test_event_rejects_naive_times_and_bad_numbers() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        event(1, EventType.STARTED, occurred_at=datetime(2026, 3, 10, 14, 0))
    with pytest.raises(ValidationError, match="not a phone number"):
        event(1, EventType.STARTED, customer_number="4155550100")
    e = event(
        1,
        EventType.STARTED,
        occurred_at=datetime(2026, 3, 10, 15, 0, tzinfo=timezone(timedelta(hours=1))),
    )
    assert e.occurred_at == T0 + timedelta(hours=0) and e.occurred_at.tzinfo == UTC
    with pytest.raises(ValidationError):
        event(1, EventType.ENDED, duration=-1)


def test_merge_keeps_facts_accumulates_notes_and_is_order_free() -> None:
    events = [
        event(1, EventType.STARTED, customer_number="+14155550100", started_at=T0),
        event(2, EventType.ANSWERED, answered_at=T0 + timedelta(seconds=5)),
        event(3, EventType.NOTE_ADDED, notes=[Note(text="Wants a refund")], tags=["billing"]),
        event(
            4,
            EventType.ENDED,
            ended_at=T0 + timedelta(seconds=65),
            notes=[Note(text="Wants a refund")],
        ),
        event(5, EventType.TAGGED, tags=["billing", "vip"]),
    ]
    record = merge_events(events)
    assert record.customer_number == "+14155550100"  # a later event without it keeps it
    assert record.outcome is CallOutcome.COMPLETED and record.ended
    assert [n.text for n in record.notes] == ["Wants a refund"]
    assert record.tags == ["billing", "vip"]
    assert record.talk_time == 60 and record.duration == 65
    assert merge_events(reversed(events + events)) == record


def test_voicemail_wins_and_unanswered_end_is_missed() -> None:
    vm = merge_events([event(1, EventType.STARTED), event(2, EventType.VOICEMAIL)])
    assert vm.outcome is CallOutcome.VOICEMAIL
    missed = merge_events([event(1, EventType.RINGING), event(2, EventType.ENDED)])
    assert missed.outcome is CallOutcome.MISSED and missed.missed
    busy = merge_events([event(1, EventType.ENDED, outcome=CallOutcome.BUSY)])
    assert busy.outcome is CallOutcome.BUSY


def test_followup_key_is_one_per_rule_per_call() -> None:
    task = FollowUp(rule="callback", call_key="generic:c1", subject="Call back", due_at=T0)
    assert task.key == "generic:c1#callback"
    with pytest.raises(ValidationError):
        FollowUp(rule="", call_key="k", subject="s", due_at=T0)
