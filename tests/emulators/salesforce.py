"""A Salesforce REST emulator over HTTPS on 127.0.0.1, for the connector tests.

It behaves like Salesforce where a client can tell: ``/services/data/vXX.X/`` paths; sObject
create (201), get, update (204), upsert on an External ID (201 created / 200 ``created:
false`` / 300 several matches); describe with object permissions and field properties; the SOQL
subset of :mod:`tests.emulators.salesforce_soql`; restricted picklists and create defaults
(Task ``Status`` Not Started, ``Priority`` Normal, ``TaskSubtype`` Task); ``TaskSubtype`` not
updateable; error bodies as JSON lists with ``errorCode``; ``Sforce-Limit-Info`` on every
answer; sObject Collections (≤ 200 records, per-record ``statusCode`` errors, ``allOrNone``);
Composite (``POST composite``): every subrequest evaluated as if it had been sent alone, the whole
counted as one API call, at most 25 subrequests of which at most 5 query or sObject Collections
ones ("You can have up to 25 subrequests in a single call. Up to 5 of these subrequests can be
sObject Collections or query operations, including Query and QueryAll requests.", REST API
Developer Guide, Send Multiple Requests Using Composite,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm),
refused as a whole in the composite shape with ``LIMIT_EXCEEDED`` as Salesforce does (the 25
message as seen in production, guardian/support-service-lambdas#766; the top-level status, 400
here, and the 5-query message are the emulator's); the 16,384-byte URI limit of a plain request
(414, Knowledge article 000386264) and the 100,000-character SOQL limit; the OAuth token
endpoint (client credentials, JWT bearer) and SOAP ``login()``.

Switchable faults (:meth:`SalesforceOrg.inject`): an expired session, a 401 that persists,
revoked credentials, lock contention, the daily quota spent, the concurrent-request limit,
503s, slow answers, a validation rule or duplicate rule refusing a write; and
``call_center=False`` for an org without the call-centre Task fields;
:meth:`SalesforceOrg.refuse_queries` makes some queries fail (alone or as a subrequest).

Not emulated: SOSL, relationship queries, aggregates, date literals, composite ``allOrNone:
true`` and ``@{reference}`` substitution, composite/graph/batch, Bulk API, sharing and
field-level security (delete a field from ``org.schema`` to hide it), triggers, real validation
and duplicate rules (inject them as faults).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jwt
import pytest
import trustme

from tests.emulators.salesforce_soql import SoqlError, parse

__all__ = ["SalesforceEmulator", "SalesforceOrg", "SfError", "sf_ca", "sf_emulator"]

API_VERSIONS = ("57.0", "58.0", "59.0", "60.0", "61.0", "62.0")
PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q", "Task": "00T", "User": "005"}
QUERY_PAGE = 2000
#: Composite: subrequests per request, and of those query or sObject Collections ones.
COMPOSITE_MAX, COMPOSITE_MAX_QUERIES = 25, 5
#: Longest request line (URI) Salesforce takes: 414 beyond (Knowledge article 000386264).
MAX_URI = 16_384
#: Longest SOQL statement (App Limits Cheatsheet, "SOQL and SOSL Limits for Search Queries").
MAX_SOQL = 100_000


class SfError(Exception):
    """An error answer: HTTP status and Salesforce's error item."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]


@dataclass
class FieldSpec:
    type: str = "string"
    label: str = ""
    createable: bool = True
    updateable: bool = True
    filterable: bool = True
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: Any = None
    required: bool = False
    external_id: bool = False
    unique: bool = False
    references: tuple[str, ...] = ()

    def describe(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": self.label or name,
            "type": self.type,
            "createable": self.createable,
            "updateable": self.updateable,
            "filterable": self.filterable,
            "nillable": not self.required,
            "defaultedOnCreate": self.default is not None,
            "externalId": self.external_id,
            "unique": self.unique,
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": v == self.default}
                for v in self.picklist
            ],
            "referenceTo": list(self.references),
        }


def _system() -> dict[str, FieldSpec]:
    ro = {"createable": False, "updateable": False}
    return {
        "Id": FieldSpec("id", **ro),
        "CreatedDate": FieldSpec("datetime", **ro),
        "LastModifiedDate": FieldSpec("datetime", **ro),
        "SystemModstamp": FieldSpec("datetime", **ro),
        "IsDeleted": FieldSpec("boolean", **ro),
        "OwnerId": FieldSpec("reference", label="Owner ID", references=("User",)),
    }


def _phone(label: str) -> FieldSpec:
    return FieldSpec("phone", label=label)


CALL_FIELDS = {
    "CallType": FieldSpec(
        "picklist", "Call Type", picklist=("Inbound", "Internal", "Outbound"), restricted=True
    ),
    "CallDurationInSeconds": FieldSpec("int", "Call Duration"),
    "CallDisposition": FieldSpec("string", "Call Result"),
    "CallObject": FieldSpec("string", "Call Object Identifier"),
}


def default_schema(*, call_center: bool, external_id: str | None, unique: bool) -> dict[str, Any]:
    ro = {"createable": False, "updateable": False}
    text = {"type": "textarea", "filterable": False}
    contact = {
        **_system(),
        "FirstName": FieldSpec(),
        "LastName": FieldSpec(label="Last Name", required=True),
        "Name": FieldSpec(**ro),
        "Phone": _phone("Business Phone"),
        "MobilePhone": _phone("Mobile Phone"),
        "HomePhone": _phone("Home Phone"),
        "OtherPhone": _phone("Other Phone"),
        "Fax": _phone("Fax"),
        "Email": FieldSpec("email"),
        "AccountId": FieldSpec("reference", "Account ID", references=("Account",)),
        "LeadSource": FieldSpec("picklist"),
        "Description": FieldSpec(**text),  # type: ignore[arg-type]
        "Last_Call__c": FieldSpec("date"),
    }
    lead = {
        **_system(),
        "FirstName": FieldSpec(),
        "LastName": FieldSpec(label="Last Name", required=True),
        "Name": FieldSpec(**ro),
        "Company": FieldSpec(label="Company", required=True),
        "Phone": _phone("Phone"),
        "MobilePhone": _phone("Mobile Phone"),
        "Fax": _phone("Fax"),
        "Email": FieldSpec("email"),
        "Status": FieldSpec(
            "picklist",
            "Status",
            picklist=("Open - Not Contacted", "Working - Contacted", "Closed - Converted"),
            restricted=True,
            default="Open - Not Contacted",
        ),
        "LeadSource": FieldSpec("picklist"),
        "IsConverted": FieldSpec("boolean", default=False, **ro),
        "Description": FieldSpec(**text),  # type: ignore[arg-type]
    }
    account = {
        **_system(),
        "Name": FieldSpec(label="Account Name", required=True),
        "Phone": _phone("Account Phone"),
    }
    user = {
        **_system(),
        "Name": FieldSpec(**ro),
        "Username": FieldSpec(),
        "Email": FieldSpec("email"),
        "IsActive": FieldSpec("boolean", default=True),
    }
    task = {
        **_system(),
        "Subject": FieldSpec("combobox", "Subject"),
        "TaskSubtype": FieldSpec(
            "picklist",
            "Task Subtype",
            updateable=False,
            picklist=("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"),
            restricted=True,
            default="Task",
        ),
        "Type": FieldSpec("picklist", picklist=("Call", "Email", "Meeting", "Other")),
        "Status": FieldSpec(
            "picklist",
            "Status",
            picklist=("Not Started", "In Progress", "Completed", "Waiting on someone else"),
            restricted=True,
            default="Not Started",
        ),
        "Priority": FieldSpec(
            "picklist",
            "Priority",
            picklist=("High", "Normal", "Low"),
            restricted=True,
            default="Normal",
        ),
        "ActivityDate": FieldSpec("date", "Due Date Only"),
        "Description": FieldSpec(**text),  # type: ignore[arg-type]
        "WhoId": FieldSpec("reference", "Name ID", references=("Contact", "Lead")),
        "WhatId": FieldSpec("reference", "Related To ID", references=("Account",)),
        "IsReminderSet": FieldSpec("boolean", default=False),
        "ReminderDateTime": FieldSpec("datetime"),
        "IsClosed": FieldSpec("boolean", **ro),
        "CompletedDateTime": FieldSpec("datetime", **ro),
    }
    if call_center:
        task.update(CALL_FIELDS)
    if external_id:
        task[external_id] = FieldSpec("string", external_id, external_id=True, unique=unique)
    return {"Contact": contact, "Lead": lead, "Account": account, "User": user, "Task": task}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


class SalesforceOrg:
    """The org's state and rules; thread-safe. Tests seed and inspect it directly."""

    def __init__(
        self,
        *,
        call_center: bool = True,
        external_id_field: str | None = None,
        external_id_unique: bool = True,
        api_limit: int = 15_000,
    ) -> None:
        self.schema = default_schema(
            call_center=call_center, external_id=external_id_field, unique=external_id_unique
        )
        self.permissions = {
            name: {"createable": True, "updateable": True, "queryable": True, "deletable": True}
            for name in self.schema
        }
        self.records: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in self.schema}
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self._clock = itertools.count(1)
        self.api_limit, self.api_used = api_limit, 0
        self.url = ""  # set by the server: https://127.0.0.1:port
        # credentials
        self.username, self.password, self.security_token = "api@acme.example", "pw", "tok"
        self.client_id, self.client_secret = "3MVG9-acme-key", "acme-consumer-secret"
        self.jwt_public_key: bytes | None = None
        self.credentials_valid = True
        self.sessions: set[str] = set()
        self.issued: list[str] = []
        self.static_tokens: set[str] = set()
        # faults and bookkeeping
        self.faults: dict[str, int] = {}
        self.page_size = QUERY_PAGE
        self.cursors: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self.delay = 0.0
        self.refused_queries: dict[str, tuple[str, str]] = {}
        self.log: list[tuple[str, str]] = []
        self.soql_log: list[str] = []  # every SOQL statement asked, alone or in a composite
        self.logins = 0
        self.api_user = self.insert("User", {"Username": self.username, "Email": self.username})

    # -- seeding and inspection --------------------------------------------------------------
    def new_id(self, sobject: str) -> str:
        return f"{PREFIXES[sobject]}8d{next(self._ids):010d}AAA"

    def insert(self, sobject: str, values: dict[str, Any], *, modified: str | None = None) -> str:
        """Insert without API validation (test seeding); returns the new Id."""
        with self.lock:
            record = self._defaults(sobject, dict(values))
            if modified:
                record["LastModifiedDate"] = modified
            self.records[sobject][record["Id"]] = record
            return str(record["Id"])

    def find(self, sobject: str, **where: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(r)
                for r in self.records[sobject].values()
                if all(r.get(k) == v for k, v in where.items())
            ]

    def issue_token(self) -> str:
        token = "00D8d000000acme!" + base64.urlsafe_b64encode(next_bytes()).decode()
        with self.lock:
            self.sessions.add(token)
            self.issued.append(token)
        return token

    def inject(self, fault: str, times: int = 1, *, delay: float = 0.0) -> None:
        """Arm a fault: ``expired_session`` (current sessions die), ``persistent_401``,
        ``invalid_credentials``, ``lock``, ``quota``, ``concurrency``, ``unavailable``,
        ``slow`` (``delay`` seconds), ``validation`` (a validation rule refuses the next
        write), ``duplicates`` (a duplicate rule blocks it)."""
        with self.lock:
            if fault == "expired_session":
                self.sessions.clear()
            elif fault == "invalid_credentials":
                self.credentials_valid = False
                self.sessions.clear()
                self.static_tokens.clear()
            elif fault == "quota":
                self.api_used = self.api_limit
            else:
                self.faults[fault] = times
                self.delay = delay or self.delay

    def refuse_queries(
        self, containing: str, code: str = "MALFORMED_QUERY", message: str = "unexpected token"
    ) -> None:
        """Every query whose SOQL contains ``containing`` fails with ``code`` (400), alone or as
        a Composite subrequest: one bad query among good ones."""
        with self.lock:
            self.refused_queries[containing] = (code, message)

    def take(self, fault: str) -> bool:
        with self.lock:
            if self.faults.get(fault, 0) > 0:
                self.faults[fault] -= 1
                return True
            return False

    # -- record rules ------------------------------------------------------------------------
    def _defaults(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        stamp = record.get("LastModifiedDate") or _now()
        record.setdefault("Id", self.new_id(sobject))
        for name, spec in self.schema[sobject].items():
            if spec.default is not None:
                record.setdefault(name, spec.default)
        record.setdefault("OwnerId", getattr(self, "api_user", None))
        record.setdefault("CreatedDate", stamp)
        record["LastModifiedDate"] = record["SystemModstamp"] = stamp
        record["_seq"] = next(self._clock)
        record.setdefault("IsDeleted", False)
        self._derive(sobject, record)
        return record

    def _derive(self, sobject: str, record: dict[str, Any]) -> None:
        if sobject in ("Contact", "Lead", "User") and "Name" in self.schema[sobject]:
            name = " ".join(x for x in (record.get("FirstName"), record.get("LastName")) if x)
            record["Name"] = name or record.get("Name")
        if sobject == "Task":
            record["IsClosed"] = record.get("Status") == "Completed"

    def _validate(self, sobject: str, values: dict[str, Any], *, creating: bool) -> None:
        schema = self.schema[sobject]
        for name in values:
            if name not in schema:
                raise SfError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}"
                )
        locked = [
            n for n in values if not (schema[n].createable if creating else schema[n].updateable)
        ]
        if locked:
            raise SfError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(locked)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                locked,
            )
        for name, value in values.items():
            spec = schema[name]
            if spec.restricted and value not in spec.picklist:
                raise SfError(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{spec.label or name}: bad value for restricted picklist field: {value}",
                    [name],
                )
            if value is None:
                continue
            bad = (
                (spec.type == "int" and not isinstance(value, int))
                or (spec.type == "boolean" and not isinstance(value, bool))
                or (spec.type == "date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)))
            )
            if bad:
                raise SfError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize {value!r} for {name}", [name]
                )
            if spec.type == "reference" and spec.references:
                owner = next((t for t in spec.references if value in self.records.get(t, {})), None)
                if owner is None:
                    raise SfError(
                        400,
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"{spec.label or name}: id value of incorrect type: {value}",
                        [name],
                    )
        if creating:
            missing = [n for n, s in schema.items() if s.required and values.get(n) in (None, "")]
            if missing:
                raise SfError(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )

    def _check_links(self, sobject: str, record: dict[str, Any]) -> None:
        if (
            sobject == "Task"
            and record.get("WhatId")
            and record.get("WhoId", "").startswith(PREFIXES["Lead"])
        ):
            raise SfError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "Related To ID: You can't associate a Lead with a related record.",
                ["WhatId"],
            )

    def _check_unique(self, sobject: str, record: dict[str, Any]) -> None:
        for name, spec in self.schema[sobject].items():
            if spec.unique and record.get(name) is not None:
                for other in self.records[sobject].values():
                    if (
                        other["Id"] != record["Id"]
                        and str(other.get(name, "")).lower() == str(record[name]).lower()
                    ):
                        raise SfError(
                            400,
                            "DUPLICATE_VALUE",
                            f"duplicate value found: {name} duplicates value on record with id: "
                            f"{other['Id']}",
                            [name],
                        )

    def _org_rules(self) -> None:
        """What an org's own automation may refuse (injected: validation and duplicate rules)."""
        if self.take("validation"):
            raise SfError(
                400,
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Calls must name a disposition (validation rule Require_Disposition)",
            )
        if self.take("duplicates"):
            raise SfError(
                400,
                "DUPLICATES_DETECTED",
                "You're creating a duplicate record. We recommend you use an existing record "
                "instead.",
            )

    def create(self, sobject: str, values: dict[str, Any]) -> str:
        with self.lock:
            self._validate(sobject, values, creating=True)
            self._org_rules()
            if self.take("lock"):
                raise SfError(
                    400,
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record or 1 records",
                )
            record = self._defaults(sobject, {k: v for k, v in values.items()})
            self._check_links(sobject, record)
            self._check_unique(sobject, record)
            self.records[sobject][record["Id"]] = record
            return str(record["Id"])

    def update(self, sobject: str, record_id: str, values: dict[str, Any]) -> None:
        with self.lock:
            current = self.records[sobject].get(record_id)
            if current is None:
                raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
            self._validate(sobject, values, creating=False)
            self._org_rules()
            if self.take("lock"):
                raise SfError(
                    400,
                    "UNABLE_TO_LOCK_ROW",
                    f"unable to obtain exclusive access to this record or 1 records: {record_id}",
                )
            merged = {**current, **values}
            self._check_links(sobject, merged)
            self._check_unique(sobject, merged)
            merged["LastModifiedDate"] = merged["SystemModstamp"] = _now()
            merged["_seq"] = next(self._clock)
            self._derive(sobject, merged)
            self.records[sobject][record_id] = merged

    def by_external_id(self, sobject: str, name: str, value: str) -> list[str]:
        spec = self.schema[sobject].get(name)
        if name != "Id" and (spec is None or not spec.external_id):
            raise SfError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {name}",
            )
        return [
            rid
            for rid, r in self.records[sobject].items()
            if str(r.get(name, "")).lower() == value.lower()
        ]

    def upsert(
        self, sobject: str, name: str, value: str, values: dict[str, Any]
    ) -> tuple[str, bool]:
        with self.lock:
            matches = self.by_external_id(sobject, name, value)
            if len(matches) > 1:
                raise SfError(300, "MULTIPLE_CHOICES", json.dumps(matches))
            body = {k: v for k, v in values.items() if k != name}
            if matches:
                self.update(sobject, matches[0], body)
                return matches[0], False
            return self.create(sobject, {**body, name: value}), True

    def public(
        self, sobject: str, record: dict[str, Any], fields: list[str] | None = None
    ) -> dict[str, Any]:
        names = fields or list(self.schema[sobject])
        url = f"/services/data/v59.0/sobjects/{sobject}/{record['Id']}"
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": url}}
        for name in names:
            out[name] = record.get(name)
        return out

    def query(self, soql: str) -> dict[str, Any]:
        self.soql_log.append(soql)
        if len(soql) > MAX_SOQL:  # the limit is documented; code and message are the emulator's
            raise SfError(400, "MALFORMED_QUERY", f"SOQL statements cannot exceed {MAX_SOQL}")
        for needle, (code, message) in list(self.refused_queries.items()):
            if needle in soql:
                raise SfError(400, code, message)
        try:
            q = parse(soql)
        except SoqlError as exc:
            raise SfError(400, exc.code, exc.message) from None
        if q.sobject not in self.schema:
            raise SfError(400, "INVALID_TYPE", f"sObject type '{q.sobject}' is not supported.")
        schema = self.schema[q.sobject]
        for name in [*q.fields, *q.referenced(), *(o[0] for o in q.order)]:
            if name not in schema:
                raise SfError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{q.sobject}'. If you are attempting to "
                    "use a custom field, be sure to append the '__c' after the custom field name.",
                )
        for name in q.referenced():
            if not schema[name].filterable:
                raise SfError(
                    400, "INVALID_FIELD", f"field '{name}' can not be filtered in a query call"
                )
        with self.lock:
            rows = sorted(self.records[q.sobject].values(), key=lambda r: r["_seq"])
            found = q.run(rows)
        records = [self.public(q.sobject, r, q.fields) for r in found]
        return self._page(records, len(found))

    def _page(self, records: list[dict[str, Any]], total: int) -> dict[str, Any]:
        """One page of a result; the rest waits behind ``nextRecordsUrl``."""
        page, rest = records[: self.page_size], records[self.page_size :]
        answer: dict[str, Any] = {"totalSize": total, "done": not rest, "records": page}
        if rest:
            cursor = f"01g8d{next(self._ids):013d}-{self.page_size}"
            with self.lock:
                self.cursors[cursor] = (rest, total)
            answer["nextRecordsUrl"] = f"/services/data/v59.0/query/{cursor}"
        return answer

    def query_more(self, cursor: str) -> dict[str, Any]:
        with self.lock:
            found = self.cursors.pop(cursor, None)
        if found is None:
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(*found)

    def describe(self, sobject: str) -> dict[str, Any]:
        return {
            "name": sobject,
            "label": sobject,
            "keyPrefix": PREFIXES[sobject],
            **self.permissions[sobject],
            "fields": [spec.describe(n) for n, spec in self.schema[sobject].items()],
        }


_counter = itertools.count(1)


def next_bytes() -> bytes:
    return f"session-{next(_counter)}-{time.monotonic_ns()}".encode()


# -- HTTP ----------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # One write per answer: headers and body in separate segments meet delayed ACKs (40 ms).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # silence
        pass

    @property
    def org(self) -> SalesforceOrg:
        return self.server.org

    def _send(
        self, status: int, body: Any = None, *, content_type: str = "application/json"
    ) -> None:
        data = (
            b""
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", f"{content_type};charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Sforce-Limit-Info", f"api-usage={self.org.api_used}/{self.org.api_limit}")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        if getattr(self, "_read", None) is None:
            length = int(self.headers.get("Content-Length") or 0)
            self._read = self.rfile.read(length) if length else b""
        return self._read

    def _json(self) -> Any:
        raw = self._body()
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise SfError(400, "JSON_PARSER_ERROR", "Unexpected character in the body") from None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._read: bytes | None = None
        url = urllib.parse.urlsplit(self.path)
        self.org.log.append((method, url.path + (f"?{url.query}" if url.query else "")))
        try:
            if len(self.path) > MAX_URI:
                raise SfError(414, "URI_TOO_LONG", f"the URI exceeds {MAX_URI} bytes")
            if url.path == "/services/oauth2/token" and method == "POST":
                self._oauth()
            elif url.path.startswith("/services/Soap/u/") and method == "POST":
                self._soap()
            elif url.path.rstrip("/") == "/services/data":
                self._send(
                    200,
                    [
                        {"label": f"v{v}", "url": f"/services/data/v{v}", "version": v}
                        for v in API_VERSIONS
                    ],
                )
            elif m := re.fullmatch(r"/services/data/v(\d+\.\d)/?(.*)", url.path):
                self._data(method, m.group(1), m.group(2).rstrip("/"), url.query)
            else:
                raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        except SfError as exc:
            self._body()
            self._send(exc.status, exc.body() if exc.status != 300 else json.loads(exc.message))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    # -- auth ------------------------------------------------------------------------------
    def _token_answer(self) -> None:
        self.org.logins += 1
        self._send(
            200,
            {
                "access_token": self.org.issue_token(),
                "instance_url": self.org.url,
                "id": f"{self.org.url}/id/00D8d000000acme/{self.org.api_user}",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": "emulated",
            },
        )

    def _oauth(self) -> None:
        form = dict(urllib.parse.parse_qsl(self._body().decode()))
        org = self.org
        grant = form.get("grant_type")

        def refuse(error: str, description: str) -> None:
            org.logins += 1
            self._send(400, {"error": error, "error_description": description})

        if grant == "client_credentials":
            cid, secret = form.get("client_id"), form.get("client_secret")
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            if not org.credentials_valid or (cid, secret) != (org.client_id, org.client_secret):
                return refuse("invalid_client", "invalid client credentials")
            return self._token_answer()
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                claims = jwt.decode(
                    form.get("assertion", ""),
                    org.jwt_public_key or b"",
                    algorithms=["RS256"],
                    audience=org.url,
                    issuer=org.client_id,
                )
            except (jwt.PyJWTError, ValueError) as exc:
                return refuse("invalid_grant", f"invalid assertion: {type(exc).__name__}")
            if not org.credentials_valid or claims.get("sub") != org.username:
                return refuse("invalid_grant", "user hasn't approved this consumer")
            return self._token_answer()
        return refuse("unsupported_grant_type", "grant type not supported")

    def _soap(self) -> None:
        ns = {"n1": "urn:partner.soap.sforce.com"}
        try:
            tree = ElementTree.fromstring(self._body())
            username = tree.findtext(".//n1:username", namespaces=ns) or ""
            password = tree.findtext(".//n1:password", namespaces=ns) or ""
        except ElementTree.ParseError:
            username = password = ""
        org = self.org
        org.logins += 1
        if not org.credentials_valid or (username, password) != (
            org.username,
            org.password + org.security_token,
        ):
            self._send(500, _SOAP_FAULT.encode(), content_type="text/xml")
            return
        body = _SOAP_OK.format(url=org.url, session=org.issue_token(), user=org.api_user).encode()
        self._send(200, body, content_type="text/xml")

    def _authorised(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        org = self.org
        if org.take("persistent_401") or (
            token not in org.sessions and token not in org.static_tokens
        ):
            raise SfError(401, "INVALID_SESSION_ID", "Session expired or invalid")

    # -- data ------------------------------------------------------------------------------
    def _data(self, method: str, version: str, path: str, query: str) -> None:
        org = self.org
        if version not in API_VERSIONS:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        self._authorised()
        if org.take("slow"):
            time.sleep(org.delay)
        if org.take("unavailable"):
            raise SfError(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
        if org.take("concurrency"):
            raise SfError(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            )
        with org.lock:
            if org.api_used >= org.api_limit:
                raise SfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            org.api_used += 1
        self._send(*self._resource(method, version, path, query, self._json))

    def _resource(
        self, method: str, version: str, path: str, query: str, body: Callable[[], Any]
    ) -> tuple[int, Any]:
        """Route one request under ``/services/data/vXX.X/``: (status, body), or SfError.

        The top-level request and each Composite subrequest go through here alike.
        """
        org = self.org
        parts = [urllib.parse.unquote(p) for p in path.split("/")] if path else []
        params = dict(urllib.parse.parse_qsl(query))
        if not parts:
            return (200, {"sobjects": f"/services/data/v{version}/sobjects"})
        head = parts[0]
        if head in ("query", "queryAll") and method == "GET":
            if len(parts) == 2:
                return (200, org.query_more(parts[1]))
            return (200, org.query(params.get("q", "")))
        if head == "limits":
            return (
                200,
                {
                    "DailyApiRequests": {
                        "Max": org.api_limit,
                        "Remaining": org.api_limit - org.api_used,
                    }
                },
            )
        if head == "composite" and parts == ["composite"] and method == "POST":
            return self._composite(version, body())
        if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
            return self._collections(method, parts[2:], body())
        if head == "sobjects":
            return self._sobjects(method, parts[1:], body)
        raise SfError(404, "NOT_FOUND", "The requested resource does not exist")

    def _composite(self, version: str, body: Any) -> tuple[int, Any]:
        """``POST composite``: every subrequest evaluated as if it had been sent alone, the whole
        counted as one API call (the caller counted it). Limits as documented (see the module
        docstring); ``allOrNone: true`` and ``@{ref}`` references are not emulated."""
        subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subrequests, list) or not subrequests:
            raise SfError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        heavy = sum(1 for sub in subrequests if _counts_as_query(sub))
        if len(subrequests) > COMPOSITE_MAX:
            return 400, _refused("The request can\u2019t contain more than 25 operations.")
        if heavy > COMPOSITE_MAX_QUERIES:
            # The limit is documented; this message is the emulator's wording.
            return 400, _refused(
                "The request can\u2019t contain more than 5 query or sObject Collections operations."
            )
        if body.get("allOrNone") or "@{" in json.dumps(subrequests):
            raise SfError(400, "EMULATOR_UNSUPPORTED", "allOrNone and references not emulated")
        answers = []
        for sub in subrequests:
            ref, method, url = sub.get("referenceId"), sub.get("method"), sub.get("url")
            if not (isinstance(ref, str) and isinstance(url, str) and method in _METHODS):
                raise SfError(400, "JSON_PARSER_ERROR", "referenceId, method and url are required")
            path, _, query = url.partition("?")
            match = re.fullmatch(r"/services/data/v(\d+\.\d)/?(.*)", path)
            try:
                if match is None or match.group(1) not in API_VERSIONS:
                    raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
                sub_path = match.group(2).rstrip("/")
                if sub_path.split("/")[0] not in ("sobjects", "query", "queryAll") and not (
                    sub_path.startswith("composite/sobjects")
                ):
                    raise SfError(400, "EMULATOR_UNSUPPORTED", f"not a composite resource: {url}")
                given = sub.get("body")
                status, out = self._resource(
                    method, match.group(1), sub_path, query, lambda b=given: b
                )
            except SfError as exc:
                status = exc.status
                out = exc.body() if exc.status != 300 else json.loads(exc.message)
            answers.append(
                {"body": out, "httpHeaders": {}, "httpStatusCode": status, "referenceId": ref}
            )
        return 200, {"compositeResponse": answers}

    def _sobjects(self, method: str, parts: list[str], body: Callable[[], Any]) -> tuple[int, Any]:
        org = self.org
        if not parts:
            return (
                200,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [{"name": n, **org.permissions[n]} for n in org.schema],
                },
            )
        sobject = parts[0]
        if sobject not in org.schema:
            raise SfError(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        rest = parts[1:]
        if not rest and method == "POST":
            record_id = org.create(sobject, body())
            return (201, {"id": record_id, "success": True, "errors": []})
        if rest == ["describe"] and method == "GET":
            return (200, org.describe(sobject))
        if len(rest) == 1:
            record_id = rest[0]
            if method == "GET":
                with org.lock:
                    record = org.records[sobject].get(record_id)
                if record is None:
                    raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
                return (200, org.public(sobject, record))
            if method == "PATCH":
                org.update(sobject, record_id, body())
                return 204, None
            if method == "DELETE":
                with org.lock:
                    if org.records[sobject].pop(record_id, None) is None:
                        raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
                return 204, None
        if len(rest) == 2:
            name, value = rest
            if method == "GET":
                with org.lock:
                    matches = org.by_external_id(sobject, name, value)
                if not matches:
                    raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
                if len(matches) > 1:
                    raise SfError(
                        300,
                        "MULTIPLE_CHOICES",
                        json.dumps(
                            [f"/services/data/v59.0/sobjects/{sobject}/{m}" for m in matches]
                        ),
                    )
                return (200, org.public(sobject, org.records[sobject][matches[0]]))
            if method == "PATCH":
                try:
                    record_id, created = org.upsert(sobject, name, value, body())
                except SfError as exc:
                    if exc.status == 300:
                        ids = json.loads(exc.message)
                        raise SfError(
                            300,
                            exc.code,
                            json.dumps(
                                [f"/services/data/v59.0/sobjects/{sobject}/{m}" for m in ids]
                            ),
                        ) from None
                    raise
                return (
                    201 if created else 200,
                    {"id": record_id, "success": True, "errors": [], "created": created},
                )
        raise SfError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")

    def _collections(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        org = self.org
        body = body or {}
        records = body.get("records") or []
        if len(records) > 200:
            raise SfError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        all_or_none = bool(body.get("allOrNone", False))
        typed = []
        for given in records:
            rec = dict(given)
            sobject = (rec.pop("attributes", None) or {}).get("type") or (parts[0] if parts else "")
            if sobject not in org.schema:
                raise SfError(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
            for name in rec:  # an unknown column fails the whole request, like JSON binding
                if name not in org.schema[sobject]:
                    raise SfError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{name}' on sobject of type {sobject}",
                    )
            typed.append((sobject, rec))

        def one(sobject: str, rec: dict[str, Any]) -> dict[str, Any]:
            if method == "POST":
                return {"id": org.create(sobject, rec), "success": True, "errors": []}
            if method == "PATCH" and len(parts) == 2:
                name = parts[1]
                value = rec.get(name)
                if value is None:
                    raise SfError(400, "MISSING_ARGUMENT", f"{name} not specified", [name])
                rid, created = org.upsert(sobject, name, str(value), rec)
                return {"id": rid, "success": True, "errors": [], "created": created}
            if method == "PATCH":
                rid = rec.pop("Id", None)
                if not rid:
                    raise SfError(400, "MISSING_ARGUMENT", "Id not specified in an update call")
                org.update(sobject, rid, rec)
                return {"id": rid, "success": True, "errors": []}
            raise SfError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")

        with org.lock:
            snapshot = {k: dict(v) for k, v in org.records.items()}
            results = []
            for sobject, rec in typed:
                try:
                    results.append(one(sobject, rec))
                except SfError as exc:
                    if exc.status == 405:
                        raise
                    results.append(
                        {
                            "success": False,
                            "errors": [
                                {
                                    "statusCode": exc.code,
                                    "message": exc.message,
                                    "fields": exc.fields,
                                }
                            ],
                        }
                    )
            if all_or_none and not all(r["success"] for r in results):
                org.records = snapshot
                results = [
                    r
                    if not r["success"]
                    else {
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                "message": "Record rolled back because not all records were valid "
                                "and the request was using AllOrNone header",
                                "fields": [],
                            }
                        ],
                    }
                    for r in results
                ]
        return 200, results


_METHODS = ("GET", "POST", "PATCH", "DELETE")


def _counts_as_query(subrequest: Any) -> bool:
    """Query, QueryAll and sObject Collections subrequests: at most five per composite."""
    url = str(subrequest.get("url", "")) if isinstance(subrequest, dict) else ""
    path = re.sub(r"^/services/data/v\d+\.\d/", "", url.partition("?")[0])
    return path.split("/")[0] in ("query", "queryAll") or path.startswith("composite/sobjects")


def _refused(message: str) -> dict[str, Any]:
    """A composite request refused as a whole: Salesforce still answers in the composite shape
    (seen in production: guardian/support-service-lambdas#766)."""
    return {
        "compositeResponse": [
            {
                "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
                "httpHeaders": {},
                "httpStatusCode": 400,
                "referenceId": None,
            }
        ]
    }


_SOAP_OK = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><loginResponse><result>
<metadataServerUrl>{url}/services/Soap/m/59.0/00D8d000000acme</metadataServerUrl>
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>
<serverUrl>{url}/services/Soap/u/59.0/00D8d000000acme</serverUrl>
<sessionId>{session}</sessionId><userId>{user}</userId>
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""

_SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:sf="urn:fault.partner.soap.sforce.com"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>
<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring>
<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>
<sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage>
</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    org: SalesforceOrg

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped connections (client timeouts) are part of the tests


@dataclass
class SalesforceEmulator:
    """A running emulator: ``url`` (also the login URL), ``ca_bundle`` and its ``org``."""

    org: SalesforceOrg
    url: str
    ca_bundle: str
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def access_token(self) -> str:
        """A token for ``auth: token``; ``expired_session`` kills it like any session."""
        return self.org.issue_token()


def start(ca: trustme.CA, ca_path: Path, org: SalesforceOrg | None = None) -> SalesforceEmulator:
    org = org or SalesforceOrg()
    server = _Server(("127.0.0.1", 0), _Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    server.org = org
    org.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="sf-emulator", daemon=True
    )
    thread.start()
    return SalesforceEmulator(org, org.url, str(ca_path), server, thread)


@pytest.fixture(scope="session")
def sf_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A throwaway CA for the emulator's certificate, and its PEM bundle on disk."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("sf-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
def sf_emulator(sf_ca: tuple[trustme.CA, Path]) -> Iterator[SalesforceEmulator]:
    """A fresh Salesforce org served over HTTPS on 127.0.0.1 for one test."""
    emulator = start(*sf_ca)
    try:
        yield emulator
    finally:
        emulator.stop()


def make_org(**kw: Any) -> Callable[[], SalesforceOrg]:
    return lambda: SalesforceOrg(**kw)
