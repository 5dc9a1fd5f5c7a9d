"""The sandbox connector: the full connector contract over the local SQLite CRM."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from acw_connector_sandbox.config import SandboxConfig
from acw_connector_sandbox.mapping import ACTIVITY_COLUMNS, activity_row, task_row
from acw_connector_sandbox.store import SandboxStore
from acw_sync.connector import Capabilities, Check, Connector, WritePreview
from acw_sync.errors import (
    CredentialsInvalid,
    PermanentError,
    RateLimited,
    RetryableError,
)
from acw_sync.model import Agent, CallRecord, CrmObjectRef, CustomerRef, FollowUp
from acw_sync.phone import same_number, stored_formats

__all__ = ["SandboxConnector"]

TOKEN_SETTING = "api_token"


class SandboxConnector(Connector):
    type_name = "sandbox"
    config_model = SandboxConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_customer=True,
        update_customer=True,
        owner_lookup=True,
        external_ids=True,
        batch_size=1,
    )

    def __init__(self, instance: str, config: SandboxConfig) -> None:
        super().__init__(instance, config)
        self.settings = config
        self.store = SandboxStore(config.path, timeout=config.timeout)
        self.reauthentications = 0

    # -- the wire: every operation passes through here, like an HTTP request would ------------
    def _request(self, operation: str) -> None:
        """Count the request, apply injected faults and check the credential."""
        try:
            self.store.record_request(operation)
            fault = self.store.take_fault()
        except sqlite3.OperationalError as exc:
            raise RetryableError(f"sandbox CRM unavailable: {exc}") from None
        self._chaos_before()
        if fault is not None:
            kind, retry_after = fault
            if kind == "rate_limit":
                raise RateLimited("sandbox CRM rate limit", retry_after=retry_after, status=429)
            if kind == "unavailable":
                raise RetryableError("sandbox CRM unavailable (503)", status=503)
            if kind == "expired_session":
                # A real CRM session expired: log in again once, as real connectors do.
                self.reauthentications += 1
            if kind == "reject":
                raise PermanentError(
                    "sandbox CRM rejected the record",
                    crm_message="FIELD_CUSTOM_VALIDATION_EXCEPTION: rejected by a validation rule",
                    status=400,
                )
        required = self.store.setting(TOKEN_SETTING)
        if required is not None:
            given = self.settings.api_token.get_secret_value() if self.settings.api_token else ""
            if given != required:
                raise CredentialsInvalid("sandbox CRM refused the API token", status=401)

    def _chaos_before(self) -> None:
        """Random failures before the request reaches the CRM (see ``SandboxStore.set_chaos``)."""
        try:
            chaos = self.store.chaos()
        except sqlite3.OperationalError as exc:
            raise RetryableError(f"sandbox CRM unavailable: {exc}") from None
        if not chaos:
            return
        if chaos.get("latency"):
            time.sleep(float(chaos["latency"]))
        if float(chaos.get("down_until") or 0) > time.time():
            raise RetryableError("sandbox CRM down for maintenance (503)", status=503)
        if random.random() >= float(chaos.get("rate") or 0):
            return
        weights = dict(chaos.get("weights") or {"unavailable": 1, "rate_limit": 1, "timeout": 1})
        kind = random.choices(list(weights), weights=list(weights.values()))[0]
        if kind == "rate_limit":
            retry_after = float(chaos.get("retry_after", 1.0))
            raise RateLimited("sandbox CRM rate limit (429)", retry_after=retry_after, status=429)
        if kind == "timeout":
            time.sleep(float(chaos.get("timeout", 0.2)))
            raise RetryableError("sandbox CRM request timed out")
        raise RetryableError("sandbox CRM unavailable (503)", status=503)

    def _chaos_after_write(self) -> None:
        """Failures after a write committed: the instant between the CRM write and the ledger."""
        chaos = self.store.chaos()
        if random.random() < float(chaos.get("crash_after_write") or 0):
            os.kill(os.getpid(), signal.SIGKILL)  # a worker dying right after the CRM wrote
        if random.random() < float(chaos.get("lost_response") or 0):
            raise RetryableError("sandbox CRM response lost after the write (timeout)")

    def _url(self, kind: str, object_id: int | str) -> str:
        return f"{self.settings.base_url}/{kind}/{object_id}"

    def _customer(self, row: Mapping[str, Any]) -> CustomerRef:
        return CustomerRef(
            object_type=str(row["object_type"]),
            id=str(row["id"]),
            name=row["name"],
            phone=row["phone"],
            owner_id=row["owner_id"],
            url=self._url("customers", row["id"]),
            created_by_acw=bool(row["created_by_acw"]),
        )

    # -- contract ------------------------------------------------------------------------------
    def find_customers(self, phone: str) -> list[CustomerRef]:
        self._request("find_customers")
        forms = stored_formats(phone)
        marks = ",".join("?" * len(forms))
        rows = self.store.query(
            f"SELECT * FROM customers WHERE phone_e164 = ? OR phone IN ({marks}) "  # noqa: S608
            "ORDER BY updated_at DESC, id DESC",
            (phone, *forms),
        )
        return [
            self._customer(r)
            for r in rows
            if r["phone_e164"] == phone or same_number(r["phone"], phone)
        ]

    def create_customer(self, call: CallRecord, *, key: str) -> CustomerRef:
        self._request("create_customer")
        number = call.customer_number or ""
        customer_id = self.store.add_customer(
            name=f"Caller {number}" if number else "Unknown caller",
            phone=number,
            phone_e164=call.customer_number,
            object_type="Lead",
            created_key=key,
            created_by_acw=True,
        )
        rows = self.store.query("SELECT * FROM customers WHERE id = ?", (customer_id,))
        self._chaos_after_write()
        return self._customer(rows[0])

    def update_customer(self, customer: CustomerRef, fields: Mapping[str, Any]) -> None:
        self._request("update_customer")
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT fields FROM customers WHERE id = ?", (int(customer.id),)
            ).fetchone()
            if row is None:
                raise PermanentError(f"customer {customer.id} does not exist", status=404)
            merged = {**json.loads(row[0]), **fields}
            db.execute(
                "UPDATE customers SET fields = ?, updated_at = datetime('now') WHERE id = ?",
                (json.dumps(merged, default=str), int(customer.id)),
            )

    def find_owner(self, agent: Agent) -> str | None:
        if not agent.email:
            return None
        self._request("find_owner")
        rows = self.store.query("SELECT id FROM owners WHERE email = ?", (agent.email.lower(),))
        return str(rows[0]["id"]) if rows else None

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
        self._request("upsert_call")
        row = activity_row(call, fields)
        values = [row[c] for c in ACTIVITY_COLUMNS]
        extra = json.dumps(row["fields"], default=str)
        customer_id = int(customer.id) if customer else None
        with self.store.transaction() as db:
            # Reconcile on our key whatever the ledger said: the key column is unique.
            found = db.execute("SELECT id FROM activities WHERE key = ?", (key,)).fetchone()
            if found is not None:
                sets = ", ".join(f"{c} = ?" for c in ACTIVITY_COLUMNS)
                db.execute(
                    f"UPDATE activities SET {sets}, fields = ?, "  # noqa: S608
                    "customer_id = COALESCE(?, customer_id), owner_id = COALESCE(?, owner_id), "
                    "updated_at = datetime('now'), updates = updates + 1 WHERE id = ?",
                    (*values, extra, customer_id, owner_id, found[0]),
                )
                activity_id, created = int(found[0]), False
            else:
                cols = ", ".join(ACTIVITY_COLUMNS)
                marks = ", ".join("?" * len(ACTIVITY_COLUMNS))
                cur = db.execute(
                    f"INSERT INTO activities(key, customer_id, owner_id, {cols}, fields, "  # noqa: S608
                    f"created_at, updated_at) VALUES (?, ?, ?, {marks}, ?, "
                    "datetime('now'), datetime('now'))",
                    (key, customer_id, owner_id, *values, extra),
                )
                activity_id, created = int(cur.lastrowid or 0), True
        self._chaos_after_write()
        return CrmObjectRef(
            object_type="activity",
            id=str(activity_id),
            url=self._url("activities", activity_id),
            created=created,
        )

    def create_task(
        self,
        task: FollowUp,
        *,
        customer: CustomerRef | None,
        activity: CrmObjectRef | None,
        owner_id: str | None,
        existing: CrmObjectRef | None,
    ) -> CrmObjectRef:
        self._request("create_task")
        row = task_row(task)
        with self.store.transaction() as db:
            found = db.execute("SELECT id FROM tasks WHERE key = ?", (task.key,)).fetchone()
            if found is not None:
                return CrmObjectRef(
                    object_type="task",
                    id=str(found[0]),
                    url=self._url("tasks", found[0]),
                    created=False,
                )
            cur = db.execute(
                "INSERT INTO tasks(key, activity_id, customer_id, owner_id, subject, body, type, "
                "priority, due_at, reminder_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, datetime('now'))",
                (
                    task.key,
                    int(activity.id) if activity else None,
                    int(customer.id) if customer else None,
                    task.owner_id or owner_id,
                    row["subject"],
                    row["body"],
                    row["type"],
                    row["priority"],
                    row["due_at"],
                    row["reminder_at"],
                ),
            )
            new_id = int(cur.lastrowid or 0)
        self._chaos_after_write()
        return CrmObjectRef(object_type="task", id=str(new_id), url=self._url("tasks", new_id))

    def check(self) -> list[Check]:
        checks = [Check("database", True, str(self.store.path))]
        try:
            self._request("check")
        except CredentialsInvalid as exc:
            return [*checks, Check("credentials", False, str(exc))]
        except RetryableError as exc:
            return [*checks, Check("reachable", False, str(exc))]
        tables = {r["name"] for r in self.store.query("SELECT name FROM sqlite_master")}
        missing = {"customers", "activities", "tasks"} - tables
        checks.append(Check("credentials", True, "token accepted"))
        checks.append(
            Check(
                "schema",
                not missing,
                f"missing tables: {', '.join(sorted(missing))}" if missing else "ok",
            )
        )
        return checks

    def preview_call(
        self,
        call: CallRecord,
        *,
        customer: CustomerRef | None,
        owner_id: str | None,
        fields: Mapping[str, Any],
    ) -> WritePreview:
        row = activity_row(call, fields)
        row.update(customer_id=customer.id if customer else None, owner_id=owner_id)
        return WritePreview(
            object_type="activity",
            operation="upsert",
            fields=row,
            associations=[f"customer:{customer.id}"] if customer else [],
        )

    def preview_task(
        self, task: FollowUp, *, customer: CustomerRef | None, owner_id: str | None
    ) -> WritePreview:
        row = task_row(task)
        row.update(key=task.key, owner_id=task.owner_id or owner_id)
        return WritePreview(
            object_type="task",
            operation="create",
            fields=row,
            associations=[f"customer:{customer.id}"] if customer else [],
        )

    def close(self) -> None:
        self.store.close()
