"""Merging the events of one call into its :class:`~acw_sync.model.CallRecord`.

The record is a pure function of the *set* of events: events are de-duplicated by
``event_id``, put in a total order (time, then sequence, then type, then id) and folded. So any
order and any repetition of delivery gives the same record, which is what lets workers process
events concurrently and at-least-once.

Folding rules:

* who called whom (``direction``, ``customer_number``, ``line_number``, account) is taken from
  the earliest event that says it: a call's first leg defines it, and a later leg (the agent a
  Vonage ``connect`` or a transfer rang) must not turn the agent into the customer;
* measurements and references (durations, disposition, recording): a later event's value
  replaces an earlier one (Aircall's ``call.ended`` brings final figures ~30 s after
  ``call.hungup``), but a missing value never erases a known one;
* the agent: fields accumulate, later values win, and the agent of an ``answered`` event wins
  over agents that were only rung (a queue member's "missed" leg may arrive after the pickup);
* ``started_at``/``answered_at`` keep the earliest value seen, ``ended_at`` the latest;
* notes and tags accumulate without duplicates; ``removed_tags`` drop a tag, and an event with
  ``tags_complete`` drops every tag it does not list (both in event order);
* the transcript is the longest one received;
* the outcome: voicemail wins; an answered call is completed; else the latest terminal outcome.

Two events with the same ``event_id`` are one event; if their contents differ, the one whose
JSON sorts last is kept, so the choice does not depend on arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from acw_sync.model import (
    TERMINAL_EVENTS,
    Agent,
    CallEvent,
    CallOutcome,
    CallRecord,
    EventType,
    Note,
    Utterance,
    call_key,
)

__all__ = ["merge_events", "order_key"]

_TYPE_ORDER = {t: i for i, t in enumerate(EventType)}
#: Who called whom: the earliest event that says it wins.
_IDENTITY_FIELDS = ("provider_account", "direction", "customer_number", "line_number")
#: Measurements and references: the latest value wins, a missing one never erases it.
_SCALAR_FIELDS = (
    "duration",
    "talk_time",
    "hold_time",
    "wrapup_time",
    "disposition",
    "recording_url",
)


def order_key(event: CallEvent) -> tuple[datetime, int, int, str]:
    seq = event.sequence if event.sequence is not None else -1
    return (event.occurred_at, seq, _TYPE_ORDER[event.type], event.event_id)


def merge_events(events: Iterable[CallEvent]) -> CallRecord:
    """Merge the events of one call. Raises ValueError for an empty or mixed set."""
    unique: dict[str, CallEvent] = {}
    for event in events:
        known = unique.get(event.event_id)
        if known is None or (
            known is not event and event.model_dump_json() > known.model_dump_json()
        ):
            unique[event.event_id] = event
    ordered = sorted(unique.values(), key=order_key)
    if not ordered:
        raise ValueError("no events to merge")
    first = ordered[0]
    keys = {e.call_key for e in ordered}
    if len(keys) > 1:
        raise ValueError(f"events of different calls: {sorted(keys)}")

    # The fold works on plain locals and builds the record once at the end: the models
    # validate every assignment, and a record's fields are set several times per event.
    values: dict[str, Any] = {}
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    transcript: list[Utterance] = []
    agents: list[tuple[bool, Agent]] = []
    notes: dict[str, Note] = {}
    tags: dict[str, None] = {}
    ended = False
    answered = False
    voicemail = False
    terminal_outcome: CallOutcome | None = None

    for event in ordered:
        for name in _IDENTITY_FIELDS:
            value = getattr(event, name)
            if value is not None and value != "" and values.get(name) is None:
                values[name] = value
        for name in _SCALAR_FIELDS:
            value = getattr(event, name)
            if value is not None and value != "":
                values[name] = value
        if event.started_at and (started_at is None or event.started_at < started_at):
            started_at = event.started_at
        if event.answered_at and (answered_at is None or event.answered_at < answered_at):
            answered_at = event.answered_at
        if event.ended_at and (ended_at is None or event.ended_at > ended_at):
            ended_at = event.ended_at
        if event.agent is not None and not event.agent.is_empty():
            agents.append((event.type is EventType.ANSWERED, event.agent))
        for note in event.notes:
            notes.setdefault(note.identity, note)
        if event.tags_complete:
            tags = {t: None for t in tags if t in event.tags}
        for tag in event.tags:
            tags.setdefault(tag, None)
        for tag in event.removed_tags:
            tags.pop(tag, None)
        if len(event.transcript) > len(transcript):
            transcript = list(event.transcript)
        if event.type is EventType.ANSWERED or event.answered_at is not None:
            answered = True
        if event.type is EventType.VOICEMAIL or event.outcome is CallOutcome.VOICEMAIL:
            voicemail = True
        if event.outcome is not None:
            terminal_outcome = event.outcome
        if event.type is EventType.MISSED and event.outcome is None:
            terminal_outcome = CallOutcome.MISSED
        if event.type in TERMINAL_EVENTS:
            ended = True

    outcome: CallOutcome | None = None
    if voicemail:
        outcome = CallOutcome.VOICEMAIL
    elif answered or (values.get("talk_time") or 0) > 0:
        outcome = CallOutcome.COMPLETED
    elif terminal_outcome is not None:
        outcome = terminal_outcome
    elif ended:
        outcome = CallOutcome.MISSED
    if answered and values.get("talk_time") is None and answered_at and ended_at:
        values["talk_time"] = max(0.0, (ended_at - answered_at).total_seconds())
    if values.get("duration") is None and started_at and ended_at:
        values["duration"] = max(0.0, (ended_at - started_at).total_seconds())

    return CallRecord(
        key=call_key(first.provider, first.call_id),
        provider=first.provider,
        call_id=first.call_id,
        started_at=started_at,
        answered_at=answered_at,
        ended_at=ended_at,
        ended=ended,
        outcome=outcome,
        transcript=transcript,
        agent=_merge_agents(agents),
        notes=sorted(notes.values(), key=_note_order),
        tags=list(tags),
        event_ids=sorted(unique),
        last_event_at=ordered[-1].occurred_at,
        **values,
    )


def _note_order(note: Note) -> tuple[str, str]:
    return (note.created_at.isoformat() if note.created_at else "", note.identity)


def _merge_agents(agents: list[tuple[bool, Agent]]) -> Agent | None:
    """Fold the agents of the ordered events; the agent who answered beats those only rung.

    When an agent answered, only events naming that same agent (by id or email) contribute, so
    fields of two people are never mixed into one.
    """
    answering = [a for answered, a in agents if answered]
    chosen = [a for _, a in agents]
    if answering:
        last = answering[-1]
        chosen = [a for a in chosen if _same_agent(a, last)]
    fields: dict[str, str] = {}
    for agent in chosen:
        for k, v in agent.model_dump(exclude_none=True).items():
            if v:
                fields[k] = v
    return Agent(**fields) if fields else None


def _same_agent(a: Agent, b: Agent) -> bool:
    if a.id and b.id:
        return a.id == b.id
    if a.email and b.email:
        return a.email.lower() == b.email.lower()
    if a.name and b.name:
        return a.name == b.name
    return False
