"""Canonical call and follow-up -> sandbox CRM columns. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acw_sync.activity import activity_body, activity_subject
from acw_sync.model import CallRecord, FollowUp

__all__ = ["ACTIVITY_COLUMNS", "activity_row", "task_row"]

ACTIVITY_COLUMNS = (
    "subject",
    "direction",
    "outcome",
    "duration",
    "disposition",
    "recording_url",
    "body",
    "call_time",
)


def activity_row(call: CallRecord, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The activity's columns; admin-mapped fields replace columns or land in ``fields``."""
    analysis = call.analysis
    row: dict[str, Any] = {
        "subject": activity_subject(call),
        "direction": call.direction.value if call.direction else None,
        "outcome": call.outcome.value if call.outcome else None,
        "duration": call.duration,
        "disposition": call.disposition,
        "recording_url": call.recording_url,
        "body": activity_body(call),
        "call_time": (call.started_at or call.ended_at or call.last_event_at or None),
    }
    if row["call_time"] is not None:
        row["call_time"] = row["call_time"].isoformat()
    extra: dict[str, Any] = {}
    if analysis is not None:
        extra["resolution"] = analysis.resolution.value if analysis.resolution else None
        extra["sentiment"] = analysis.sentiment.value if analysis.sentiment else None
        extra["categories"] = analysis.categories
    extra["tags"] = call.tags
    for name, value in overrides.items():
        if name in ACTIVITY_COLUMNS:
            row[name] = value
        else:
            extra[name] = value
    row["fields"] = extra
    return row


def task_row(task: FollowUp) -> dict[str, Any]:
    return {
        "subject": task.subject,
        "body": task.body,
        "type": task.type.value,
        "priority": task.priority.value,
        "due_at": task.due_at.isoformat(),
        "reminder_at": task.reminder_at.isoformat() if task.reminder_at else None,
    }
