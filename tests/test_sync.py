"""sync_call against the sandbox CRM and a real Redis: idempotency, policies, follow-ups."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acw_connector_sandbox import SandboxStore
from acw_sync.config import AppConfig, ConnectorInstance, MatchingPolicy
from acw_sync.errors import RateLimited
from acw_sync.model import Agent, CallEvent, CallOutcome, CallRecord, Direction, EventType, Note
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool, sync_call

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def make_pool(tmp_path: Path, **matching: object) -> tuple[ConnectorPool, SandboxStore]:
    db = tmp_path / "crm.db"
    config = AppConfig(
        connectors={
            "crm": ConnectorInstance(
                type="sandbox",
                options={"path": str(db)},
                matching=MatchingPolicy(**matching),  # type: ignore[arg-type]
            )
        }
    )
    return ConnectorPool(config), SandboxStore(db)


def add_call(
    store: StateStore, call_id: str, number: str, outcome: CallOutcome, **extra: object
) -> str:
    base = {"provider": "generic", "call_id": call_id}
    store.add_event(
        CallEvent(
            event_id=f"{call_id}-s",
            type=EventType.STARTED,
            occurred_at=T0,
            direction=Direction.INBOUND,
            customer_number=number,
            started_at=T0,
            agent=Agent(email="ana@example.com"),
            **base,  # type: ignore[arg-type]
        )
    )
    store.add_event(
        CallEvent(
            event_id=f"{call_id}-e",
            type=EventType.ENDED,
            occurred_at=T0 + timedelta(seconds=90),
            ended_at=T0 + timedelta(seconds=90),
            outcome=outcome,
            **base,  # type: ignore[arg-type]
            **extra,  # type: ignore[arg-type]
        )
    )
    return f"generic:{call_id}"


def test_sync_writes_once_and_skips_unchanged(store: StateStore, tmp_path: Path) -> None:
    pool, crm = make_pool(tmp_path, on_none="create")
    crm.add_owner("005-A", "ana@example.com")
    key = add_call(store, "c1", "+14155550100", CallOutcome.COMPLETED, notes=[Note(text="ok")])
    first = sync_call(store, pool, "crm", key)
    assert first.status == "synced" and first.crm_writes >= 2
    again = sync_call(store, pool, "crm", key)
    assert again.status == "unchanged" and again.crm_writes == 0
    [activity] = crm.query("SELECT * FROM activities")
    assert activity["owner_id"] == "005-A" and activity["key"] == key


def test_late_data_updates_the_same_activity(store: StateStore, tmp_path: Path) -> None:
    pool, crm = make_pool(tmp_path)
    key = add_call(store, "c2", "+14155550100", CallOutcome.COMPLETED)
    sync_call(store, pool, "crm", key)
    store.add_event(
        CallEvent(
            event_id="c2-rec",
            provider="generic",
            call_id="c2",
            type=EventType.RECORDING_READY,
            occurred_at=T0 + timedelta(minutes=2),
            recording_url="https://rec.example.com/c2.mp3",
        )
    )
    assert sync_call(store, pool, "crm", key).status == "synced"
    [activity] = crm.query("SELECT * FROM activities")
    assert activity["recording_url"] == "https://rec.example.com/c2.mp3"
    assert activity["updates"] == 1


def test_missed_call_creates_one_callback_task(store: StateStore, tmp_path: Path) -> None:
    """The built-in rule callback-missed: due +1 business hour; with no calendar configured the
    centre is always open, so that is one hour after the call ended."""
    pool, crm = make_pool(tmp_path)
    key = add_call(store, "c3", "+14155550100", CallOutcome.MISSED)
    result = sync_call(store, pool, "crm", key)
    assert list(result.tasks) == ["callback-missed"]
    store.ledger_set("crm", key, version="forced-resync")  # pretend the call changed
    sync_call(store, pool, "crm", key)
    [task] = crm.query("SELECT * FROM tasks")
    assert task["subject"].startswith("Call back") and task["due_at"].startswith(
        "2026-03-10T15:01:30"
    )


def test_two_calls_from_a_new_number_create_one_customer(store: StateStore, tmp_path: Path) -> None:
    pool, crm = make_pool(tmp_path, on_none="create", cache_ttl=0)
    keys = [add_call(store, f"n{i}", "+14155550142", CallOutcome.COMPLETED) for i in range(4)]
    errors: list[BaseException] = []

    def run(key: str) -> None:
        try:
            sync_call(store, ConnectorPool(pool.config), "crm", key)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(crm.query("SELECT * FROM customers")) == 1
    assert len({a["customer_id"] for a in crm.query("SELECT * FROM activities")}) == 1


def test_many_matches_follow_the_policy(store: StateStore, tmp_path: Path) -> None:
    pool, crm = make_pool(tmp_path, on_many="unresolved")
    for name in ("Front desk", "Jo Shared"):
        crm.add_customer(name=name, phone="415-555-0100", phone_e164=None)
    key = add_call(store, "c5", "+14155550100", CallOutcome.COMPLETED)
    assert sync_call(store, pool, "crm", key).status == "unresolved"
    assert crm.query("SELECT * FROM activities") == []
    pool2, crm2 = make_pool(tmp_path / "b", on_many="most_recent")
    for name in ("Front desk", "Jo Shared"):
        crm2.add_customer(name=name, phone="415-555-0100", phone_e164=None)
    store.redis.flushdb()
    key = add_call(store, "c6", "+14155550100", CallOutcome.COMPLETED)
    assert sync_call(store, pool2, "crm", key).status == "synced"
    assert len(crm2.query("SELECT * FROM activities")) == 1  # never one per match


def test_connector_errors_propagate_and_resume(store: StateStore, tmp_path: Path) -> None:
    pool, crm = make_pool(tmp_path)
    key = add_call(store, "c7", "+14155550100", CallOutcome.MISSED)
    crm.inject_fault("rate_limit", times=1, retry_after=4)
    with pytest.raises(RateLimited) as info:
        sync_call(store, pool, "crm", key)
    assert info.value.retry_after == 4
    assert sync_call(store, pool, "crm", key).status == "synced"
    assert len(crm.query("SELECT * FROM activities")) == 1
    assert len(crm.query("SELECT * FROM tasks")) == 1


def test_the_worker_store_path_stores_merges_and_saves_in_two_scripts(store: StateStore) -> None:
    """``process_event``'s two round trips: the event stored and the call read back (a
    redelivery is reported), then the record saved, the inbox entry done and, for an ended
    call, the figures flag taken exactly once; a record of fewer events never wins."""
    from acw_sync.merge import merge_events
    from acw_sync.status import figures_key

    base = {"provider": "generic", "call_id": "two-trips"}
    started = CallEvent(
        event_id="tt-s", type=EventType.STARTED, occurred_at=T0, started_at=T0,
        customer_number="+14155550100", **base,  # type: ignore[arg-type]
    )  # fmt: skip
    ended = CallEvent(
        event_id="tt-e", type=EventType.ENDED, occurred_at=T0 + timedelta(seconds=60),
        ended_at=T0 + timedelta(seconds=60), outcome=CallOutcome.COMPLETED,
        **base,  # type: ignore[arg-type]
    )  # fmt: skip
    store.inbox_add([started, ended])
    added, events = store.add_event_and_events(ended)
    assert added and [e.event_id for e in events] == ["tt-e"]
    added, events = store.add_event_and_events(started)
    assert added and sorted(e.event_id for e in events) == ["tt-e", "tt-s"]
    assert store.add_event_and_events(started)[0] is False  # a redelivery
    # Events come back equal to what was stored (parsed once, whichever process stored them).
    assert {e.event_id: e for e in events} == {
        e.event_id: e for e in store.events(started.call_key)
    }

    full = merge_events(events)
    flag = figures_key(store, full.key)
    assert store.save_merged(full, "tt-s", figures_key=flag) is True
    assert store.save_merged(full, "tt-e", figures_key=flag) is False  # once per call
    assert store.record(full.key) == full
    assert store.recent_calls() == [full.key]
    assert store.inbox_stale(older_than=-1) == []
    partial = merge_events([ended])
    assert store.save_merged(partial, "tt-e") is False
    assert store.record(full.key) == full  # never regresses


def test_merge_event_saves_the_record_of_exactly_the_stored_events(store: StateStore) -> None:
    """``process_event``'s store path: one round trip when this process knows the call's other
    events, two when another process stored some meanwhile or the event is a redelivery; the
    saved record is always the merge of the events stored, and the figures flag goes once."""
    import acw_sync.store as store_module
    from acw_sync.merge import merge_events
    from acw_sync.status import figures_key

    base = {"provider": "generic", "call_id": "guess"}

    def event(n: int, kind: EventType, **extra: object) -> CallEvent:
        return CallEvent(
            event_id=f"g-{n}", type=kind, occurred_at=T0 + timedelta(seconds=n),
            **base, **extra,  # type: ignore[arg-type]
        )  # fmt: skip

    a = event(0, EventType.STARTED, started_at=T0, customer_number="+14155550100")
    b = event(1, EventType.ANSWERED, answered_at=T0 + timedelta(seconds=1))
    c = event(2, EventType.UPDATED, notes=[Note(text="asked for a quote")])
    d = event(3, EventType.ENDED, ended_at=T0 + timedelta(seconds=3))
    flag = figures_key(store, a.call_key)
    trips: list[str] = []
    execute = store.redis.execute_command

    def counting(*args: object, **kwargs: object) -> object:
        trips.append(str(args[0]))
        return execute(*args, **kwargs)

    store.redis.execute_command = counting  # type: ignore[method-assign]

    def merged(ev: CallEvent) -> tuple[bool, CallRecord, bool, int]:
        trips.clear()
        added, record, due = store.merge_event(ev, figures_key=flag)
        count = len(trips)
        assert record == merge_events(store.events(ev.call_key)) == store.record(ev.call_key)
        return added, record, due, count

    for script in (store._add_and_save, store._save_merged):
        script.sha = store.redis.script_load(script.script)  # a fresh Redis: loaded once
    store_module._calls.clear()
    assert merged(a) == (True, merge_events([a]), False, 1)
    assert merged(b)[3] == 1  # this process stored a: merged before storing
    store_module._calls.clear()  # c and d arrive at another process, which knows nothing
    assert merged(c)[3] == 2
    added, record, due, trips_d = merged(d)
    assert (added, record.ended, due, trips_d) == (True, True, True, 1)
    assert merged(d)[:3] == (False, record, False)  # a redelivery: no figures twice
    store_module._calls.pop(a.call_key)
    store_module._calls[a.call_key] = {"g-0": a.model_dump_json()}  # a stale view of the call
    late = event(4, EventType.UPDATED, tags=["vip"])
    added, record, due, trips_late = merged(late)
    assert added and not due and trips_late == 2 and len(record.event_ids) == 5
    store.redis.execute_command = execute  # type: ignore[method-assign]
