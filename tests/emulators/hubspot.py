"""A HubSpot API emulator on 127.0.0.1, faithful where the connector can tell.

Served by the standard library's threading HTTP server in a thread and driven by the real
hubspot-api-client (``HubSpot(host=emulator.url)``). It covers what the connector uses:

* ``/crm/v3/objects/{calls,tasks,notes,contacts,companies,deals}``: create, read, update,
  archive; ``/batch/{create,read,update,upsert,archive}`` (at most 100 inputs; 201/200 or 207
  with per-record errors); ``/search`` (at most 5 filter groups, 6 filters per group and 18 in
  all; EQ, NEQ, IN, NOT_IN, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN; an index that lags
  writes by ``search_lag`` seconds; 5 requests/s; no rate-limit headers);
* required ``hs_timestamp`` on engagements, enumerations (call direction and status, task
  status, priority and type, owners, call outcomes), HTTPS recording URLs, unknown and read-only
  properties rejected, association type ids checked per object pair (a wrong id is a 400);
* ``/crm/v4`` associations (read, create with labels, create default), ``/crm/v3/owners/``,
  ``/crm/v3/properties/{type}/{name}``, ``/calling/v1/dispositions``;
* auth: private-app tokens and OAuth (``/oauth/v1/token`` refresh grant with expiring access
  tokens, ``/oauth/v1/access-tokens/{token}``, ``/oauth/v2/private-apps/get/access-token-info``);
  401 ``INVALID_AUTHENTICATION`` / ``EXPIRED_AUTHENTICATION``, 403 ``MISSING_SCOPES``;
* error bodies with ``status``, ``message``, ``correlationId`` and ``category``; the
  ``X-HubSpot-RateLimit-*`` headers and the burst (TEN_SECONDLY_ROLLING) and daily limits;
* switchable faults: 429 SECONDLY / TEN_SECONDLY_ROLLING / DAILY, 5xx, one-off 401, slow answers,
  whole-batch rejection.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import phonenumbers
import pytest

__all__ = ["HubSpotEmulator", "hs_emulator"]

DEFAULT_DISPOSITIONS = {
    "9d9162e7-6cf3-4944-bf63-4dff82258764": "Busy",
    "f240bbac-87c9-4f6e-bf70-924b57d47db7": "Connected",
    "a4c4c377-d246-4b32-a13b-75a56a4cd0ff": "Left live message",
    "b2cf5968-551e-4856-9783-52b3da59a7d0": "Left voicemail",
    "73a0d17f-1163-4015-bdd5-ec830791da20": "No answer",
    "17b47fee-58de-441e-a44c-c6300d46f273": "Wrong number",
}
TYPE_ALIASES = {
    "0-1": "contacts",
    "contact": "contacts",
    "0-2": "companies",
    "company": "companies",
    "0-3": "deals",
    "deal": "deals",
    "0-27": "tasks",
    "task": "tasks",
    "0-46": "notes",
    "note": "notes",
    "0-48": "calls",
    "call": "calls",
}
TYPE_IDS = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tasks": "0-27",
    "notes": "0-46",
    "calls": "0-48",
}
#: HubSpot-defined association type ids by (from, to).
ASSOCIATION_TYPES: dict[tuple[str, str], set[int]] = {
    ("calls", "contacts"): {194},
    ("calls", "companies"): {182},
    ("calls", "deals"): {206},
    ("tasks", "contacts"): {204},
    ("tasks", "companies"): {192},
    ("tasks", "deals"): {216},
    ("notes", "contacts"): {202},
    ("notes", "companies"): {190},
    ("notes", "deals"): {214},
    ("contacts", "companies"): {279, 1},
    ("companies", "contacts"): {280, 2},
    ("contacts", "deals"): {4},
    ("deals", "contacts"): {3},
    ("contacts", "calls"): {193},
    ("contacts", "tasks"): {203},
    ("contacts", "notes"): {201},
}
_ENGAGEMENT = {"hs_timestamp", "hubspot_owner_id", "hs_attachment_ids"}
WRITABLE: dict[str, set[str]] = {
    "calls": _ENGAGEMENT
    | {
        "hs_call_title",
        "hs_call_body",
        "hs_call_direction",
        "hs_call_duration",
        "hs_call_from_number",
        "hs_call_to_number",
        "hs_call_status",
        "hs_call_disposition",
        "hs_call_recording_url",
        "hs_call_external_id",
        "hs_call_external_account_id",
        "hs_call_source",
        "hs_call_app_id",
        "hs_call_callee_object_id",
        "hs_call_callee_object_type",
        "hs_activity_type",
    },
    "tasks": _ENGAGEMENT
    | {
        "hs_task_subject",
        "hs_task_body",
        "hs_task_status",
        "hs_task_priority",
        "hs_task_type",
        "hs_task_reminders",
    },
    "notes": _ENGAGEMENT | {"hs_note_body"},
    "contacts": {
        "firstname",
        "lastname",
        "email",
        "phone",
        "mobilephone",
        "company",
        "jobtitle",
        "hubspot_owner_id",
        "lifecyclestage",
        "hs_lead_status",
        "associatedcompanyid",
    },
    "companies": {"name", "domain", "phone", "hubspot_owner_id", "industry"},
    "deals": {"dealname", "dealstage", "pipeline", "amount", "hubspot_owner_id", "closedate"},
}
READ_ONLY = {
    "hs_object_id",
    "createdate",
    "lastmodifieddate",
    "hs_createdate",
    "hs_lastmodifieddate",
    "hs_marketable_status",
    "hs_searchable_calculated_phone_number",
    "hs_searchable_calculated_mobile_number",
}
ENUMS = {
    "hs_call_direction": {"INBOUND", "OUTBOUND"},
    "hs_call_status": {
        "BUSY",
        "CALLING_CRM_USER",
        "CANCELED",
        "COMPLETED",
        "CONNECTING",
        "FAILED",
        "IN_PROGRESS",
        "NO_ANSWER",
        "QUEUED",
        "RINGING",
    },
    "hs_task_status": {"NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"},
    "hs_task_priority": {"NONE", "LOW", "MEDIUM", "HIGH"},
    "hs_task_type": {"CALL", "EMAIL", "TODO"},
}
SCOPES = {
    "contacts": "crm.objects.contacts",
    "calls": "crm.objects.contacts",
    "tasks": "crm.objects.contacts",
    "notes": "crm.objects.contacts",
    "companies": "crm.objects.companies",
    "deals": "crm.objects.deals",
}
ALL_SCOPES = [
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.owners.read",
]
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        category: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.category = status, message, category
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "error", "message": self.message}
        body["correlationId"] = str(uuid.uuid4())
        if self.category:
            body["category"] = self.category
        body.update(self.extra)
        return body


def _oauth_error(status: int, message: str, code: str) -> ApiError:
    err = ApiError(status, message, "")
    err.extra["status"] = code  # the OAuth endpoints put their error code in "status"
    return err


def _validation(message: str, errors: list[dict[str, Any]] | None = None) -> ApiError:
    return ApiError(400, message, "VALIDATION_ERROR", errors=errors or [])


@dataclass
class Token:
    scopes: list[str]
    kind: str  # "private" or "oauth"
    expires_at: float | None = None
    app_id: int = 777
    revoked: bool = False


@dataclass
class Fault:
    kind: str
    remaining: int
    path: str | None = None
    retry_after: float | None = None
    status: int = 502
    delay: float = 0.0


@dataclass
class CrmObject:
    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    archived: bool = False
    #: (visible_at, properties) snapshots of the search index.
    index: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    def as_json(self, props: list[str] | None = None) -> dict[str, Any]:
        if props is None:
            shown = dict(self.properties)
        else:
            shown = {p: self.properties.get(p) for p in props}
            for p in (
                "hs_object_id",
                "createdate",
                "lastmodifieddate",
                "hs_createdate",
                "hs_lastmodifieddate",
            ):
                if p in self.properties:
                    shown[p] = self.properties[p]
        return {
            "id": self.id,
            "properties": shown,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": self.archived,
        }


def _now_iso() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _national_digits(value: str, region: str) -> str:
    try:
        parsed = phonenumbers.parse(value, region)
        return phonenumbers.national_significant_number(parsed)
    except phonenumbers.NumberParseException:
        return re.sub(r"\D", "", value)


def _is_time(value: str) -> bool:
    if value.isdigit():
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class HubSpotEmulator:
    """The emulated HubSpot account. Thread-safe; tests read and steer it directly."""

    def __init__(
        self,
        *,
        tier: int = 100,
        daily_limit: int = 250_000,
        search_per_second: int = 5,
        search_lag: float = 0.0,
        default_region: str = "US",
    ) -> None:
        self.tier = tier
        self.burst_window = 10.0
        """Seconds of the burst window (HubSpot: 10); tests shrink it to stay fast."""
        self.daily_limit = daily_limit
        self.search_per_second = search_per_second
        self.search_lag = search_lag
        self.default_region = default_region
        self.access_token_ttl = 1800
        self.marketing_contacts_for_apps = False
        self.batch_all_or_nothing = False
        self.token_info_available = True
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, CrmObject]] = {t: {} for t in WRITABLE}
        self.custom_properties: dict[str, set[str]] = {t: set() for t in WRITABLE}
        self.custom_properties["tasks"].add("acw_followup_key")
        self.associations: dict[tuple[str, str, str, str], set[int]] = {}
        self.owners: dict[str, dict[str, Any]] = {}
        self.dispositions = dict(DEFAULT_DISPOSITIONS)
        self.tokens: dict[str, Token] = {}
        self.oauth_clients: dict[str, str] = {}
        self.refresh_tokens: dict[str, tuple[str, list[str]]] = {}
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []
        self.refreshes = 0
        self.daily_used = 0
        self._burst_times: collections.deque[float] = collections.deque()
        self._search_times: collections.deque[float] = collections.deque()
        self._ids = itertools.count(1001)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> HubSpotEmulator:
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- setup and inspection helpers ------------------------------------------------------------
    def add_private_app_token(self, token: str, scopes: list[str] | None = None) -> None:
        with self.lock:
            self.tokens[token] = Token(list(ALL_SCOPES if scopes is None else scopes), "private")

    def add_oauth_app(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        scopes: list[str] | None = None,
    ) -> None:
        with self.lock:
            self.oauth_clients[client_id] = client_secret
            self.refresh_tokens[refresh_token] = (
                client_id,
                list(ALL_SCOPES if scopes is None else scopes),
            )

    def set_scopes(self, scopes: list[str]) -> None:
        """Grant ``scopes`` to every token and refresh token (an app whose scopes were cut)."""
        with self.lock:
            for token in self.tokens.values():
                token.scopes = list(scopes)
            for rt, (client, _old) in list(self.refresh_tokens.items()):
                self.refresh_tokens[rt] = (client, list(scopes))

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                if token.kind == "oauth":
                    token.expires_at = time.time() - 1

    def revoke_all(self) -> None:
        """Uninstall the app: every access and refresh token stops working."""
        with self.lock:
            for token in self.tokens.values():
                token.revoked = True
            self.refresh_tokens.clear()

    def inject(
        self,
        kind: str,
        times: int = 1,
        *,
        path: str | None = None,
        retry_after: float | None = None,
        status: int = 502,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests (whose path contains ``path``) with a fault:
        ``secondly``, ``ten_secondly``, ``daily`` (429s), ``server_error`` (``status``),
        ``unauthorized`` (a one-off 401), ``slow`` (``delay`` seconds, then normal),
        ``batch_reject`` (a whole batch refused with a 400)."""
        kinds = {
            "secondly",
            "ten_secondly",
            "daily",
            "server_error",
            "unauthorized",
            "slow",
            "batch_reject",
        }
        if kind not in kinds:
            raise ValueError(f"unknown fault {kind!r}")
        with self.lock:
            self.faults.append(Fault(kind, times, path, retry_after, status, delay))

    def add_owner(
        self, email: str, *, first: str = "Ana", last: str = "Agent", user_id: int | None = None
    ) -> str:
        with self.lock:
            owner_id = str(600000 + len(self.owners) + 1)
            self.owners[owner_id] = {
                "id": owner_id,
                "email": email,
                "firstName": first,
                "lastName": last,
                "userId": user_id if user_id is not None else 9000 + len(self.owners),
                "userIdIncludingInactive": user_id,
                "type": "PERSON",
                "createdAt": _now_iso(),
                "updatedAt": _now_iso(),
                "archived": False,
                "teams": [],
            }
            return owner_id

    def add_object(
        self, object_type: str, properties: dict[str, str], *, indexed: bool = True
    ) -> str:
        """Create an object directly (as a HubSpot user would), searchable at once by default."""
        with self.lock:
            obj = self._create(object_type, dict(properties), validate=False)
            if indexed:
                obj.index = [(0.0, dict(obj.properties))]
            return obj.id

    def find(self, object_type: str, prop: str, value: str) -> list[dict[str, Any]]:
        """Live objects whose ``prop`` is ``value`` (no search lag), as JSON."""
        with self.lock:
            return [
                o.as_json()
                for o in self.objects[object_type].values()
                if not o.archived and o.properties.get(prop) == value
            ]

    def associations_of(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        with self.lock:
            return {
                k[3]: set(v)
                for k, v in self.associations.items()
                if k[0] == from_type and k[1] == from_id and k[2] == to_type
            }

    def count(self, method: str, path_part: str) -> int:
        with self.lock:
            return sum(1 for m, p, _s in self.log if m == method and path_part in p)

    # -- internals ---------------------------------------------------------------------------
    def _next_id(self) -> str:
        return str(next(self._ids))

    def _known_properties(self, object_type: str) -> set[str]:
        return WRITABLE[object_type] | self.custom_properties[object_type]

    def _check_properties(
        self, object_type: str, props: dict[str, Any], *, create: bool
    ) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []

        def bad(name: str, code: str, message: str) -> None:
            errors.append({"isValid": False, "message": message, "error": code, "name": name})

        known = self._known_properties(object_type)
        for name, value in props.items():
            if name in READ_ONLY:
                bad(name, "READ_ONLY_VALUE", f'Property "{name}" is read-only')
                continue
            if name not in known:
                bad(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                continue
            if not isinstance(value, str | int | float | bool) and value is not None:
                bad(name, "INVALID_TYPE", f"{value!r} is not a valid property value")
                continue
            text = "" if value is None else str(value)
            if text == "":
                continue
            if name in ENUMS and text not in ENUMS[name]:
                bad(
                    name,
                    "INVALID_OPTION",
                    f"{text} was not one of the allowed options: {sorted(ENUMS[name])}",
                )
            elif name == "hs_call_disposition" and text not in self.dispositions:
                bad(name, "INVALID_OPTION", f"{text} is not a valid call outcome")
            elif name == "hubspot_owner_id" and text not in self.owners:
                bad(name, "INVALID_OWNER_ID", f"{text} is not a valid owner id")
            elif name in ("hs_call_duration", "hs_task_reminders") and not text.isdigit():
                bad(name, "INVALID_INTEGER", f"{text} is not a valid integer")
            elif name == "hs_timestamp" and not _is_time(text):
                bad(name, "INVALID_DATE", f"{text} is not a valid date")
            elif name == "hs_call_recording_url" and not text.lower().startswith("https://"):
                bad(name, "INVALID_URL", "Recording URLs must use HTTPS")
        if create and object_type in ("calls", "tasks", "notes") and not props.get("hs_timestamp"):
            bad("hs_timestamp", "REQUIRED", 'Property "hs_timestamp" is required')
        return errors

    def _validation_error(self, errors: list[dict[str, Any]]) -> ApiError:
        return _validation(
            f"Property values were not valid: {json.dumps(errors)}",
            [
                {
                    "message": e["message"],
                    "code": e["error"],
                    "context": {"propertyName": [e["name"]]},
                }
                for e in errors
            ],
        )

    def _derived(self, object_type: str, obj: CrmObject) -> None:
        props = obj.properties
        props["hs_object_id"] = obj.id
        stamp = obj.updated_at
        if object_type in ("contacts", "companies", "deals"):
            props.setdefault("createdate", obj.created_at)
            props["lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"] = (
                stamp
            )
        else:
            props.setdefault("hs_createdate", obj.created_at)
            props["hs_lastmodifieddate"] = stamp
        if object_type == "contacts":
            for source, target in (
                ("phone", "hs_searchable_calculated_phone_number"),
                ("mobilephone", "hs_searchable_calculated_mobile_number"),
            ):
                if props.get(source):
                    props[target] = _national_digits(props[source], self.default_region)
                else:
                    props.pop(target, None)

    def _index(self, obj: CrmObject) -> None:
        obj.index.append((time.time() + self.search_lag, dict(obj.properties)))

    def _check_associations(
        self, object_type: str, associations: list[dict[str, Any]]
    ) -> list[tuple[str, str, int]]:
        pairs: list[tuple[str, str, int]] = []
        for assoc in associations or []:
            to_id = str((assoc.get("to") or {}).get("id"))
            for spec in assoc.get("types") or []:
                category = spec.get("associationCategory")
                type_id = spec.get("associationTypeId")
                if category not in ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"):
                    raise _validation(f"Invalid association category {category!r}")
                target = next(
                    (
                        to
                        for (frm, to), ids in ASSOCIATION_TYPES.items()
                        if frm == object_type and type_id in ids
                    ),
                    None,
                )
                if target is None:
                    raise _validation(
                        f"{type_id} is not a valid association type id from {object_type}",
                        [
                            {
                                "message": "invalid association type",
                                "code": "INVALID_ASSOCIATION_TYPE",
                            }
                        ],
                    )
                if to_id not in self.objects[target] or self.objects[target][to_id].archived:
                    raise _validation(f"No {target} with id {to_id} to associate with")
                pairs.append((target, to_id, int(type_id)))
        return pairs

    def _associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int
    ) -> None:
        self.associations.setdefault((from_type, from_id, to_type, to_id), set()).add(type_id)
        reverse = next(iter(ASSOCIATION_TYPES.get((to_type, from_type), {0})))
        self.associations.setdefault((to_type, to_id, from_type, from_id), set()).add(reverse)

    def _create(
        self,
        object_type: str,
        props: dict[str, Any],
        *,
        validate: bool = True,
        associations: Any = None,
    ) -> CrmObject:
        if validate:
            errors = self._check_properties(object_type, props, create=True)
            if errors:
                raise self._validation_error(errors)
        pairs = self._check_associations(object_type, associations or []) if validate else []
        now = _now_iso()
        obj = CrmObject(
            self._next_id(), {k: "" if v is None else str(v) for k, v in props.items()}, now, now
        )
        if object_type == "contacts":
            obj.properties["hs_marketable_status"] = (
                "true" if self.marketing_contacts_for_apps else "false"
            )
        self._derived(object_type, obj)
        self.objects[object_type][obj.id] = obj
        self._index(obj)
        for target, to_id, type_id in pairs:
            self._associate(object_type, obj.id, target, to_id, type_id)
        return obj

    def _update(self, object_type: str, object_id: str, props: dict[str, Any]) -> CrmObject:
        obj = self.objects[object_type].get(object_id)
        if obj is None or obj.archived:
            raise ApiError(
                404,
                f"Object not found. objectId are usually numeric. id={object_id}",
                "OBJECT_NOT_FOUND",
            )
        errors = self._check_properties(object_type, props, create=False)
        if errors:
            raise self._validation_error(errors)
        obj.properties.update({k: "" if v is None else str(v) for k, v in props.items()})
        obj.updated_at = _now_iso()
        self._derived(object_type, obj)
        self._index(obj)
        return obj

    # -- search --------------------------------------------------------------------------------
    def _search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        groups = body.get("filterGroups") or []
        if len(groups) > MAX_GROUPS:
            raise _validation(
                f"There were {len(groups)} filter groups; the maximum is {MAX_GROUPS}"
            )
        total = 0
        for group in groups:
            filters = group.get("filters") or []
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise _validation(
                    f"A filter group has {len(filters)} filters; the maximum is {MAX_FILTERS_PER_GROUP}"
                )
            total += len(filters)
        if total > MAX_FILTERS:
            raise _validation(f"There were {total} filters in all; the maximum is {MAX_FILTERS}")
        limit = int(body.get("limit") or 10)
        if limit > 200:
            raise _validation("limit must be at most 200")
        after = int(body.get("after") or 0)
        now = time.time()
        matches: list[tuple[CrmObject, dict[str, str]]] = []
        for obj in self.objects[object_type].values():
            visible = [props for at, props in obj.index if at <= now]
            if not visible or obj.archived:
                continue
            snapshot = visible[-1]
            if not groups or any(
                all(self._match(f, snapshot) for f in g.get("filters") or []) for g in groups
            ):
                matches.append((obj, snapshot))
        page = matches[after : after + limit]
        props = body.get("properties") or None
        results = []
        for obj, snapshot in page:
            shown = {p: snapshot.get(p) for p in props} if props else dict(snapshot)
            shown["hs_object_id"] = obj.id
            results.append(
                {
                    "id": obj.id,
                    "properties": shown,
                    "createdAt": obj.created_at,
                    "updatedAt": obj.updated_at,
                    "archived": False,
                }
            )
        answer: dict[str, Any] = {"total": len(matches), "results": results}
        if after + limit < len(matches):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return answer

    @staticmethod
    def _match(flt: dict[str, Any], props: dict[str, str]) -> bool:
        name, op = flt.get("propertyName"), flt.get("operator", "EQ")
        value = props.get(str(name))
        have = value is not None and value != ""
        low = (value or "").lower()
        if op == "EQ":
            return have and low == str(flt.get("value", "")).lower()
        if op == "NEQ":
            return low != str(flt.get("value", "")).lower()
        if op in ("IN", "NOT_IN"):
            values = [str(v).lower() for v in flt.get("values") or []]
            return (have and low in values) if op == "IN" else low not in values
        if op == "HAS_PROPERTY":
            return have
        if op == "NOT_HAS_PROPERTY":
            return not have
        if op == "CONTAINS_TOKEN":
            token = str(flt.get("value", "")).lower().strip("*")
            return have and token in re.split(r"\W+", low)
        raise _validation(f"Unsupported operator {op!r}")

    # -- limits, auth, faults ------------------------------------------------------------------
    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and (fault.path is None or fault.path in path):
                fault.remaining -= 1
                return fault
        return None

    def _rate_headers(self, token: Token) -> dict[str, str]:
        now = time.time()
        recent = sum(1 for t in self._burst_times if t > now - 1)
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(self.tier),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.tier - len(self._burst_times))),
            "X-HubSpot-RateLimit-Secondly": str(self.tier // 10),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, self.tier // 10 - recent)),
        }
        if token.kind == "private":  # the daily pair is not sent to OAuth apps
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, self.daily_limit - self.daily_used)
            )
        return headers

    @staticmethod
    def _limit_error(policy: str, message: str, headers: dict[str, str], group: str) -> ApiError:
        return ApiError(
            429,
            message,
            "",
            headers=headers,
            errorType="RATE_LIMIT",
            policyName=policy,
            groupName=group,
            requestId=str(uuid.uuid4()),
        )

    def authenticate(self, header: str | None) -> Token:
        if not header or not header.startswith("Bearer "):
            raise ApiError(401, "Authentication credentials not found.", "INVALID_AUTHENTICATION")
        token = self.tokens.get(header[len("Bearer ") :])
        if token is None or token.revoked:
            raise ApiError(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                "INVALID_AUTHENTICATION",
            )
        if token.expires_at is not None and token.expires_at <= time.time():
            ago = int(time.time() - token.expires_at)
            raise ApiError(
                401,
                f"The OAuth token used to make this call expired {ago} second(s) ago.",
                "EXPIRED_AUTHENTICATION",
            )
        return token

    @staticmethod
    def require(token: Token, scope: str) -> None:
        if scope not in token.scopes:
            raise ApiError(
                403,
                "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [scope]},
                    }
                ],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            )

    def oauth_token(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "refresh_token":
            raise _oauth_error(400, "unsupported grant_type", "UNSUPPORTED_GRANT_TYPE")
        client_id = form.get("client_id", "")
        if self.oauth_clients.get(client_id) != form.get("client_secret"):
            raise _oauth_error(400, "Invalid client credentials", "BAD_CLIENT_ID")
        grant = self.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or grant[0] != client_id:
            raise _oauth_error(400, "missing or unknown refresh token", "BAD_REFRESH_TOKEN")
        access = "emu-at-" + uuid.uuid4().hex
        self.tokens[access] = Token(list(grant[1]), "oauth", time.time() + self.access_token_ttl)
        self.refreshes += 1
        return {
            "token_type": "bearer",
            "refresh_token": form["refresh_token"],
            "access_token": access,
            "expires_in": self.access_token_ttl,
        }


# -- HTTP ----------------------------------------------------------------------------------------
Route = tuple[str, re.Pattern[str], Callable[..., Any]]


class _Handler(BaseHTTPRequestHandler):
    emulator: HubSpotEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-HubSpot-Correlation-Id", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        emu = self.emulator
        parsed = urlparse(self.path)
        path, query = parsed.path, {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, body, headers = 500, None, {}
        try:
            status, body, headers = self._dispatch(method, path, query, raw)
        except ApiError as err:
            status, body, headers = err.status, err.body(), err.headers
        except Exception as exc:  # an emulator bug: make it loud
            status, body = (
                500,
                {
                    "status": "error",
                    "message": f"emulator error: {exc!r}",
                    "correlationId": "x",
                    "category": "INTERNAL_ERROR",
                },
            )
        with emu.lock:
            emu.log.append((method, path, status))
        self._send(status, body, headers)

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        emu = self.emulator
        if path == "/oauth/v1/token" and method == "POST":
            form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            with emu.lock:
                return 200, emu.oauth_token(form), {}
        match = re.fullmatch(r"/oauth/v1/access-tokens/([^/]+)", path)
        if match and method == "GET":
            with emu.lock:
                token = emu.tokens.get(unquote(match.group(1)))
                if token is None or token.revoked or (token.expires_at or 1e18) <= time.time():
                    raise _oauth_error(404, "Token not found", "NOT_FOUND")
                return (
                    200,
                    {
                        "token": "redacted",
                        "user": "admin@example.com",
                        "hub_domain": "example.com",
                        "scopes": token.scopes,
                        "hub_id": 4242,
                        "app_id": token.app_id,
                        "expires_in": int((token.expires_at or time.time()) - time.time()),
                        "user_id": 1,
                        "token_type": "access",
                    },
                    {},
                )
        with emu.lock:
            token = emu.authenticate(self.headers.get("Authorization"))
            fault = emu._take_fault(path)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
            fault = None
        if path == "/oauth/v2/private-apps/get/access-token-info" and method == "POST":
            if not emu.token_info_available:
                raise ApiError(404, f"No route for {method} {path}", "OBJECT_NOT_FOUND")
            given = json.loads(raw or b"{}").get("tokenKey")
            with emu.lock:
                info = emu.tokens.get(str(given))
                if info is None or info.kind != "private" or info.revoked:
                    raise ApiError(401, "Invalid token", "INVALID_AUTHENTICATION")
                return (
                    200,
                    {"userId": 1, "hubId": 4242, "appId": info.app_id, "scopes": info.scopes},
                    {},
                )
        search = path.endswith("/search")
        with emu.lock:
            now = time.time()
            if fault is not None:
                if fault.kind == "unauthorized":
                    raise ApiError(
                        401,
                        "The OAuth token used to make this call expired 1 second(s) ago.",
                        "EXPIRED_AUTHENTICATION",
                    )
                if fault.kind == "server_error":
                    raise ApiError(fault.status, "Internal error", "INTERNAL_ERROR")
                if fault.kind in ("secondly", "ten_secondly", "daily"):
                    headers = {} if search else emu._rate_headers(token)
                    if fault.retry_after is not None:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                    policy = {
                        "secondly": "SECONDLY",
                        "ten_secondly": "TEN_SECONDLY_ROLLING",
                        "daily": "DAILY",
                    }[fault.kind]
                    word = {
                        "secondly": "secondly",
                        "ten_secondly": "ten secondly rolling",
                        "daily": "daily",
                    }[fault.kind]
                    raise emu._limit_error(
                        policy,
                        f"You have reached your {word} limit.",
                        headers,
                        f"publicapi:{policy.lower()}",
                    )
            if emu.daily_used >= emu.daily_limit:
                raise emu._limit_error(
                    "DAILY", "You have reached your daily limit.", {}, "publicapi:daily"
                )
            emu.daily_used += 1
            if search:
                while emu._search_times and emu._search_times[0] <= now - 1:
                    emu._search_times.popleft()
                if len(emu._search_times) >= emu.search_per_second:
                    raise emu._limit_error(
                        "SECONDLY", "You have reached your secondly limit.", {}, "publicapi:search"
                    )
                emu._search_times.append(now)
                rate_headers: dict[str, str] = {}
            else:
                while emu._burst_times and emu._burst_times[0] <= now - emu.burst_window:
                    emu._burst_times.popleft()
                if len(emu._burst_times) >= emu.tier:
                    raise emu._limit_error(
                        "TEN_SECONDLY_ROLLING",
                        "You have reached your ten secondly rolling limit.",
                        emu._rate_headers(token),
                        "publicapi:ten-secondly",
                    )
                emu._burst_times.append(now)
                rate_headers = emu._rate_headers(token)
            body = json.loads(raw) if raw else None
            status, answer = self._route(method, path, query, body, token, fault)
            return status, answer, rate_headers

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        token: Token,
        fault: Fault | None,
    ) -> tuple[int, Any]:
        emu = self.emulator
        if path.rstrip("/") == "/crm/v3/owners" and method == "GET":
            emu.require(token, "crm.objects.owners.read")
            email = query.get("email", "").lower()
            owners = [o for o in emu.owners.values() if not email or o["email"].lower() == email]
            return 200, {"results": owners[: int(query.get("limit") or 100)]}
        match = re.fullmatch(r"/crm/v3/owners/(\d+)", path)
        if match:
            emu.require(token, "crm.objects.owners.read")
            owner = emu.owners.get(match.group(1))
            if owner is None:
                raise ApiError(404, "Owner not found", "OBJECT_NOT_FOUND")
            return 200, owner
        if path == "/calling/v1/dispositions" and method == "GET":
            return 200, [
                {"id": k, "label": v, "deleted": False} for k, v in emu.dispositions.items()
            ]
        match = re.fullmatch(r"/crm/v3/properties/([^/]+)/([^/]+)", path)
        if match and method == "GET":
            object_type = _object_type(match.group(1))
            name = match.group(2)
            if name not in emu._known_properties(object_type) | READ_ONLY:
                raise ApiError(
                    404, f"Unable to find property {name} of {object_type}", "OBJECT_NOT_FOUND"
                )
            return 200, {
                "name": name,
                "label": name,
                "type": "string",
                "fieldType": "text",
                "groupName": "info",
                "options": [],
            }
        match = re.fullmatch(
            r"/crm/v4/objects/([^/]+)/([^/]+)/associations/([^/]+)(?:/([^/]+))?", path
        )
        match_default = re.fullmatch(
            r"/crm/v4/objects/([^/]+)/([^/]+)/associations/default/([^/]+)/([^/]+)", path
        )
        if match_default and method == "PUT":
            frm, frm_id, to, to_id = match_default.groups()
            frm, to = _object_type(frm), _object_type(to)
            emu.require(token, SCOPES[frm] + ".write")
            type_id = next(iter(ASSOCIATION_TYPES.get((frm, to), set())), None)
            if type_id is None:
                raise _validation(f"No default association from {frm} to {to}")
            self._exists(frm, frm_id)
            self._exists(to, to_id)
            emu._associate(frm, frm_id, to, to_id, type_id)
            return 200, {
                "status": "COMPLETE",
                "results": [
                    {
                        "from": {"id": frm_id},
                        "to": {"id": to_id},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": type_id,
                        },
                    }
                ],
            }
        if match:
            frm, frm_id, to, to_id = match.groups()
            frm, to = _object_type(frm), _object_type(to)
            if method == "GET" and to_id is None:
                emu.require(token, SCOPES[frm] + ".read")
                found = emu.associations_of(frm, frm_id, to)
                results = [
                    {
                        "toObjectId": int(oid),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": t, "label": None}
                            for t in sorted(types)
                        ],
                    }
                    for oid, types in found.items()
                ]
                return 200, {"results": results}
            if method == "PUT" and to_id is not None:
                emu.require(token, SCOPES[frm] + ".write")
                self._exists(frm, frm_id)
                self._exists(to, to_id)
                for spec in body or []:
                    type_id = spec.get("associationTypeId")
                    if type_id not in ASSOCIATION_TYPES.get((frm, to), set()):
                        raise _validation(
                            f"{type_id} is not a valid association type id from {frm} to {to}"
                        )
                    emu._associate(frm, frm_id, to, to_id, int(type_id))
                return 201, {
                    "fromObjectTypeId": TYPE_IDS[frm],
                    "fromObjectId": int(frm_id),
                    "toObjectTypeId": TYPE_IDS[to],
                    "toObjectId": int(to_id),
                    "labels": [],
                }
        match = re.fullmatch(r"/crm/v3/objects/([^/]+)(?:/([^/]+))?(?:/([^/]+))?", path)
        if not match:
            raise ApiError(404, f"No route for {method} {path}", "OBJECT_NOT_FOUND")
        object_type = _object_type(match.group(1))
        second, third = match.group(2), match.group(3)
        scope = SCOPES[object_type]
        if second == "search" and method == "POST":
            emu.require(token, scope + ".read")
            return 200, emu._search(object_type, body or {})
        if second == "batch" and method == "POST":
            emu.require(token, scope + (".read" if third == "read" else ".write"))
            return self._batch(object_type, str(third), body or {}, fault)
        if second is None and method == "GET":
            emu.require(token, scope + ".read")
            live = [o for o in emu.objects[object_type].values() if not o.archived]
            return 200, {"results": [o.as_json([]) for o in live[: int(query.get("limit") or 10)]]}
        if second is None and method == "POST":
            emu.require(token, scope + ".write")
            obj = emu._create(
                object_type,
                (body or {}).get("properties") or {},
                associations=(body or {}).get("associations"),
            )
            return 201, obj.as_json()
        if second is not None and third is None:
            if method == "GET":
                emu.require(token, scope + ".read")
                obj = self._exists(object_type, second)
                props = query.get("properties")
                return 200, obj.as_json(props.split(",") if props else None)
            if method == "PATCH":
                emu.require(token, scope + ".write")
                return 200, emu._update(
                    object_type, second, (body or {}).get("properties") or {}
                ).as_json()
            if method == "DELETE":
                emu.require(token, scope + ".write")
                self._exists(object_type, second).archived = True
                return 204, None
        raise ApiError(404, f"No route for {method} {path}", "OBJECT_NOT_FOUND")

    def _exists(self, object_type: str, object_id: str) -> CrmObject:
        obj = self.emulator.objects[object_type].get(object_id)
        if obj is None or obj.archived:
            raise ApiError(
                404,
                f"Object not found. objectId are usually numeric. id={object_id}",
                "OBJECT_NOT_FOUND",
            )
        return obj

    def _batch(
        self, object_type: str, action: str, body: dict[str, Any], fault: Fault | None
    ) -> tuple[int, Any]:
        emu = self.emulator
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise _validation(f"Batch input had {len(inputs)} inputs; the maximum is 100")
        if fault is not None and fault.kind == "batch_reject":
            raise _validation("Property values were not valid (batch refused)")
        started = _now_iso()
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []

        def fail(err: ApiError, context: dict[str, list[str]]) -> None:
            errors.append(
                {
                    "status": "error",
                    "category": err.category or "VALIDATION_ERROR",
                    "message": err.message,
                    "context": context,
                    "errors": err.extra.get("errors", []),
                }
            )

        if emu.batch_all_or_nothing and action in ("create", "update"):
            for item in inputs:
                errs = emu._check_properties(
                    object_type, item.get("properties") or {}, create=action == "create"
                )
                if errs:
                    raise emu._validation_error(errs)
        for n, item in enumerate(inputs):
            trace = item.get("objectWriteTraceId")
            try:
                if action == "create":
                    obj = emu._create(
                        object_type,
                        item.get("properties") or {},
                        associations=item.get("associations"),
                    )
                elif action == "update":
                    obj = emu._update(
                        object_type, str(item.get("id")), item.get("properties") or {}
                    )
                elif action == "upsert":
                    id_prop = item.get("idProperty")
                    hits = [
                        o
                        for o in emu.objects[object_type].values()
                        if id_prop and o.properties.get(id_prop) == str(item.get("id"))
                    ]
                    props = dict(item.get("properties") or {})
                    if hits:
                        obj = emu._update(object_type, hits[0].id, props)
                    else:
                        props.setdefault(str(id_prop), str(item.get("id")))
                        obj = emu._create(object_type, props)
                elif action == "read":
                    obj = self._exists(object_type, str(item.get("id")))
                elif action == "archive":
                    self._exists(object_type, str(item.get("id"))).archived = True
                    continue
                else:
                    raise ApiError(404, f"No batch action {action}", "OBJECT_NOT_FOUND")
            except ApiError as err:
                context = (
                    {"objectWriteTraceId": [str(trace)]}
                    if trace is not None
                    else {"ids": [str(item.get("id", n))]}
                )
                fail(err, context)
                continue
            answer = obj.as_json(body.get("properties") if action == "read" else None)
            if trace is not None:
                answer["objectWriteTraceId"] = trace
            results.append(answer)
        if action == "archive":
            return 204, None
        answer = {
            "status": "COMPLETE",
            "results": results,
            "requestedAt": started,
            "startedAt": started,
            "completedAt": _now_iso(),
        }
        if errors:
            answer.update(errors=errors, numErrors=len(errors))
            return 207, answer
        return (201 if action == "create" else 200), answer


def _object_type(name: str) -> str:
    object_type = TYPE_ALIASES.get(name, name)
    if object_type not in WRITABLE:
        raise ApiError(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR")
    return object_type


@pytest.fixture
def hs_emulator() -> Iterator[HubSpotEmulator]:
    """A fresh HubSpot emulator on 127.0.0.1, stopped after the test."""
    emulator = HubSpotEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
