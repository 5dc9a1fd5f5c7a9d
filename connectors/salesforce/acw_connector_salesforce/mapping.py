"""Canonical call, follow-up and customer -> Salesforce fields. Pure functions, no I/O.

A call is a Task the way Open CTI softphones log one: ``TaskSubtype = 'Call'`` (only at
creation: the field is not updateable), ``CallType``, ``CallDurationInSeconds``,
``CallDisposition``, ``CallObject`` = the call's key, a closed ``Status``. A follow-up is an
open Task (``TaskSubtype = 'Task'``) with a due date, a priority and an optional reminder.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from acw_connector_salesforce.config import SalesforceConfig
from acw_sync.activity import activity_body, activity_subject
from acw_sync.model import CallRecord, CustomerRef, Direction, FollowUp, Priority

__all__ = [
    "CALL_FIELDS",
    "CREATE_ONLY_FIELDS",
    "call_task",
    "customer_links",
    "followup_task",
    "for_update",
    "lead_fields",
    "salesforce_datetime",
    "without_call_fields",
]

#: Task fields that exist only in orgs with Salesforce Call Center enabled (per the Task
#: object reference); an org without them answers INVALID_FIELD.
CALL_FIELDS = ("CallType", "CallDurationInSeconds", "CallDisposition", "CallObject")
#: Fields Salesforce accepts on insert only: never send them in an update.
CREATE_ONLY_FIELDS = ("TaskSubtype",)

_CALL_TYPES = {
    Direction.INBOUND: "Inbound",
    Direction.OUTBOUND: "Outbound",
    Direction.INTERNAL: "Internal",
}
_PRIORITIES = {Priority.HIGH: "High", Priority.NORMAL: "Normal", Priority.LOW: "Low"}
DESCRIPTION_MAX = 32_000


def salesforce_datetime(value: datetime) -> str:
    """``2024-05-02T08:00:00.000+0000``, the dateTime form the REST API documents."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def customer_links(customer: CustomerRef | None, *, relate_account: bool) -> dict[str, str]:
    """``WhoId`` / ``WhatId`` for a Task about ``customer``.

    A Contact is the Who, its Account the What (when ``relate_account``); a Lead is the Who
    alone (a Lead cannot be related to another record); an Account is the What alone.
    """
    if customer is None:
        return {}
    if customer.object_type == "Account":
        return {"WhatId": customer.id}
    links = {"WhoId": customer.id}
    if customer.object_type == "Contact" and relate_account and customer.account_id:
        links["WhatId"] = customer.account_id
    return links


def call_task(
    call: CallRecord,
    *,
    key: str,
    customer: CustomerRef | None,
    owner_id: str | None,
    overrides: Mapping[str, Any],
    config: SalesforceConfig,
) -> dict[str, Any]:
    """The Task fields of a call activity, as they are sent on creation."""
    analysis = call.analysis
    disposition = call.disposition or (
        analysis.resolution.value.replace("_", " ")
        if analysis and analysis.resolution
        else (call.outcome.value.replace("_", " ") if call.outcome else None)
    )
    when = call.started_at or call.ended_at or call.last_event_at
    body: dict[str, Any] = {
        "Subject": activity_subject(call),
        "TaskSubtype": "Call",
        "Status": config.call_status,
        "Description": activity_body(call)[:DESCRIPTION_MAX],
        "CallType": _CALL_TYPES[call.direction or Direction.INBOUND],
        "CallObject": key,
    }
    if call.duration is not None:
        body["CallDurationInSeconds"] = round(call.duration)
    if disposition:
        body["CallDisposition"] = disposition[:255]
    if when is not None:
        body["ActivityDate"] = when.date().isoformat()
    owner = owner_id or config.default_owner_id
    if owner:
        body["OwnerId"] = owner
    body.update(customer_links(customer, relate_account=config.relate_account))
    if config.external_id_field:
        body[config.external_id_field] = key
    body.update(overrides)
    return body


def followup_task(
    task: FollowUp,
    *,
    customer: CustomerRef | None,
    owner_id: str | None,
    config: SalesforceConfig,
) -> dict[str, Any]:
    """The Task fields of a follow-up: open, due, prioritised, optionally with a reminder."""
    body: dict[str, Any] = {
        "Subject": task.subject,
        "Description": task.body[:DESCRIPTION_MAX],
        "TaskSubtype": "Task",
        "Status": config.followup_status,
        "Priority": _PRIORITIES[task.priority],
        "ActivityDate": task.due_at.date().isoformat(),
        config.key_field: task.key,
    }
    if task.reminder_at is not None:
        body["IsReminderSet"] = True
        body["ReminderDateTime"] = salesforce_datetime(task.reminder_at)
    owner = task.owner_id or owner_id or config.default_owner_id
    if owner:
        body["OwnerId"] = owner
    body.update(customer_links(customer, relate_account=config.relate_account))
    return body


def without_call_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Task body for an org without call-centre fields: they drop out; the call's facts
    stay readable in Subject and Description (which :func:`call_task` already fills)."""
    return {k: v for k, v in body.items() if k not in CALL_FIELDS}


def for_update(body: Mapping[str, Any]) -> dict[str, Any]:
    """An update never carries create-only fields (``TaskSubtype``)."""
    return {k: v for k, v in body.items() if k not in CREATE_ONLY_FIELDS}


def lead_fields(number: str | None, config: SalesforceConfig) -> dict[str, Any]:
    """A Lead for an unknown caller: E.164 phone, placeholder name and company."""
    body: dict[str, Any] = {
        "LastName": config.lead_last_name.format(number=number or "unknown")[:80],
        "Company": config.lead_company,
        "Phone": number,
    }
    if config.lead_source:
        body["LeadSource"] = config.lead_source
    body.update(config.lead_fields)
    return body
