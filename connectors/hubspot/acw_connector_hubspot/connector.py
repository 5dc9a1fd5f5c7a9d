"""The HubSpot connector: the contract of :mod:`acw_sync.connector` over HubSpot's CRM API.

A call is a Calls engagement keyed by ``hs_call_external_id`` (the call key) and associated
inline with the contact (194), its company (182) and, when configured, the contact's deals
(206). A follow-up is a Task keyed by the configured text property (``acw_followup_key`` by
default) and associated with the contact (204). Search lags behind writes, so what this
instance wrote (calls, tasks, contacts) is also remembered in process, by key and by number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from acw_connector_hubspot.batch import BatchWrites, TaskWrite
from acw_connector_hubspot.client import HubSpotClient
from acw_connector_hubspot.config import HubSpotConfig
from acw_connector_hubspot.limits import RateLimiter, RateLimitStatus
from acw_connector_hubspot.mapping import (
    DEFAULT_DISPOSITIONS,
    call_associations,
    call_properties,
    disposition_labels,
    hs_time,
    resolve_disposition,
    task_associations,
    task_properties,
)
from acw_connector_hubspot.memory import Memory
from acw_sync.connector import CallWrite, Capabilities, Check, Connector, WritePreview
from acw_sync.errors import ConnectorError, CredentialsInvalid, PermanentError, RetryableError
from acw_sync.model import Agent, CallRecord, CrmObjectRef, CustomerRef, FollowUp
from acw_sync.phone import (
    by_region,
    mask,
    matching_numbers,
    national_digits,
    same_number,
    stored_formats,
)

__all__ = ["CallWrite", "HubSpotConnector", "TaskWrite"]

log = logging.getLogger(__name__)

CONTACT_PROPERTIES = (
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "hubspot_owner_id",
    "associatedcompanyid",
    "lastmodifieddate",
)
COMPANY_PROPERTIES = ("name", "phone", "hubspot_owner_id", "hs_lastmodifieddate")
#: Scopes per area, for ``check()``. HubSpot gates calls and tasks behind the contacts scopes.
REQUIRED_SCOPES: dict[str, tuple[str, ...]] = {
    "contacts": ("crm.objects.contacts.read", "crm.objects.contacts.write"),
    "calls": ("crm.objects.contacts.read", "crm.objects.contacts.write"),
    "tasks": ("crm.objects.contacts.read", "crm.objects.contacts.write"),
    "owners": ("crm.objects.owners.read",),
}
OWNER_TTL = 3600.0
DISPOSITIONS_TTL = 3600.0
#: Values (national numbers) per search of :meth:`HubSpotConnector.find_customers_many`, across
#: its filter groups: 100 keep the request under HubSpot's 3,000-character search limit.
MANY_VALUES = 100
#: The page size asked for (HubSpot's maximum).
MANY_PAGE = 200
RECENT_MISS = 30.0


class HubSpotConnector(BatchWrites, Connector):
    type_name = "hubspot"
    config_model = HubSpotConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        create_customer=True,
        update_customer=True,
        owner_lookup=True,
        external_ids=True,
        batch_size=100,
    )

    def __init__(
        self,
        instance: str,
        config: HubSpotConfig,
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(instance, config)
        self.settings = config
        self.clock = clock
        self.client = HubSpotClient(config, limiter=limiter, clock=clock)
        self._calls: Memory[str, str] = Memory()
        self._tasks: Memory[str, str] = Memory()
        self._links: Memory[str, frozenset[tuple[str, int]]] = Memory()
        """Associations this process made per call id (so updates do not repeat them)."""
        self._contacts_by_key: Memory[str, CustomerRef] = Memory()
        self._contacts_by_number: Memory[str, CustomerRef] = Memory()
        self._misses: Memory[str, float] = Memory()
        """Numbers a search just found no contact for, and when (spares create's re-check)."""
        self._owners: dict[str, tuple[str | None, float]] = {}
        self._dispositions: tuple[dict[str, str], float] | None = None

    # -- hooks for the core ------------------------------------------------------------------
    def use_rate_limiter(self, limiter: RateLimiter) -> None:
        """Replace the in-process limiter (e.g. with one shared across workers in Redis)."""
        self.client.limiter = limiter

    @property
    def rate_limit_status(self) -> RateLimitStatus:
        """The last ``X-HubSpot-RateLimit-*`` headers HubSpot sent."""
        return self.client.rate_limit

    # -- customers ---------------------------------------------------------------------------
    def _url(self, object_type_id: str, object_id: str) -> str | None:
        if self.settings.portal_id is None:
            return None
        return (
            f"{self.settings.app_url}/contacts/{self.settings.portal_id}"
            f"/record/{object_type_id}/{object_id}"
        )

    def _contact_ref(self, row: Mapping[str, Any], *, created: bool = False) -> CustomerRef:
        props = row.get("properties") or {}
        name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p) or None
        return CustomerRef(
            object_type="contact",
            id=str(row["id"]),
            name=name,
            phone=props.get("phone") or props.get("mobilephone"),
            owner_id=props.get("hubspot_owner_id") or None,
            account_id=props.get("associatedcompanyid") or None,
            url=self._url("0-1", str(row["id"])),
            created_by_acw=created,
        )

    def find_customers(self, phone: str) -> list[CustomerRef]:
        forms = stored_formats(phone)
        digits = national_digits(phone)
        groups: list[list[dict[str, Any]]] = [
            [{"propertyName": "phone", "operator": "IN", "values": forms}],
            [{"propertyName": "mobilephone", "operator": "IN", "values": forms}],
            [
                {
                    "propertyName": "hs_searchable_calculated_phone_number",
                    "operator": "EQ",
                    "value": digits,
                }
            ],
            [
                {
                    "propertyName": "hs_searchable_calculated_mobile_number",
                    "operator": "EQ",
                    "value": digits,
                }
            ],
        ]
        rows = self.client.search("contacts", groups, CONTACT_PROPERTIES, limit=50)

        def rank(row: Mapping[str, Any]) -> tuple[int, str]:
            props = row.get("properties") or {}
            field_rank = 0 if same_number(props.get("phone"), phone) else 1
            return (field_rank, str(props.get("lastmodifieddate") or ""))

        matching = [
            r
            for r in rows
            if same_number((r.get("properties") or {}).get("phone"), phone)
            or same_number((r.get("properties") or {}).get("mobilephone"), phone)
        ]
        # Phone matches before mobile matches; within each, most recently modified first.
        matching.sort(key=lambda r: rank(r)[1], reverse=True)
        matching.sort(key=lambda r: rank(r)[0])
        found = [self._contact_ref(r) for r in matching]
        remembered = self._contacts_by_number.get(phone)
        if remembered is not None and remembered.id not in {c.id for c in found}:
            # Created by us moments ago and not yet in the search index.
            found.append(remembered)
        if not found:
            self._misses.put(phone, self.clock())
        if found or not self.settings.company_fallback:
            return found
        companies = self.client.search(
            "companies",
            [[{"propertyName": "phone", "operator": "IN", "values": forms}]],
            COMPANY_PROPERTIES,
            limit=20,
        )
        return [
            CustomerRef(
                object_type="company",
                id=str(r["id"]),
                name=(r.get("properties") or {}).get("name"),
                phone=(r.get("properties") or {}).get("phone"),
                owner_id=(r.get("properties") or {}).get("hubspot_owner_id") or None,
                url=self._url("0-2", str(r["id"])),
            )
            for r in companies
            if same_number((r.get("properties") or {}).get("phone"), phone)
        ]

    def _search_numbers(
        self, numbers: list[str], kinds: tuple[str, ...], rows: dict[str, list[dict[str, Any]]]
    ) -> None:
        """Add to ``rows`` the contacts whose ``kinds`` fields hold one of ``numbers``."""
        size = MANY_VALUES // len(kinds)
        chunks = [numbers[i : i + size] for i in range(0, len(numbers), size)]
        fields = {"phone": "phone", "mobile": "mobilephone"}
        while chunks:
            chunk = chunks.pop()
            digits = sorted({national_digits(p) for p in chunk})
            groups = [
                [{"propertyName": f"hs_searchable_calculated_{kind}_number", "operator": "IN",
                  "values": digits}]
                for kind in kinds
            ]  # fmt: skip
            found = self.client.search("contacts", groups, CONTACT_PROPERTIES, limit=MANY_PAGE)
            if len(found) >= MANY_PAGE and len(chunk) > 1:
                half = len(chunk) // 2
                chunks += [chunk[:half], chunk[half:]]
                continue
            regions = by_region(chunk)
            for row in found:
                props = row.get("properties") or {}
                hits = [h for k in kinds for h in matching_numbers(props.get(fields[k]), regions)]
                for phone in dict.fromkeys(hits):
                    if row not in rows[phone]:
                        rows[phone].append(row)

    def find_customers_many(
        self, phones: Sequence[str], *, all_matches: bool = True
    ) -> dict[str, list[CustomerRef]]:
        """Many numbers per search: ``IN`` on the calculated (national digits) phone fields.

        At most :data:`MANY_VALUES` values per search (HubSpot caps a search at 3,000
        characters); a full page (the answer may be cut) is searched again in halves. With
        ``all_matches`` False only the best candidate counts, and phone matches rank before
        mobile ones: the mobile field is then searched only for numbers the phone field missed
        (one search per 100 numbers instead of one per 50). Numbers with no contact go through
        :meth:`find_customers` when the company fallback is on.
        """
        unique = list(dict.fromkeys(phones))
        rows: dict[str, list[dict[str, Any]]] = {p: [] for p in unique}
        if all_matches:
            self._search_numbers(unique, ("phone", "mobile"), rows)
        else:
            self._search_numbers(unique, ("phone",), rows)
            self._search_numbers([p for p in unique if not rows[p]], ("mobile",), rows)
        out: dict[str, list[CustomerRef]] = {}
        for phone, matching in rows.items():
            # Phone matches before mobile matches; within each, most recently modified first.
            matching.sort(
                key=lambda r: str((r.get("properties") or {}).get("lastmodifieddate") or ""),
                reverse=True,
            )
            on_phone = {
                id(r)
                for r in matching
                if same_number((r.get("properties") or {}).get("phone"), phone)
            }
            matching.sort(key=lambda r: 0 if id(r) in on_phone else 1)
            refs = [self._contact_ref(r) for r in matching]
            remembered = self._contacts_by_number.get(phone)
            if remembered is not None and remembered.id not in {c.id for c in refs}:
                refs.append(remembered)
            if not refs and self.settings.company_fallback:
                refs = self.find_customers(phone)
            elif not refs:
                self._misses.put(phone, self.clock())
            out[phone] = refs
        return out

    def create_customer(self, call: CallRecord, *, key: str) -> CustomerRef:
        """A contact for an unknown number. Idempotent by ``key`` and by number in process,
        and across processes by a phone search once HubSpot has indexed the first one."""
        remembered = self._contacts_by_key.get(key)
        number = call.customer_number
        if remembered is None and number:
            remembered = self._contacts_by_number.get(number)
        if remembered is not None:
            return remembered
        missed_at = self._misses.get(number) if number else None
        if number and (missed_at is None or self.clock() - missed_at > RECENT_MISS):
            # Reconcile across processes, unless this process searched a moment ago.
            already = self.find_customers(number)
            if already:
                return already[0]
        props = {"firstname": self.settings.new_contact_firstname}
        if self.settings.new_contact_lastname:
            props["lastname"] = self.settings.new_contact_lastname
        if number:
            props["phone"] = number
        # hs_marketable_status cannot be written through the API: contacts created by an app
        # are non-marketing unless the portal's "Marketing contacts" integration setting is on.
        row = self.client.create("contacts", props)
        if str((row.get("properties") or {}).get("hs_marketable_status", "")).lower() == "true":
            log.warning(
                "hubspot created a marketing contact: turn off marketing contacts for this app "
                "(Settings > Integrations > Marketing contacts)",
                extra={"instance": self.instance},
            )
        customer = self._contact_ref(row, created=True)
        self._contacts_by_key.put(key, customer)
        if number:
            self._contacts_by_number.put(number, customer)
        log.info(
            "hubspot contact created",
            extra={"instance": self.instance, "number": mask(number), "id": customer.id},
        )
        return customer

    def update_customer(self, customer: CustomerRef, fields: Mapping[str, Any]) -> None:
        if not fields:
            return
        object_type = "companies" if customer.object_type == "company" else "contacts"
        props = {k: _wire(v) for k, v in fields.items() if v is not None}
        self.client.update(object_type, customer.id, props)

    def find_owner(self, agent: Agent) -> str | None:
        """The owner id (not the user id) whose email is the agent's; cached for an hour."""
        if not agent.email:
            return None
        email = agent.email.strip().lower()
        cached = self._owners.get(email)
        now = self.clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        owners = self.client.owners_by_email(email)
        owner_id = next(
            (
                str(o["id"])
                for o in owners
                if str(o.get("email") or "").lower() == email and not o.get("archived")
            ),
            None,
        )
        self._owners[email] = (owner_id, now + OWNER_TTL)
        return owner_id

    # -- calls ---------------------------------------------------------------------------------
    def _portal_dispositions(self) -> dict[str, str]:
        now = self.clock()
        if self._dispositions is not None and self._dispositions[1] > now:
            return self._dispositions[0]
        try:
            portal = self.client.dispositions()
        except (PermanentError, CredentialsInvalid) as exc:
            # Not every app may read /calling/v1/dispositions: the defaults still work.
            log.warning("hubspot call outcomes unavailable, using the defaults: %s", exc)
            portal = {}
        merged = {**DEFAULT_DISPOSITIONS, **portal, **self.settings.dispositions}
        self._dispositions = (merged, now + DISPOSITIONS_TTL)
        return merged

    def _disposition(self, call: CallRecord, dispositions: Mapping[str, str]) -> str | None:
        for label in disposition_labels(call, self.settings.outcome_labels):
            guid = resolve_disposition(label, dispositions)
            if guid:
                return guid
        return None

    def _call_props(
        self,
        call: CallRecord,
        key: str,
        owner_id: str | None,
        fields: Mapping[str, Any],
        dispositions: Mapping[str, str],
    ) -> dict[str, str]:
        return call_properties(
            call,
            key=key,
            owner_id=owner_id or self.settings.default_owner_id,
            disposition=self._disposition(call, dispositions),
            fields=fields,
        )

    def _call_assocs(self, customer: CustomerRef | None) -> list[tuple[str, int]]:
        deals: list[str] = []
        if self.settings.associate_deals and customer and customer.object_type == "contact":
            deals = self.client.associated_ids("contacts", customer.id, "deals")[
                : self.settings.max_deals
            ]
        return call_associations(customer, company=self.settings.associate_company, deal_ids=deals)

    def _find_by_key(self, object_type: str, prop: str, keys: Sequence[str]) -> dict[str, str]:
        """Ids of objects whose ``prop`` is one of ``keys`` (reconciliation after a lost ledger)."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), 25):
            chunk = {k.lower(): k for k in keys[start : start + 25]}
            flt: dict[str, Any] = (
                {"propertyName": prop, "operator": "EQ", "value": next(iter(chunk.values()))}
                if len(chunk) == 1
                # HubSpot's docs ask for lower-case IN values on strings; our keys keep the
                # provider's case, so both forms are sent and matched back here.
                else {
                    "propertyName": prop,
                    "operator": "IN",
                    "values": sorted({*chunk, *chunk.values()}),
                }
            )
            for row in self.client.search(object_type, [[flt]], [prop], limit=100):
                value = str((row.get("properties") or {}).get(prop) or "")
                key = chunk.get(value.lower())
                if key is not None and key not in found:
                    found[key] = str(row["id"])
        return found

    def _associate_late(self, call_id: str, pairs: Sequence[tuple[str, int]]) -> None:
        """Associate an existing call with records it may not be linked to yet (the customer
        became known after the first write); pairs this process already linked are skipped."""
        to_type = {194: "contacts", 182: "companies", 206: "deals"}
        linked = self._links.get(call_id) or frozenset()
        for to_id, type_id in pairs:
            if (to_id, type_id) not in linked:
                self.client.associate("calls", call_id, to_type[type_id], to_id, type_id)
        self._links.put(call_id, linked | frozenset(pairs))

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
        props = self._call_props(call, key, owner_id, fields, self._portal_dispositions())
        pairs = self._call_assocs(customer)
        target = existing.id if existing else self._calls.get(key)
        if target is None:
            target = self._find_by_key("calls", "hs_call_external_id", [key]).get(key)
        if target is not None:
            try:
                self.client.update("calls", target, props)
            except PermanentError as exc:
                if exc.status != 404:
                    raise
                self._calls.pop(key)  # deleted in HubSpot: write it again
            else:
                self._calls.put(key, target)
                if pairs:
                    self._associate_late(target, pairs)
                return CrmObjectRef(object_type="call", id=target, created=False)
        props.setdefault("hs_timestamp", hs_time(datetime.now(UTC)))
        row = self.client.create("calls", props, pairs)
        self._calls.put(key, str(row["id"]))
        self._links.put(str(row["id"]), frozenset(pairs))
        return CrmObjectRef(object_type="call", id=str(row["id"]), created=True)

    def _task_props(self, task: FollowUp, owner_id: str | None) -> dict[str, str]:
        return task_properties(
            task,
            owner_id=owner_id or self.settings.default_owner_id,
            status=self.settings.task_status,
            key_property=self.settings.followup_key_property,
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
        if existing is not None:
            return CrmObjectRef(object_type="task", id=existing.id, created=False)
        known = self._tasks.get(task.key)
        if known is None:
            # Even for a call this process just created: another worker may have written the
            # task on a retry and died before its ledger write.
            prop = self.settings.followup_key_property
            known = self._find_by_key("tasks", prop, [task.key]).get(task.key)
        if known is not None:
            self._tasks.put(task.key, known)
            return CrmObjectRef(object_type="task", id=known, created=False)
        pairs = task_associations(customer, company=self.settings.associate_company)
        row = self.client.create("tasks", self._task_props(task, owner_id), pairs)
        self._tasks.put(task.key, str(row["id"]))
        return CrmObjectRef(object_type="task", id=str(row["id"]), created=True)

    def _required_scopes(self) -> dict[str, tuple[str, ...]]:
        needed = dict(REQUIRED_SCOPES)
        if self.settings.company_fallback or self.settings.associate_company:
            needed["companies"] = ("crm.objects.companies.read",)
        if self.settings.associate_deals:
            needed["deals"] = ("crm.objects.deals.read",)
        return needed

    def check(self) -> list[Check]:
        kind = "OAuth" if self.settings.oauth else "private-app"
        try:
            scopes: set[str] | None = set(self.client.token_scopes())
        except CredentialsInvalid as exc:
            return [Check("token", False, str(exc))]
        except RetryableError as exc:
            return [Check("reachable", False, str(exc))]
        except PermanentError:
            scopes = None  # no introspection for this kind of token: probe instead
        checks = [Check("token", True, f"{kind} token accepted")]
        if scopes is None:
            checks += self._probe_checks()
        else:
            for area, needed in self._required_scopes().items():
                missing = [s for s in needed if s not in scopes]
                detail = f"missing scope(s): {', '.join(missing)}" if missing else ", ".join(needed)
                checks.append(Check(f"scopes for {area}", not missing, detail))
        prop = self.settings.followup_key_property
        try:
            exists = self.client.property_exists("tasks", prop)
        except ConnectorError as exc:
            checks.append(Check("task key property", False, str(exc)))
        else:
            checks.append(
                Check(
                    "task key property",
                    exists,
                    f"tasks.{prop} exists"
                    if exists
                    else f"create a single-line text Task property named {prop!r}",
                )
            )
        return checks

    def _probe_checks(self) -> list[Check]:
        """Read access per area, when the token's scopes cannot be listed. A 403 names the
        missing scopes; write scopes show only on the first write."""
        checks = []
        for area in self._required_scopes():
            try:
                self.client.probe(area)
            except ConnectorError as exc:  # CredentialsInvalid names the missing scopes
                checks.append(Check(f"read access to {area}", False, str(exc)))
            else:
                checks.append(Check(f"read access to {area}", True, "ok (write access unverified)"))
        return checks

    def preview_call(
        self,
        call: CallRecord,
        *,
        customer: CustomerRef | None,
        owner_id: str | None,
        fields: Mapping[str, Any],
    ) -> WritePreview:
        dispositions = {**DEFAULT_DISPOSITIONS, **self.settings.dispositions}
        props = self._call_props(call, call.key, owner_id, fields, dispositions)
        pairs = call_associations(customer, company=self.settings.associate_company)
        return WritePreview(
            object_type="calls",
            operation="upsert by hs_call_external_id",
            fields=props,
            associations=[f"{to_id} (type {type_id})" for to_id, type_id in pairs],
        )

    def preview_task(
        self, task: FollowUp, *, customer: CustomerRef | None, owner_id: str | None
    ) -> WritePreview:
        pairs = task_associations(customer, company=self.settings.associate_company)
        return WritePreview(
            object_type="tasks",
            operation=f"create once by {self.settings.followup_key_property}",
            fields=self._task_props(task, owner_id),
            associations=[f"{to_id} (type {type_id})" for to_id, type_id in pairs],
        )

    def close(self) -> None:
        self.client.close()


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return hs_time(value)
    return str(value)
