"""Merging the events of one call into its :class:`~acw_sync.model.CallRecord`.

The record is a pure function of the *set* of events: events are de-duplicated by
``event_id``, put in a total order (time, then sequence, then type, then id) and folded. So any
order and any repetition of delivery gives the same record, which is what lets workers process
events concurrently and at-least-once.

Folding rules:

* scalar facts (numbers, agent fields, times, disposition, recording): a later event's value
  replaces an earlier one, but a missing value never erases a known one;
* ``started_at``/``answered_at`` keep the earliest value seen, ``ended_at`` the latest;
* notes and tags accumulate without duplicates (a tag removed later is dropped);
* the transcript is the longest one received;
* the outcome: voicemail wins; an answered call is completed; else the latest terminal outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from acw_sync.model import (
    TERMINAL_EVENTS,
    Agent,
    CallEvent,
    CallOutcome,
    CallRecord,
    EventType,
    Note,
    call_key,
)

__all__ = ["merge_events", "order_key"]

_TYPE_ORDER = {t: i for i, t in enumerate(EventType)}


def order_key(event: CallEvent) -> tuple[datetime, int, int, str]:
    seq = event.sequence if event.sequence is not None else -1
    return (event.occurred_at, seq, _TYPE_ORDER[event.type], event.event_id)


def merge_events(events: Iterable[CallEvent]) -> CallRecord:
    """Merge the events of one call. Raises ValueError for an empty or mixed set."""
    unique: dict[str, CallEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    ordered = sorted(unique.values(), key=order_key)
    if not ordered:
        raise ValueError("no events to merge")
    first = ordered[0]
    keys = {e.call_key for e in ordered}
    if len(keys) > 1:
        raise ValueError(f"events of different calls: {sorted(keys)}")

    record = CallRecord(
        key=call_key(first.provider, first.call_id),
        provider=first.provider,
        call_id=first.call_id,
    )
    agent: dict[str, str] = {}
    notes: dict[str, Note] = {}
    tags: dict[str, None] = {}
    answered = False
    voicemail = False
    terminal_outcome: CallOutcome | None = None

    scalar_fields = (
        "provider_account",
        "direction",
        "customer_number",
        "line_number",
        "duration",
        "talk_time",
        "hold_time",
        "wrapup_time",
        "disposition",
        "recording_url",
    )
    for event in ordered:
        for name in scalar_fields:
            value = getattr(event, name)
            if value is not None and value != "":
                setattr(record, name, value)
        if event.started_at and (record.started_at is None or event.started_at < record.started_at):
            record.started_at = event.started_at
        if event.answered_at and (
            record.answered_at is None or event.answered_at < record.answered_at
        ):
            record.answered_at = event.answered_at
        if event.ended_at and (record.ended_at is None or event.ended_at > record.ended_at):
            record.ended_at = event.ended_at
        if event.agent is not None:
            for k, v in event.agent.model_dump(exclude_none=True).items():
                if v:
                    agent[k] = v
        for note in event.notes:
            notes.setdefault(note.identity, note)
        for tag in event.tags:
            tags.setdefault(tag, None)
        for tag in event.removed_tags:
            tags.pop(tag, None)
        if len(event.transcript) > len(record.transcript):
            record.transcript = list(event.transcript)
        if event.type is EventType.ANSWERED or event.answered_at is not None:
            answered = True
        if event.type is EventType.VOICEMAIL or event.outcome is CallOutcome.VOICEMAIL:
            voicemail = True
        if event.outcome is not None:
            terminal_outcome = event.outcome
        if event.type is EventType.MISSED and event.outcome is None:
            terminal_outcome = CallOutcome.MISSED
        if event.type in TERMINAL_EVENTS:
            record.ended = True

    if voicemail:
        record.outcome = CallOutcome.VOICEMAIL
    elif answered or (record.talk_time or 0) > 0:
        record.outcome = CallOutcome.COMPLETED
    elif terminal_outcome is not None:
        record.outcome = terminal_outcome
    elif record.ended:
        record.outcome = CallOutcome.MISSED
    if answered and record.talk_time is None and record.answered_at and record.ended_at:
        record.talk_time = max(0.0, (record.ended_at - record.answered_at).total_seconds())
    if record.duration is None and record.started_at and record.ended_at:
        record.duration = max(0.0, (record.ended_at - record.started_at).total_seconds())

    record.agent = Agent(**agent) if agent else None
    record.notes = sorted(notes.values(), key=_note_order)
    record.tags = list(tags)
    record.event_ids = sorted(unique)
    record.last_event_at = ordered[-1].occurred_at
    return record


def _note_order(note: Note) -> tuple[str, str]:
    return (note.created_at.isoformat() if note.created_at else "", note.identity)
