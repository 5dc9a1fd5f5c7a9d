"""Many call Tasks per request through sObject Collections (≤ 200 records, per-record results).

Reconciliation is the single-write one, batched: Tasks the ledger knows are updated
(``PATCH composite/sobjects``, never ``TaskSubtype``); the others are upserted on the external id
(``PATCH composite/sobjects/Task/<field>``) or, without one, looked up in one SOQL
``CallObject IN (...)`` and then updated or created (``POST composite/sobjects``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from acw_connector_salesforce.client import error_intent, failure_of, soql_quote
from acw_connector_salesforce.mapping import (
    call_task,
    followup_task,
    for_update,
    without_call_fields,
)
from acw_sync.connector import CallWrite, TaskWrite
from acw_sync.errors import ConnectorError, PermanentError
from acw_sync.model import CrmObjectRef

if TYPE_CHECKING:
    from acw_connector_salesforce.connector import SalesforceConnector

__all__ = ["COLLECTION_MAX", "create_tasks_chunk", "write_chunk"]

#: sObject Collections take at most 200 records per request.
COLLECTION_MAX = 200


def write_chunk(
    conn: SalesforceConnector, chunk: Sequence[CallWrite]
) -> list[CrmObjectRef | ConnectorError]:
    """Write one chunk (≤ 200 items, distinct keys): one result per item, in order.

    A record Salesforce rejects is that item's error; a failure of a whole request raises.
    """
    out: list[CrmObjectRef | ConnectorError | None] = [None] * len(chunk)
    bodies = []
    for item in chunk:
        body = call_task(
            item.call,
            key=item.key,
            customer=item.customer,
            owner_id=item.owner_id,
            overrides=item.fields,
            config=conn.settings,
        )
        bodies.append(body if conn.call_fields_supported else without_call_fields(body))
    updates: dict[int, str] = {
        i: item.existing.id for i, item in enumerate(chunk) if item.existing is not None
    }
    ext = conn.settings.external_id_field
    unknown = [i for i in range(len(chunk)) if i not in updates]
    if not ext and unknown:
        # Fresh keys were never sent before (the core says so): nothing to reconcile.
        keys = {chunk[i].key: i for i in unknown if not chunk[i].fresh}
        if keys and conn.call_fields_supported:
            listed = ", ".join(soql_quote(k) for k in keys)
            rows = conn.client.query(
                f"SELECT Id, CallObject FROM Task WHERE CallObject IN ({listed}) "
                "ORDER BY CreatedDate ASC",
                "reconciling a batch of calls",
            )
            for row in reversed(rows):  # the oldest Task wins
                if row.get("CallObject") in keys:
                    updates[keys[row["CallObject"]]] = str(row["Id"])
        else:
            for k, i in keys.items():
                if (known := conn._written.get(k)) is not None:
                    updates[i] = known
        unknown = [i for i in unknown if i not in updates]
    if updates:
        records = [
            {"attributes": {"type": "Task"}, "Id": rid, **for_update(bodies[i])}
            for i, rid in updates.items()
        ]
        saved = _collection(conn, "PATCH", "composite/sobjects", records, "updating calls")
        for i, result in zip(updates, saved, strict=True):
            out[i] = _saved(conn, result, created=False)
    if unknown and ext:
        _upsert_collection(conn, chunk, bodies=bodies, indexes=unknown, ext=ext, out=out)
    elif unknown:
        records = [{"attributes": {"type": "Task"}, **bodies[i]} for i in unknown]
        saved = _collection(conn, "POST", "composite/sobjects", records, "logging calls")
        for i, result in zip(unknown, saved, strict=True):
            out[i] = _saved(conn, result, created=True)
            ref = out[i]
            if isinstance(ref, CrmObjectRef):
                conn._written.put(chunk[i].key, ref.id)
    return [r if r is not None else PermanentError("no result") for r in out]


def create_tasks_chunk(
    conn: SalesforceConnector, chunk: Sequence[TaskWrite]
) -> list[CrmObjectRef | ConnectorError]:
    """Create one chunk (≤ 200) of follow-up Tasks once each: one SOQL ``IN`` on the key field
    for the ones not known, one collection create for the rest; one result per item."""
    out: list[CrmObjectRef | ConnectorError | None] = [None] * len(chunk)
    field = conn.settings.key_field
    unknown: dict[str, int] = {}
    for i, item in enumerate(chunk):
        if item.existing is not None:
            out[i] = CrmObjectRef(
                object_type="Task", id=item.existing.id, url=item.existing.url, created=False
            )
        else:
            unknown.setdefault(item.task.key, i)
    # A fresh key was never sent before (the core recorded no attempt): nothing to find.
    search = {k: i for k, i in unknown.items() if not chunk[i].fresh}
    if search and field == "CallObject" and not conn.call_fields_supported:
        for key, i in search.items():
            if (known := conn._written.get(key)) is not None:
                out[i] = conn._task_ref(str(known), created=False)
    elif search:
        listed = ", ".join(soql_quote(k) for k in search)
        rows = conn.client.query(
            f"SELECT Id, {field} FROM Task WHERE {field} IN ({listed}) ORDER BY CreatedDate ASC",
            "reconciling a batch of follow-ups",
        )
        for row in reversed(rows):  # the oldest Task wins
            if (hit := unknown.get(str(row.get(field)))) is not None:
                out[hit] = conn._task_ref(str(row["Id"]), created=False)
    creates = [i for i in range(len(chunk)) if out[i] is None]
    # Twice the same key in one chunk: only its first item is created; the others follow it.
    twins = [i for i in creates if unknown.get(chunk[i].task.key) != i]
    creates = [i for i in creates if i not in twins]
    if creates:
        records = []
        for i in creates:
            item = chunk[i]
            body = followup_task(
                item.task, customer=item.customer, owner_id=item.owner_id, config=conn.settings
            )
            if not conn.call_fields_supported:
                body = without_call_fields(body)
            records.append({"attributes": {"type": "Task"}, **body})
        saved = _collection(conn, "POST", "composite/sobjects", records, "creating follow-ups")
        for i, result in zip(creates, saved, strict=True):
            out[i] = _saved(conn, result, created=True)
            ref = out[i]
            if isinstance(ref, CrmObjectRef):
                conn._written.put(chunk[i].task.key, ref.id)
    for i in twins:
        out[i] = out[unknown[chunk[i].task.key]]
    return [r if r is not None else PermanentError("no result") for r in out]


def _upsert_collection(
    conn: SalesforceConnector,
    chunk: Sequence[CallWrite],
    *,
    bodies: list[dict[str, Any]],
    indexes: list[int],
    ext: str,
    out: list[CrmObjectRef | ConnectorError | None],
) -> None:
    path = f"composite/sobjects/Task/{ext}"
    records = [{"attributes": {"type": "Task"}, **bodies[i]} for i in indexes]
    saved = _collection(conn, "PATCH", path, records, "upserting calls")
    matched = []
    for i, result in zip(indexes, saved, strict=True):
        errors = result.get("errors") or []
        if not result.get("success") and any(
            e.get("statusCode") == "INVALID_FIELD_FOR_INSERT_UPDATE" for e in errors
        ):
            matched.append(i)  # an existing Task: update without the create-only fields
            continue
        out[i] = _saved(conn, result, created=bool(result.get("created", True)))
    if matched:
        records = [
            {"attributes": {"type": "Task"}, **for_update(bodies[i]), ext: chunk[i].key}
            for i in matched
        ]
        saved = _collection(conn, "PATCH", path, records, "upserting calls")
        for i, result in zip(matched, saved, strict=True):
            out[i] = _saved(conn, result, created=False)


def _collection(
    conn: SalesforceConnector, method: str, path: str, records: list[dict[str, Any]], what: str
) -> list[dict[str, Any]]:
    answer = conn.client.rest(method, path, what, {"allOrNone": False, "records": records})
    if not isinstance(answer, list) or len(answer) != len(records):
        raise PermanentError(f"unexpected sObject Collections answer while {what}")
    return [dict(r) for r in answer]


def _saved(
    conn: SalesforceConnector, result: Mapping[str, Any], *, created: bool
) -> CrmObjectRef | ConnectorError:
    if result.get("success"):
        return conn._task_ref(str(result["id"]), created=created)
    failure = failure_of(None, result.get("errors") or [])
    return error_intent(failure, config=conn.settings, what="writing a call Task")
