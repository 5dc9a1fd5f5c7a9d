"""Syncing one call to one connector instance: the steps, the ledger, the idempotency.

:func:`sync_call` is the whole write path for one (call, connector instance) pair, free of
Celery so it can be called and tested directly. It:

1. merges the call's events into its record and derives the wrap-up (analysis);
2. skips everything when the ledger already holds this version of the record;
3. resolves the customer by phone (cache, CRM search, the matching policy, creation under a
   per-number lock so two calls from a new number create one customer);
4. resolves the agent's CRM owner (mapping table, cache, connector look-up by email);
5. evaluates the follow-up rules and renders the instance's field mapping
   (:func:`prepare_call`, shared with ``acw-sync map --dry-run``);
6. upserts the call activity (the ledger's id, else the connector reconciles by key);
7. creates each follow-up task the rules ask for, once per rule (ledger, then the CRM's key);
8. writes the customer-field updates the rules ask for, once per rule (ledger), where the
   connector declares the capability.

Each CRM write is recorded in the ledger as soon as it returns, so a crash between two steps
resumes where it stopped. Connector errors propagate to the caller (the Celery task), which
decides between retrying and the dead-letter store.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from acw_sync.config import AppConfig, ConnectorInstance
from acw_sync.connector import Connector, load_connector_class
from acw_sync.errors import ConfigError
from acw_sync.guard import Guard, guard_connector
from acw_sync.merge import merge_events
from acw_sync.metrics import instrument_connector
from acw_sync.model import Analysis, CallRecord, CustomerRef
from acw_sync.rules import RulePlan, evaluate_rules
from acw_sync.store import Ledger, LockBusy, StateStore
from acw_sync.templates import render_mapping

__all__ = ["ConnectorPool", "SyncResult", "prepare_call", "record_version", "sync_call"]

log = structlog.get_logger("acw_sync.sync")

Analyze = Callable[[CallRecord], Analysis | None]
OWNER_CACHE_TTL = 3600


@dataclass
class SyncResult:
    status: Literal["synced", "unchanged", "not_ended", "unknown_call", "skipped", "unresolved"]
    activity_id: str | None = None
    customer_id: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    crm_writes: int = 0


class ConnectorPool:
    """The connector objects of one process, one per configured instance, made on first use."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._made: dict[str, Connector] = {}

    def get(self, instance: str) -> Connector:
        if instance not in self._made:
            spec = self.instance(instance)
            cls = load_connector_class(spec.type)
            options = cls.config_model.model_validate(spec.options)
            self._made[instance] = instrument_connector(cls(instance, options))
        return self._made[instance]

    def instance(self, instance: str) -> ConnectorInstance:
        try:
            return self.config.connectors[instance]
        except KeyError:
            raise ConfigError(f"connectors.{instance}: no such connector instance") from None

    def close(self) -> None:
        for connector in self._made.values():
            connector.close()
        self._made.clear()


def record_version(record: CallRecord) -> str:
    """A digest of what the platforms told us about the call (not of derived fields)."""
    payload = record.model_dump_json(exclude={"analysis", "last_event_at"})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def sync_call(
    store: StateStore,
    pool: ConnectorPool,
    instance: str,
    call_key: str,
    *,
    analyze: Analyze | None = None,
    guard: Guard | None = None,
) -> SyncResult:
    """Bring the CRM of ``instance`` up to date with the call ``call_key``.

    Every CRM request goes through ``guard`` (pause, circuit breaker, shared rate limit,
    in-process retries of connection blips; :mod:`acw_sync.guard`).
    """
    events = store.events(call_key)
    if not events:
        return SyncResult("unknown_call")
    record = merge_events(events)
    if not record.ended:
        return SyncResult("not_ended")
    spec = pool.instance(instance)
    connector = guard_connector(pool.get(instance), spec, guard or Guard(store))
    version = record_version(record)
    ledger = store.ledger(instance, call_key)
    if ledger.version == version and ledger.activity is not None:
        return SyncResult("unchanged", activity_id=ledger.activity.id)
    if analyze is not None:
        record.analysis = analyze(record)
    bound = log.bind(call_key=call_key, connector=instance, provider=record.provider)
    writes = 0

    customer, resolved_now = _resolve_customer(store, connector, spec, record, ledger)
    writes += resolved_now
    if customer is None and spec.matching.on_none == "skip" and not ledger.activity:
        store.ledger_set(instance, call_key, state="skipped", version=version)
        bound.info("call skipped: no customer matches and the policy says skip")
        return SyncResult("skipped")
    if isinstance(customer, str):  # "unresolved": several customers and the policy parks it
        store.ledger_set(instance, call_key, state="unresolved", version=version)
        bound.warning("call parked as unresolved: several customers match the number")
        return SyncResult("unresolved")

    owner_id = _resolve_owner(store, connector, spec, instance, record)
    if ledger.activity is None and not ledger.attempted:
        # The batch path trusts a key without this mark to be new to the CRM (acw_sync.batch).
        store.ledger_set(instance, call_key, attempted=1)
    record, fields, plan = prepare_call(pool.config, instance, record, customer)
    activity = connector.upsert_call(
        record,
        key=call_key,
        customer=customer,
        owner_id=owner_id,
        existing=ledger.activity,
        fields=fields,
    )
    writes += 1
    store.ledger_set(instance, call_key, activity=activity)
    bound.info(
        "call activity written",
        activity_id=activity.id,
        created=activity.created,
        customer_id=customer.id if customer else None,
    )

    tasks: dict[str, str] = {}
    for task in plan.tasks:
        done = ledger.tasks.get(task.rule)
        if done is not None:
            tasks[task.rule] = done.id
            continue
        ref = connector.create_task(
            task, customer=customer, activity=activity, owner_id=owner_id, existing=None
        )
        writes += 1
        store.ledger_set_task(instance, call_key, task.rule, ref)
        tasks[task.rule] = ref.id
        bound.info("follow-up task written", rule=task.rule, task_id=ref.id, due_at=task.due_at)

    writes += _update_customer(
        store, connector, instance=instance, call_key=call_key, customer=customer, plan=plan
    )
    store.ledger_set(instance, call_key, version=version, state="synced", synced_at=time.time())
    return SyncResult(
        "synced",
        activity_id=activity.id,
        customer_id=customer.id if customer else None,
        tasks=tasks,
        crm_writes=writes,
    )


def prepare_call(
    config: AppConfig, instance: str, record: CallRecord, customer: CustomerRef | None
) -> tuple[CallRecord, dict[str, Any], RulePlan]:
    """The rules' plan and the mapped activity fields for one call on one instance.

    Pure (no CRM, no Redis): the record comes back with the disposition a rule set, and the
    fields are the instance's ``mapping`` rendered over it.
    """
    plan = evaluate_rules(record, config, instance=instance, customer=customer)
    if plan.disposition:
        record = record.model_copy(update={"disposition": plan.disposition})
    timezone = config.business_calendar(record.agent.team if record.agent else None).timezone
    fields = render_mapping(
        config.connectors[instance].mapping, record, customer=customer, timezone=timezone
    )
    return record, fields, plan


def _update_customer(
    store: StateStore,
    connector: Connector,
    *,
    instance: str,
    call_key: str,
    customer: CustomerRef | None,
    plan: RulePlan,
) -> int:
    """Write each rule's customer fields once (``update:{rule}`` in the ledger)."""
    if customer is None or not plan.customer_updates:
        return 0
    if not connector.capabilities.update_customer:
        log.warning(
            "rules ask for customer updates the connector cannot write",
            connector=instance,
            rules=[u.rule for u in plan.customer_updates],
        )
        return 0
    ledger_key = store.k("ledger", instance, call_key)
    writes = 0
    for update in plan.customer_updates:
        if store.redis.hexists(ledger_key, f"update:{update.rule}"):
            continue
        connector.update_customer(customer, update.fields)
        writes += 1
        store.ledger_set(instance, call_key, **{f"update:{update.rule}": customer.id})
    return writes


def _resolve_customer(
    store: StateStore,
    connector: Connector,
    spec: ConnectorInstance,
    record: CallRecord,
    ledger: Ledger,
) -> tuple[CustomerRef | str | None, int]:
    """The customer to attach the call to, ``"unresolved"``, or None; and CRM requests made."""
    instance = connector.instance
    if ledger.customer_resolved:
        return ledger.customer, 0
    phone = record.customer_number
    if phone is None:
        store.ledger_set(instance, record.key, customer=None)
        return None, 0
    requests = 0
    found = store.cached_customers(instance, phone)
    if found is None:
        created = store.created_customer(instance, phone)
        found = [created] if created else None
    if found is None:
        found = connector.find_customers(phone)
        requests += 1
        store.cache_customers(instance, phone, found, spec.matching.cache_ttl)
    chosen: CustomerRef | str | None
    if len(found) == 1:
        chosen = found[0]
    elif len(found) > 1:
        chosen = found[0] if spec.matching.on_many != "unresolved" else "unresolved"
    elif spec.matching.on_none == "create" and connector.capabilities.create_customer:
        chosen, made = _create_customer(store, connector, record, phone)
        requests += made
    else:
        chosen = None
    if not isinstance(chosen, str):
        store.ledger_set(instance, record.key, customer=chosen)
    return chosen, requests


def _create_customer(
    store: StateStore, connector: Connector, record: CallRecord, phone: str
) -> tuple[CustomerRef, int]:
    """Create one customer per number, across all workers (lock + memory of what we created)."""
    instance = connector.instance
    deadline = time.monotonic() + 30
    while True:
        remembered = store.created_customer(instance, phone)
        if remembered is not None:
            return remembered, 0
        try:
            with store.lock(f"customer:{instance}:{phone}", ttl=30):
                remembered = store.created_customer(instance, phone)
                if remembered is not None:
                    return remembered, 0
                ref = connector.create_customer(record, key=f"{instance}:{phone}")
                store.remember_created_customer(instance, phone, ref)
                return ref, 1
        except LockBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _resolve_owner(
    store: StateStore,
    connector: Connector,
    spec: ConnectorInstance,
    instance: str,
    record: CallRecord,
) -> str | None:
    agent = record.agent
    if agent is None:
        return spec.owners.default
    for ident in (agent.id, agent.email):
        if ident and ident in spec.owners.table:
            return spec.owners.table[ident]
    if not (spec.owners.by_email and agent.email and connector.capabilities.owner_lookup):
        return spec.owners.default
    cached = store.cached_owner(instance, agent.email)
    if cached is not False:
        return str(cached) or spec.owners.default
    owner = connector.find_owner(agent)
    store.cache_owner(instance, agent.email, owner, OWNER_CACHE_TTL)
    return owner or spec.owners.default
