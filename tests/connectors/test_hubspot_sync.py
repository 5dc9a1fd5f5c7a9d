"""A call through the whole write path (sync_call, real Redis) into the HubSpot emulator.

One Calls engagement per call, associated with the right contact, owned by the agent, with the
right outcome and its follow-up task; never twice, however often it is synced.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from acw_connector_hubspot import HubSpotConnector, WindowLimiter
from acw_connector_hubspot.mapping import DEFAULT_DISPOSITIONS
from acw_sync.config import AppConfig, ConnectorInstance, MatchingPolicy
from acw_sync.model import Agent, CallEvent, CallOutcome, Direction, EventType, Note
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool, sync_call
from tests.emulators.hubspot import HubSpotEmulator, hs_emulator

__all__ = ["hs_emulator"]

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
TOKEN = "pat-na1-sync-test-token"


def make_pool(emulator: HubSpotEmulator, **matching: object) -> ConnectorPool:
    emulator.add_private_app_token(TOKEN)
    config = AppConfig(
        connectors={
            "hubspot": ConnectorInstance(
                type="hubspot",
                options={"access_token": TOKEN, "host": emulator.url, "timeout": 5},
                matching=MatchingPolicy(**matching),  # type: ignore[arg-type]
            )
        }
    )
    return ConnectorPool(config)


def add_call(store: StateStore, call_id: str, number: str, outcome: CallOutcome) -> str:
    base = {"provider": "generic", "call_id": call_id}
    store.add_event(
        CallEvent(
            event_id=f"{call_id}-s",
            type=EventType.STARTED,
            occurred_at=T0,
            direction=Direction.INBOUND,
            customer_number=number,
            line_number="+14155550199",
            started_at=T0,
            agent=Agent(email="ana@example.com"),
            **base,  # type: ignore[arg-type]
        )
    )
    store.add_event(
        CallEvent(
            event_id=f"{call_id}-e",
            type=EventType.ENDED,
            occurred_at=T0 + timedelta(seconds=30),
            ended_at=T0 + timedelta(seconds=30),
            outcome=outcome,
            notes=[Note(text="Rang out.")],
            **base,  # type: ignore[arg-type]
        )
    )
    return f"generic:{call_id}"


def test_missed_call_lands_once_with_owner_outcome_and_task(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    pool = make_pool(hs_emulator)
    owner = hs_emulator.add_owner("ana@example.com")
    contact = hs_emulator.add_object("contacts", {"firstname": "Nina", "phone": "(415) 555-0100"})
    key = add_call(store, "m1", "+14155550100", CallOutcome.MISSED)
    result = sync_call(store, pool, "hubspot", key)
    assert result.status == "synced" and result.customer_id == contact
    [call] = hs_emulator.find("calls", "hs_call_external_id", key)
    props = call["properties"]
    assert props["hubspot_owner_id"] == owner
    assert props["hs_call_disposition"] == DEFAULT_DISPOSITIONS["No answer"]
    assert props["hs_call_status"] == "NO_ANSWER"
    assert hs_emulator.associations_of("calls", call["id"], "contacts") == {contact: {194}}
    [task] = hs_emulator.find("tasks", "acw_followup_key", f"{key}#callback-missed")
    assert task["properties"]["hs_task_type"] == "CALL"
    assert hs_emulator.associations_of("tasks", task["id"], "contacts") == {contact: {204}}
    # Synced again after a change, and again with a new worker process (no memory).
    store.ledger_set("hubspot", key, version="forced-resync")
    sync_call(store, pool, "hubspot", key)
    store.ledger_set("hubspot", key, version="forced-again")
    sync_call(store, make_pool(hs_emulator), "hubspot", key)
    assert len(hs_emulator.objects["calls"]) == 1
    assert len(hs_emulator.objects["tasks"]) == 1


def test_calls_from_a_new_number_create_one_contact_despite_search_lag(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    hs_emulator.search_lag = 60.0
    pool = make_pool(hs_emulator, on_none="create", cache_ttl=0)
    keys = [add_call(store, f"n{i}", "+14155550142", CallOutcome.COMPLETED) for i in range(3)]
    errors: list[BaseException] = []
    # Three workers share one request budget, as the core's shared limiter would give them:
    # three in-process budgets of 4 searches/s would together overrun HubSpot's 5/s.
    shared = WindowLimiter({"burst": (100, 10.0), "search": (1, 0.25)})

    def run(key: str) -> None:
        try:
            worker = ConnectorPool(pool.config)
            connector = worker.get("hubspot")
            assert isinstance(connector, HubSpotConnector)
            connector.use_rate_limiter(shared)
            sync_call(store, worker, "hubspot", key)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    [contact] = hs_emulator.objects["contacts"].values()
    assert contact.properties["hs_marketable_status"] == "false"
    for key in keys:
        [call] = hs_emulator.find("calls", "hs_call_external_id", key)
        assert hs_emulator.associations_of("calls", call["id"], "contacts") == {contact.id: {194}}
