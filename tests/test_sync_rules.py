"""sync_call with mappings and rules against the sandbox CRM and a real Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from acw_connector_sandbox import SandboxStore
from acw_sync.config import AppConfig
from acw_sync.model import Agent, CallEvent, CallOutcome, Direction, EventType, Note
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool, sync_call

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York


def make(tmp_path: Path, **instance: Any) -> tuple[ConnectorPool, SandboxStore]:
    db = tmp_path / "crm.db"
    rules = instance.pop("rules_config", [])
    config = AppConfig.model_validate(
        {
            "connectors": {"crm": {"type": "sandbox", "options": {"path": str(db)}, **instance}},
            "calendar": {"timezone": "America/New_York"},
            "rules": rules,
        }
    )
    return ConnectorPool(config), SandboxStore(db)


def add_call(store: StateStore, call_id: str, outcome: CallOutcome, **extra: Any) -> str:
    store.add_event(
        CallEvent(
            event_id=f"{call_id}-e",
            provider="generic",
            call_id=call_id,
            type=EventType.ENDED,
            occurred_at=T0 + timedelta(minutes=5),
            started_at=T0,
            ended_at=T0 + timedelta(minutes=5),
            direction=Direction.INBOUND,
            customer_number="+14155550100",
            agent=Agent(email="ana@example.com", name="Ana"),
            outcome=outcome,
            duration=300,
            talk_time=290,
            **extra,
        )
    )
    return f"generic:{call_id}"


def test_mapping_templates_reach_the_activity(store: StateStore, tmp_path: Path) -> None:
    pool, crm = make(
        tmp_path,
        mapping={
            "subject": "{{ call.direction | capitalize }} call, {{ customer.name or 'new caller' }}",
            "ticket": "{{ call.tags | join(',') }}",
        },
    )
    crm.add_customer(name="Maria Garcia", phone="+14155550100", phone_e164="+14155550100")
    key = add_call(store, "m1", CallOutcome.COMPLETED, tags=["billing", "vip"])
    assert sync_call(store, pool, "crm", key).status == "synced"
    [activity] = crm.query("SELECT * FROM activities")
    assert activity["subject"] == "Inbound call, Maria Garcia"
    assert json.loads(activity["fields"])["ticket"] == "billing,vip"


CUSTOMER_RULE = [
    {
        "id": "vip-status",
        "when": {"tags": "vip"},
        "then": [
            {"update_customer": {"lead_status": "Working", "last_call": "{{ call.ended_at }}"}},
            {"set_disposition": "VIP handled"},
            {
                "create_task": {
                    "subject": "Thank {{ customer.name }}",
                    "due": "next business day 10:00",
                    "owner": {"user": "005-VIP"},
                }
            },
        ],
    }
]


def test_customer_updates_and_disposition_once_per_rule(store: StateStore, tmp_path: Path) -> None:
    pool, crm = make(tmp_path, rules_config=CUSTOMER_RULE)
    crm.add_customer(name="Maria Garcia", phone="+14155550100", phone_e164="+14155550100")
    key = add_call(store, "v1", CallOutcome.COMPLETED, tags=["vip"])
    first = sync_call(store, pool, "crm", key)
    assert first.tasks.keys() == {"vip-status"}
    [customer] = crm.query("SELECT * FROM customers")
    assert json.loads(customer["fields"]) == {
        "lead_status": "Working",
        "last_call": "2026-03-10T14:05:00Z",
    }
    [activity] = crm.query("SELECT * FROM activities")
    assert activity["disposition"] == "VIP handled"
    [task] = crm.query("SELECT * FROM tasks")
    assert task["owner_id"] == "005-VIP" and task["subject"] == "Thank Maria Garcia"
    assert task["due_at"] == "2026-03-11T14:00:00+00:00"  # Wednesday 10:00 New York
    # a later event re-syncs the call: no second task, no second customer update
    store.add_event(
        CallEvent(
            event_id="v1-note",
            provider="generic",
            call_id="v1",
            type=EventType.NOTE_ADDED,
            occurred_at=T0 + timedelta(minutes=7),
            notes=[Note(text="Sent the voucher")],
        )
    )
    before = crm.request_count()
    again = sync_call(store, pool, "crm", key)
    assert again.status == "synced" and again.crm_writes == 1  # the activity update only
    assert crm.request_count() - before == 1
    assert len(crm.query("SELECT * FROM tasks")) == 1


def test_instance_without_the_rule_does_not_fire_it(store: StateStore, tmp_path: Path) -> None:
    pool, crm = make(tmp_path, rules_config=CUSTOMER_RULE, rules=["callback-missed"])
    crm.add_customer(name="Maria Garcia", phone="+14155550100", phone_e164="+14155550100")
    key = add_call(store, "v2", CallOutcome.COMPLETED, tags=["vip"])
    assert sync_call(store, pool, "crm", key).tasks == {}
    assert json.loads(crm.query("SELECT fields FROM customers")[0]["fields"]) == {}
