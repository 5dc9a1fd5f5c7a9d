"""Follow-up rules: which tasks a call creates in the CRM, and when they are due.

The built-in rule of the foundation: a missed inbound call or a voicemail creates a "call back"
task for the agent, due ``followups.callback_delay`` seconds after the call ended. Rules are
evaluated per call and connector instance; each rule's task is keyed ``{call_key}#{rule}`` so it
is created at most once however often the call is synced.
"""

from __future__ import annotations

from datetime import timedelta

from acw_sync.config import AppConfig
from acw_sync.model import CallOutcome, CallRecord, Direction, FollowUp, Priority, TaskType, utcnow

__all__ = ["evaluate_rules"]

_MISSED = {
    CallOutcome.MISSED,
    CallOutcome.NO_ANSWER,
    CallOutcome.BUSY,
    CallOutcome.ABANDONED,
}


def evaluate_rules(call: CallRecord, config: AppConfig) -> list[FollowUp]:
    """The follow-up tasks ``call`` should have. Pure: same call, same tasks."""
    if not call.ended or call.outcome is None:
        return []
    ended = call.ended_at or call.last_event_at or utcnow()
    due = ended + timedelta(seconds=config.followups.callback_delay)
    who = call.customer_number or "the caller"
    inbound = call.direction in (None, Direction.INBOUND)
    if call.outcome is CallOutcome.VOICEMAIL and inbound:
        return [
            FollowUp(
                rule="callback-voicemail",
                call_key=call.key,
                subject=f"Call back {who} (voicemail)",
                body=_body(call, "left a voicemail"),
                due_at=due,
                type=TaskType.CALL,
                priority=Priority.HIGH,
            )
        ]
    if call.outcome in _MISSED and inbound:
        return [
            FollowUp(
                rule="callback-missed",
                call_key=call.key,
                subject=f"Call back {who} (missed call)",
                body=_body(call, "called and nobody answered"),
                due_at=due,
                type=TaskType.CALL,
                priority=Priority.HIGH,
            )
        ]
    return []


def _body(call: CallRecord, what: str) -> str:
    when = (call.ended_at or call.started_at or call.last_event_at or utcnow()).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    lines = [f"{call.customer_number or 'A caller'} {what} at {when}."]
    if call.recording_url:
        lines.append(f"Recording: {call.recording_url}")
    lines.extend(f"Note: {n.text}" for n in call.notes)
    return "\n".join(lines)
