"""Canonical call and follow-up -> HubSpot properties and associations. Pure functions, no I/O.

HubSpot property values are strings on the wire. Durations go out in milliseconds, times as
ISO-8601 UTC, outcomes as disposition GUIDs (resolved by the caller from the portal's labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from acw_sync.activity import activity_body_html, activity_subject
from acw_sync.model import CallOutcome, CallRecord, CustomerRef, Direction, FollowUp, Resolution

__all__ = [
    "CALL_TO_COMPANY",
    "CALL_TO_CONTACT",
    "CALL_TO_DEAL",
    "DEFAULT_DISPOSITIONS",
    "TASK_TO_COMPANY",
    "TASK_TO_CONTACT",
    "call_associations",
    "call_properties",
    "disposition_labels",
    "hs_time",
    "resolve_disposition",
    "task_associations",
    "task_properties",
]

# HubSpot-defined association type ids (hubspot.crm.association_type in hubspot-api-client 12).
CALL_TO_CONTACT = 194
CALL_TO_COMPANY = 182
CALL_TO_DEAL = 206
TASK_TO_CONTACT = 204
TASK_TO_COMPANY = 192

#: The default call outcomes of every portal (label -> GUID). Portals may add their own.
DEFAULT_DISPOSITIONS: dict[str, str] = {
    "Busy": "9d9162e7-6cf3-4944-bf63-4dff82258764",
    "Connected": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
    "Left live message": "a4c4c377-d246-4b32-a13b-75a56a4cd0ff",
    "Left voicemail": "b2cf5968-551e-4856-9783-52b3da59a7d0",
    "No answer": "73a0d17f-1163-4015-bdd5-ec830791da20",
    "Wrong number": "17b47fee-58de-441e-a44c-c6300d46f273",
}

#: Canonical outcome or resolution -> the default HubSpot outcome label.
DEFAULT_OUTCOME_LABELS: dict[str, str] = {
    CallOutcome.COMPLETED.value: "Connected",
    CallOutcome.BUSY.value: "Busy",
    CallOutcome.NO_ANSWER.value: "No answer",
    CallOutcome.MISSED.value: "No answer",
    CallOutcome.ABANDONED.value: "No answer",
    CallOutcome.VOICEMAIL.value: "Left voicemail",
    Resolution.VOICEMAIL.value: "Left voicemail",
    Resolution.MISSED.value: "No answer",
}

_STATUS = {
    CallOutcome.COMPLETED: "COMPLETED",
    CallOutcome.BUSY: "BUSY",
    CallOutcome.FAILED: "FAILED",
    CallOutcome.NO_ANSWER: "NO_ANSWER",
    CallOutcome.MISSED: "NO_ANSWER",
    CallOutcome.ABANDONED: "CANCELED",
    CallOutcome.VOICEMAIL: "NO_ANSWER",
}
MAX_BODY = 65_536
"""Longest engagement body HubSpot stores (documented for notes; assumed for calls)."""
_PRIORITY = {"low": "LOW", "normal": "MEDIUM", "high": "HIGH"}
_TASK_TYPE = {"call": "CALL", "email": "EMAIL", "todo": "TODO"}


def hs_time(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds, the form HubSpot itself returns."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _ms(value: datetime) -> str:
    return str(int(value.timestamp() * 1000))


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return hs_time(value)
    if isinstance(value, list | tuple | set):
        return ";".join(str(v) for v in value)
    return str(value)


def disposition_labels(call: CallRecord, outcome_labels: Mapping[str, str]) -> list[str]:
    """Outcome labels to try for ``call``, best first: the platform's own disposition (when the
    portal knows that label), the label of the analysed resolution, that of the outcome.

    ``outcome_labels`` maps canonical outcome/resolution values to labels (over the defaults).
    """
    merged = {**DEFAULT_OUTCOME_LABELS, **outcome_labels}
    labels = [call.disposition] if call.disposition else []
    analysis = call.analysis
    if analysis and analysis.resolution and analysis.resolution.value in merged:
        labels.append(merged[analysis.resolution.value])
    if call.outcome is not None and call.outcome.value in merged:
        labels.append(merged[call.outcome.value])
    return labels


def resolve_disposition(label: str | None, dispositions: Mapping[str, str]) -> str | None:
    """The GUID of ``label`` among the portal's outcomes (case-insensitive), else None."""
    if not label:
        return None
    by_lower = {k.strip().lower(): v for k, v in dispositions.items()}
    guid = by_lower.get(label.strip().lower())
    if guid is None and label in dispositions.values():
        return label  # already a GUID
    return guid


def call_properties(
    call: CallRecord,
    *,
    key: str,
    owner_id: str | None,
    disposition: str | None,
    fields: Mapping[str, Any],
) -> dict[str, str]:
    """The Calls object's properties; admin-mapped ``fields`` override the defaults."""
    when = call.started_at or call.answered_at or call.ended_at or call.last_event_at
    direction = call.direction or Direction.INBOUND
    customer, line = call.customer_number, call.line_number
    outbound = direction is not Direction.INBOUND
    props: dict[str, str] = {
        "hs_call_title": activity_subject(call),
        "hs_call_body": activity_body_html(call)[:MAX_BODY],
        "hs_call_direction": "OUTBOUND" if outbound else "INBOUND",
        "hs_call_external_id": key,
    }
    if when is not None:
        props["hs_timestamp"] = hs_time(when)
    seconds = call.duration if call.duration is not None else call.talk_time
    if seconds is not None:
        props["hs_call_duration"] = str(round(seconds * 1000))
    from_number, to_number = (line, customer) if outbound else (customer, line)
    if from_number:
        props["hs_call_from_number"] = from_number
    if to_number:
        props["hs_call_to_number"] = to_number
    if call.outcome is not None:
        props["hs_call_status"] = _STATUS[call.outcome]
    elif call.ended:
        props["hs_call_status"] = "COMPLETED"
    else:
        props["hs_call_status"] = "IN_PROGRESS"
    if disposition:
        props["hs_call_disposition"] = disposition
    if call.recording_url and call.recording_url.lower().startswith("https://"):
        # HubSpot only plays HTTPS recordings; an http link stays in the body only.
        props["hs_call_recording_url"] = call.recording_url
    if owner_id:
        props["hubspot_owner_id"] = owner_id
    for name, value in fields.items():
        if value is None:
            continue
        props[name] = _wire(value)
    return props


def call_associations(
    customer: CustomerRef | None, *, company: bool, deal_ids: Sequence[str] = ()
) -> list[tuple[str, int]]:
    """``(to_object_id, association_type_id)`` pairs for a call's inline associations."""
    pairs: list[tuple[str, int]] = []
    if customer is not None:
        if customer.object_type == "company":
            pairs.append((customer.id, CALL_TO_COMPANY))
        else:
            pairs.append((customer.id, CALL_TO_CONTACT))
            if company and customer.account_id:
                pairs.append((customer.account_id, CALL_TO_COMPANY))
    pairs.extend((deal_id, CALL_TO_DEAL) for deal_id in deal_ids)
    return pairs


def task_properties(
    task: FollowUp, *, owner_id: str | None, status: str, key_property: str
) -> dict[str, str]:
    """The Tasks object's properties. ``hs_timestamp`` is the due time."""
    props = {
        "hs_task_subject": task.subject,
        "hs_task_body": task.body[:MAX_BODY],
        "hs_timestamp": hs_time(task.due_at),
        "hs_task_status": status,
        "hs_task_priority": _PRIORITY[task.priority.value],
        "hs_task_type": _TASK_TYPE[task.type.value],
        key_property: task.key,
    }
    owner = task.owner_id or owner_id
    if owner:
        props["hubspot_owner_id"] = owner
    if task.reminder_at is not None:
        props["hs_task_reminders"] = _ms(task.reminder_at)
    return props


def task_associations(customer: CustomerRef | None, *, company: bool) -> list[tuple[str, int]]:
    if customer is None:
        return []
    if customer.object_type == "company":
        return [(customer.id, TASK_TO_COMPANY)]
    pairs = [(customer.id, TASK_TO_CONTACT)]
    if company and customer.account_id:
        pairs.append((customer.account_id, TASK_TO_COMPANY))
    return pairs
