"""Batch writes of calls and tasks (at most 100 per request, associations inline).

HubSpot answers a batch create with 201 (all written) or 207 (per-record errors), which come
back here as one result per input, in input order: a :class:`~acw_sync.model.CrmObjectRef` or
the :class:`~acw_sync.errors.PermanentError` of that record. Whole-request failures (rate
limits, credentials, outages) raise, so that the core retries the batch; a batch refused whole
for one bad record is retried record by record to isolate it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from acw_connector_hubspot.client import HubSpotClient
from acw_connector_hubspot.config import HubSpotConfig
from acw_connector_hubspot.mapping import hs_time, task_associations
from acw_connector_hubspot.memory import Memory
from acw_sync.connector import CallWrite, TaskWrite
from acw_sync.errors import ConnectorError, PermanentError
from acw_sync.model import CallRecord, CrmObjectRef, CustomerRef, FollowUp

__all__ = ["BatchWrites", "TaskWrite"]


class BatchWrites:
    """The batch half of :class:`~acw_connector_hubspot.connector.HubSpotConnector`."""

    client: HubSpotClient
    settings: HubSpotConfig
    _calls: Memory[str, str]
    _tasks: Memory[str, str]
    _links: Memory[str, frozenset[tuple[str, int]]]

    # Provided by the connector.
    def _portal_dispositions(self) -> dict[str, str]:
        raise NotImplementedError

    def _call_props(
        self,
        call: CallRecord,
        key: str,
        owner_id: str | None,
        fields: Mapping[str, Any],
        dispositions: Mapping[str, str],
    ) -> dict[str, str]:
        raise NotImplementedError

    def _call_assocs(self, customer: CustomerRef | None) -> list[tuple[str, int]]:
        raise NotImplementedError

    def _task_props(self, task: FollowUp, owner_id: str | None) -> dict[str, str]:
        raise NotImplementedError

    def _associate_late(self, call_id: str, pairs: Sequence[tuple[str, int]]) -> None:
        raise NotImplementedError

    def _find_by_key(self, object_type: str, prop: str, keys: Sequence[str]) -> dict[str, str]:
        raise NotImplementedError

    def upsert_calls(self, items: Sequence[CallWrite]) -> list[CrmObjectRef | ConnectorError]:
        """Batch form of :meth:`upsert_call` (at most 100): one result per input, in order.

        Whole-request failures (rate limits, credentials, outages) raise; per-record rejections
        come back as :class:`~acw_sync.errors.PermanentError` in the list.
        """
        if len(items) > 100:
            raise ValueError("at most 100 calls per batch")
        dispositions = self._portal_dispositions()
        props = [self._call_props(i.call, i.key, i.owner_id, i.fields, dispositions) for i in items]
        targets: dict[int, str] = {}
        for n, item in enumerate(items):
            known = item.existing.id if item.existing else self._calls.get(item.key)
            if known:
                targets[n] = known
        # Fresh keys were never sent before (the core says so): nothing to reconcile.
        unknown = [n for n in range(len(items)) if n not in targets and not items[n].fresh]
        if unknown:
            found = self._find_by_key(
                "calls", "hs_call_external_id", [items[n].key for n in unknown]
            )
            targets.update({n: found[items[n].key] for n in unknown if items[n].key in found})
        results: list[CrmObjectRef | ConnectorError | None] = [None] * len(items)
        if targets:
            order = list(targets)
            outcome = self.client.batch_update("calls", [(targets[n], props[n]) for n in order])
            by_id = {str(r["id"]): r for r in outcome.results}
            for n in order:
                if targets[n] in by_id:
                    self._calls.put(items[n].key, targets[n])
                    results[n] = CrmObjectRef(object_type="call", id=targets[n], created=False)
                    pairs = self._call_assocs(items[n].customer)
                    if pairs:
                        self._associate_late(targets[n], pairs)
                else:
                    results[n] = _record_error(outcome.errors, "ids", targets[n])
        creates = [n for n in range(len(items)) if n not in targets]
        for n in creates:
            props[n].setdefault("hs_timestamp", hs_time(datetime.now(UTC)))
        links = {n: self._call_assocs(items[n].customer) for n in creates}
        self._batch_create(
            "calls",
            [(n, props[n], links[n], items[n].key) for n in creates],
            "hs_call_external_id",
            self._calls,
            results,
            object_name="call",
        )
        for n in creates:
            written = results[n]
            if isinstance(written, CrmObjectRef):
                self._links.put(written.id, frozenset(links[n]))
        return [
            r if r is not None else PermanentError("no answer for this record") for r in results
        ]

    def _batch_create(
        self,
        object_type: str,
        rows: Sequence[tuple[int, dict[str, str], list[tuple[str, int]], str]],
        key_property: str,
        memory: Memory[str, str],
        results: list[CrmObjectRef | ConnectorError | None],
        *,
        object_name: str,
    ) -> None:
        if not rows:
            return
        try:
            outcome = self.client.batch_create(object_type, [(p, a, str(n)) for n, p, a, _ in rows])
        except PermanentError:
            if len(rows) == 1:
                raise
            # HubSpot may refuse a whole batch for one bad record: isolate it.
            for n, p, a, key in rows:
                try:
                    row = self.client.create(object_type, p, a)
                except PermanentError as exc:
                    results[n] = exc
                    continue
                memory.put(key, str(row["id"]))
                results[n] = CrmObjectRef(object_type=object_name, id=str(row["id"]))
            return
        by_trace = {str(r.get("object_write_trace_id")): r for r in outcome.results}
        by_key = {str((r.get("properties") or {}).get(key_property)): r for r in outcome.results}
        for n, _p, _a, key in rows:
            written = by_trace.get(str(n)) or by_key.get(key)
            if written is not None:
                memory.put(key, str(written["id"]))
                results[n] = CrmObjectRef(object_type=object_name, id=str(written["id"]))
            else:
                results[n] = _record_error(outcome.errors, "objectWriteTraceId", str(n))

    # -- tasks ---------------------------------------------------------------------------------
    def create_tasks(self, items: Sequence[TaskWrite]) -> list[CrmObjectRef | ConnectorError]:
        """Batch form of :meth:`create_task` (at most 100): one result per input, in order."""
        if len(items) > 100:
            raise ValueError("at most 100 tasks per batch")
        results: list[CrmObjectRef | ConnectorError | None] = [None] * len(items)
        unknown: list[int] = []
        for n, item in enumerate(items):
            known = item.existing.id if item.existing else self._tasks.get(item.task.key)
            if known:
                results[n] = CrmObjectRef(object_type="task", id=known, created=False)
            else:
                unknown.append(n)
        prop = self.settings.followup_key_property
        # A fresh key was never sent before (the core recorded no attempt): nothing to find.
        search = [items[n].task.key for n in unknown if not items[n].fresh]
        found = self._find_by_key("tasks", prop, search) if search else {}
        creates = []
        for n in unknown:
            key = items[n].task.key
            if key in found:
                self._tasks.put(key, found[key])
                results[n] = CrmObjectRef(object_type="task", id=found[key], created=False)
            else:
                pairs = task_associations(
                    items[n].customer, company=self.settings.associate_company
                )
                creates.append((n, self._task_props(items[n].task, items[n].owner_id), pairs, key))
        self._batch_create("tasks", creates, prop, self._tasks, results, object_name="task")
        return [
            r if r is not None else PermanentError("no answer for this record") for r in results
        ]

    # -- check and previews --------------------------------------------------------------------


def _record_error(
    errors: Sequence[Mapping[str, Any]], context_key: str, value: str
) -> PermanentError:
    """The 207 error naming ``value`` in its context (or the only error), as a PermanentError."""
    chosen = next(
        (e for e in errors if value in ((e.get("context") or {}).get(context_key) or [])),
        errors[0] if len(errors) == 1 else None,
    )
    if chosen is None:
        return PermanentError("HubSpot gave no result for this record")
    return PermanentError(
        f"HubSpot rejected the record ({chosen.get('category') or 'error'})",
        crm_message=str(chosen.get("message") or "")[:1000] or None,
        status=int(str(chosen.get("status") or "400"))
        if str(chosen.get("status") or "").isdigit()
        else 400,
        details={"category": chosen.get("category")},
    )
