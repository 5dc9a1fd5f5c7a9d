"""The Salesforce connector: calls as Tasks on the right Contact or Lead, follow-ups as Tasks.

Idempotency, in the order it is tried for a call (key = ``CallRecord.key``):

1. the ledger's Task id (``existing``): update it (never ``TaskSubtype``);
2. ``external_id_field`` configured: upsert on it (a Unique External ID field makes concurrent
   writers safe);
3. otherwise SOQL on ``CallObject = key`` (immediately consistent, unlike SOSL) before creating;
4. in an org without call-centre fields and without an external id field, only the ledger and
   this process's memory reconcile (documented in ``docs/salesforce.md``).

Customer matching returns candidates best-first: objects in ``object_priority`` order (Contact,
Lead, Account by default), and within one object the most recently modified record first
(``LastModifiedDate DESC``, then ``Id``). Only records whose stored number normalises to the
caller's E.164 number are returned; the core applies its 0/1/many policy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

from acw_connector_salesforce.batch import COLLECTION_MAX, create_tasks_chunk, write_chunk
from acw_connector_salesforce.checks import org_checks
from acw_connector_salesforce.client import (
    ApiUsage,
    SalesforceClient,
    soql_quote,
)
from acw_connector_salesforce.config import SalesforceConfig
from acw_connector_salesforce.lookup import PHONE_FIELDS, find_by_phone
from acw_connector_salesforce.mapping import (
    CALL_FIELDS,
    call_task,
    followup_task,
    for_update,
    lead_fields,
    without_call_fields,
)
from acw_sync.connector import (
    CallWrite,
    Capabilities,
    Check,
    Connector,
    TaskWrite,
    WritePreview,
)
from acw_sync.errors import ConnectorError, PermanentError
from acw_sync.model import Agent, CallRecord, CrmObjectRef, CustomerRef, FollowUp

__all__ = ["PHONE_FIELDS", "SalesforceConnector"]

log = logging.getLogger(__name__)

#: Seconds a User look-up is trusted: hits for an hour, misses (no user yet) for five minutes.
OWNER_TTL, OWNER_MISS_TTL = 3600.0, 300.0
#: Keys remembered per process; bounded because a worker lives for millions of calls.
MEMORY_SIZE = 10_000


class _Memory:
    """A small bounded map (oldest entries forgotten first), safe across worker threads."""

    def __init__(self, size: int = MEMORY_SIZE) -> None:
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def values(self) -> list[Any]:
        with self._lock:
            return list(self._data.values())


def _code(exc: ConnectorError) -> str:
    return str(exc.details.get("error_code", ""))


class SalesforceConnector(Connector):
    type_name = "salesforce"
    config_model = SalesforceConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_customer=True,
        update_customer=True,
        owner_lookup=True,
        external_ids=True,
        batch_size=COLLECTION_MAX,
    )

    def __init__(self, instance: str, config: SalesforceConfig) -> None:
        super().__init__(instance, config)
        self.settings = config
        self.client = SalesforceClient(config)
        self.call_fields_supported = True
        """False once the org rejected the call-centre Task fields (INVALID_FIELD)."""
        self._owners = _Memory()  # e-mail -> (user id or None, expires at)
        self._leads = _Memory()  # create_customer key -> the Lead we created or reused
        self._written = _Memory()  # key -> Task id, for orgs where the key cannot be queried
        self._lock = threading.Lock()

    @property
    def api_usage(self) -> ApiUsage | None:
        """The org's API usage from the last response's ``Sforce-Limit-Info`` header."""
        return self.client.api_usage

    # -- helpers ---------------------------------------------------------------------------------
    def _url(self, record_id: str) -> str | None:
        try:
            return f"{self.client.instance_url}/{record_id}"
        except ConnectorError:
            return None

    def _task_ref(self, record_id: str, *, created: bool) -> CrmObjectRef:
        return CrmObjectRef(
            object_type="Task", id=record_id, url=self._url(record_id), created=created
        )

    def _is_call_field_error(self, exc: ConnectorError) -> bool:
        if _code(exc) != "INVALID_FIELD":
            return False
        text = f"{exc.crm_message} {exc.details.get('fields')}"
        return any(name in text for name in CALL_FIELDS)

    def _drop_call_fields(self, exc: ConnectorError) -> None:
        with self._lock:
            if not self.call_fields_supported:
                return
            self.call_fields_supported = False
        log.warning(
            "salesforce %s: the org rejects the call-centre Task fields (%s); calls are logged "
            "with Subject and Description only",
            self.instance,
            exc.crm_message,
        )

    def _find_task(self, field: str, key: str, what: str) -> str | None:
        if field == self.settings.external_id_field:
            return self.client.get_by_external_id("Task", field, key, what)
        if field == "CallObject" and not self.call_fields_supported:
            return cast("str | None", self._written.get(key))
        rows = self.client.query(
            f"SELECT Id FROM Task WHERE {field} = {soql_quote(key)} "
            "ORDER BY CreatedDate ASC LIMIT 1",
            what,
        )
        return str(rows[0]["Id"]) if rows else None

    # -- customers ---------------------------------------------------------------------------
    def find_customers(self, phone: str) -> list[CustomerRef]:
        """Every match of one number on every object, in one Composite request
        (:mod:`.lookup`)."""
        return find_by_phone(self, [phone], all_matches=True)[phone]

    def find_customers_many(
        self, phones: Sequence[str], *, all_matches: bool = True
    ) -> dict[str, list[CustomerRef]]:
        """Many numbers per SOQL query and five queries per Composite request (one API call):
        200 US numbers cost one request for Contact and Lead (:mod:`.lookup`)."""
        return find_by_phone(self, phones, all_matches=all_matches)

    def create_customer(self, call: CallRecord, *, key: str) -> CustomerRef:
        """A Lead for an unknown number, once per key and per number.

        SOQL sees a Lead the moment it is created (SOSL lags by minutes), so a second call from
        the same new number finds the first one's Lead here or in :meth:`find_customers`.
        """
        remembered: CustomerRef | None = self._leads.get(key)
        if remembered is not None:
            return remembered
        number = call.customer_number
        body = lead_fields(number, self.settings)
        if number:
            rows = self.client.query(
                "SELECT Id, Name, Phone, OwnerId FROM Lead WHERE IsConverted = false AND "
                f"Phone = {soql_quote(number)} ORDER BY CreatedDate ASC LIMIT 1",
                "looking for a Lead created for this number",
            )
            if rows:
                row = rows[0]
                ref = CustomerRef(
                    object_type="Lead",
                    id=str(row["Id"]),
                    name=row.get("Name"),
                    phone=row.get("Phone"),
                    owner_id=row.get("OwnerId"),
                    url=self._url(str(row["Id"])),
                    created_by_acw=True,
                )
                self._leads.put(key, ref)
                return ref
        record_id = self.client.create("Lead", body, "creating a Lead for an unknown caller")
        ref = CustomerRef(
            object_type="Lead",
            id=record_id,
            name=str(body["LastName"]),
            phone=number,
            url=self._url(record_id),
            created_by_acw=True,
        )
        self._leads.put(key, ref)
        return ref

    def update_customer(self, customer: CustomerRef, fields: Mapping[str, Any]) -> None:
        if not fields:
            return
        self.client.update(
            customer.object_type,
            customer.id,
            dict(fields),
            f"updating {customer.object_type} {customer.id}",
        )

    def find_owner(self, agent: Agent) -> str | None:
        """The active User with the agent's e-mail (cached in-process: an hour, misses 5 min)."""
        if not agent.email:
            return None
        email = agent.email.strip().lower()
        cached = self._owners.get(email)
        if cached is not None and cached[1] > time.monotonic():
            return cast("str | None", cached[0])
        rows = self.client.query(
            f"SELECT Id FROM User WHERE Email = {soql_quote(email)} AND IsActive = true "
            "ORDER BY CreatedDate ASC LIMIT 1",
            "finding the agent's user",
        )
        owner = str(rows[0]["Id"]) if rows else None
        ttl = OWNER_TTL if owner else OWNER_MISS_TTL
        self._owners.put(email, (owner, time.monotonic() + ttl))
        return owner

    # -- the call activity -------------------------------------------------------------------------
    def upsert_call(
        self,
        call: CallRecord,
        *,
        key: str,
        customer: CustomerRef | None,
        owner_id: str | None,
        existing: CrmObjectRef | None,
        fields: Mapping[str, Any],
    ) -> CrmObjectRef:
        body = call_task(
            call,
            key=key,
            customer=customer,
            owner_id=owner_id,
            overrides=fields,
            config=self.settings,
        )
        try:
            return self._write_call(body, key, existing)
        except PermanentError as exc:
            if not (self.call_fields_supported and self._is_call_field_error(exc)):
                raise
            self._drop_call_fields(exc)
            return self._write_call(body, key, existing)

    def _write_call(
        self, body: dict[str, Any], key: str, existing: CrmObjectRef | None
    ) -> CrmObjectRef:
        what = f"logging call {key}"
        if not self.call_fields_supported:
            body = without_call_fields(body)
        if existing is not None:
            try:
                self.client.update("Task", existing.id, for_update(body), what)
                return self._task_ref(existing.id, created=False)
            except PermanentError as exc:
                if exc.status != 404:
                    raise
                log.info("salesforce %s: Task %s is gone; writing it again", self.instance, key)
        ext = self.settings.external_id_field
        if ext:
            payload = {k: v for k, v in body.items() if k != ext}
            try:
                record_id, created = self.client.upsert("Task", ext, key, payload, what)
            except PermanentError as exc:
                # The key matched an existing Task: an update, where TaskSubtype is refused.
                if _code(exc) != "INVALID_FIELD_FOR_INSERT_UPDATE":
                    raise
                record_id, created = self.client.upsert("Task", ext, key, for_update(payload), what)
            return self._task_ref(record_id, created=created)
        found = self._find_task("CallObject", key, what)
        if found is not None:
            self.client.update("Task", found, for_update(body), what)
            return self._task_ref(found, created=False)
        record_id = self.client.create("Task", body, what)
        self._written.put(key, record_id)
        return self._task_ref(record_id, created=True)

    def upsert_calls(self, items: Sequence[CallWrite]) -> list[CrmObjectRef | ConnectorError]:
        """Many call Tasks through sObject Collections, 200 per request, one result per item.

        Per-record failures (validation, lock contention) come back as that item's error; a
        failure of the whole request (quota, outage) is every item's error of that chunk.
        """
        results: list[CrmObjectRef | ConnectorError] = []
        for start in range(0, len(items), COLLECTION_MAX):
            chunk = items[start : start + COLLECTION_MAX]
            try:
                results.extend(write_chunk(self, chunk))
            except ConnectorError as exc:
                if not (self.call_fields_supported and self._is_call_field_error(exc)):
                    results.extend(exc for _ in chunk)
                    continue
                self._drop_call_fields(exc)
                try:
                    results.extend(write_chunk(self, chunk))
                except ConnectorError as again:
                    results.extend(again for _ in chunk)
        return results

    # -- follow-ups ----------------------------------------------------------------------------
    def create_tasks(self, items: Sequence[TaskWrite]) -> list[CrmObjectRef | ConnectorError]:
        """Many follow-up Tasks, 200 per collection, each created once (one key query per
        chunk first). A failure of a whole chunk is every item's error of that chunk."""
        results: list[CrmObjectRef | ConnectorError] = []
        for start in range(0, len(items), COLLECTION_MAX):
            chunk = items[start : start + COLLECTION_MAX]
            try:
                results.extend(create_tasks_chunk(self, chunk))
            except ConnectorError as exc:
                results.extend(exc for _ in chunk)
        return results

    def create_task(
        self,
        task: FollowUp,
        *,
        customer: CustomerRef | None,
        activity: CrmObjectRef | None,
        owner_id: str | None,
        existing: CrmObjectRef | None,
    ) -> CrmObjectRef:
        if existing is not None:
            return CrmObjectRef(object_type="Task", id=existing.id, url=existing.url, created=False)
        body = followup_task(task, customer=customer, owner_id=owner_id, config=self.settings)
        try:
            return self._create_followup(body, task.key)
        except PermanentError as exc:
            if not (self.call_fields_supported and self._is_call_field_error(exc)):
                raise
            self._drop_call_fields(exc)
            return self._create_followup(body, task.key)

    def _create_followup(self, body: dict[str, Any], key: str) -> CrmObjectRef:
        what = f"creating follow-up {key}"
        field = self.settings.key_field
        if not self.call_fields_supported:
            body = without_call_fields(body)
        found = self._find_task(field, key, what)
        if found is not None:
            return self._task_ref(found, created=False)
        try:
            record_id = self.client.create("Task", body, what)
        except PermanentError as exc:
            # A Unique key field refused a concurrent twin: that twin is our task.
            if (
                _code(exc) != "DUPLICATE_VALUE"
                or (found := self._find_task(field, key, what)) is None
            ):
                raise
            return self._task_ref(found, created=False)
        self._written.put(key, record_id)
        return self._task_ref(record_id, created=True)

    # -- admin ---------------------------------------------------------------------------------
    def check(self) -> list[Check]:
        return org_checks(self.client, self.settings)

    def preview_call(
        self,
        call: CallRecord,
        *,
        customer: CustomerRef | None,
        owner_id: str | None,
        fields: Mapping[str, Any],
    ) -> WritePreview:
        body = call_task(
            call,
            key=call.key,
            customer=customer,
            owner_id=owner_id,
            overrides=fields,
            config=self.settings,
        )
        return WritePreview(
            object_type="Task",
            operation="upsert",
            fields=body,
            associations=[f"{customer.object_type}:{customer.id}"] if customer else [],
        )

    def preview_task(
        self, task: FollowUp, *, customer: CustomerRef | None, owner_id: str | None
    ) -> WritePreview:
        body = followup_task(task, customer=customer, owner_id=owner_id, config=self.settings)
        return WritePreview(
            object_type="Task",
            operation="create",
            fields=body,
            associations=[f"{customer.object_type}:{customer.id}"] if customer else [],
        )

    def close(self) -> None:
        self.client.close()
