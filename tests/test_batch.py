"""Batched syncs (acw_sync.batch) against the HubSpot and Salesforce emulators, on a real Redis.

No Celery here: the flush is called directly, as the ``sync_batch`` task does.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acw_sync import batch
from acw_sync.config import AppConfig
from acw_sync.model import CallEvent
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool
from tests.connectors.salesforce_harness import sf_connector
from tests.emulators.hubspot import HubSpotEmulator, hs_emulator
from tests.emulators.salesforce import SalesforceEmulator, sf_ca, sf_emulator

__all__ = ["hs_emulator", "sf_ca", "sf_emulator"]

TOKEN = "pat-na1-emulated-secret-token"


def _ended(n: int, **data: Any) -> CallEvent:
    t0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC) + timedelta(minutes=n)
    fields: dict[str, Any] = {
        "event_id": f"ev-{n}",
        "provider": "generic",
        "call_id": f"call-{n}",
        "type": "ended",
        "occurred_at": t0 + timedelta(seconds=90),
        "direction": "inbound",
        "customer_number": f"+1415555{n:04d}",
        "started_at": t0,
        "answered_at": t0 + timedelta(seconds=3),
        "ended_at": t0 + timedelta(seconds=90),
        "outcome": "completed",
    }
    fields.update(data)
    return CallEvent.model_validate(fields)


def _pool(emulator: HubSpotEmulator, **instance: Any) -> ConnectorPool:
    instance.setdefault("batch_window", 0.3)
    emulator.add_private_app_token(TOKEN)
    config = AppConfig(
        providers={"generic": {"secret": "whsec_" + "a" * 32}},
        connectors={
            "hs": {
                "type": "hubspot",
                "options": {"access_token": TOKEN, "host": emulator.url, "timeout": 5},
                **instance,
            }
        },
    )
    return ConnectorPool(config)


def _queue(store: StateStore, *events: CallEvent) -> None:
    for event in events:
        store.add_event(event)
        batch.queue_call(store, "hs", event.call_key, 0.3)


def test_a_batch_is_one_search_and_one_write(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    for n in range(5):
        hs_emulator.add_object("contacts", {"phone": f"+1415555{n:04d}", "firstname": f"C{n}"})
    pool = _pool(hs_emulator)
    assert batch.batch_window(pool, "hs") == 0.3
    _queue(store, *(_ended(n) for n in range(5)))
    before = len(hs_emulator.log)
    outcome = batch.flush(store, pool, "hs")
    assert sorted(outcome.synced) == [f"generic:call-{n}" for n in range(5)]
    assert outcome.single == [] and outcome.error is None and not outcome.more
    paths = [p for _m, p, _s in hs_emulator.log[before:]]
    assert sum("/search" in p for p in paths) == 1  # five numbers (all on a contact), one search
    assert sum("/batch/create" in p for p in paths) == 1
    assert len(paths) <= 3, paths  # + the portal's dispositions, read once
    for n in range(5):
        ledger = store.ledger("hs", f"generic:call-{n}")
        assert ledger.state == "synced" and ledger.activity is not None
    [row] = hs_emulator.find("calls", "hs_call_external_id", "generic:call-1")
    assert hs_emulator.associations_of("calls", row["id"], "contacts")
    # The same calls again: nothing to write, nothing sent.
    _queue(store, *(_ended(n) for n in range(5)))
    sent = len(hs_emulator.log)
    assert len(batch.flush(store, pool, "hs").synced) == 5
    assert len(hs_emulator.log) == sent


def test_numbers_are_cached_between_batches(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    hs_emulator.add_object("contacts", {"phone": "+14155550001"})
    pool = _pool(hs_emulator)
    _queue(store, _ended(1))
    batch.flush(store, pool, "hs")
    _queue(store, _ended(2, customer_number="+14155550001"))
    searches = hs_emulator.count("POST", "/search")
    assert batch.flush(store, pool, "hs").synced == ["generic:call-2"]
    assert hs_emulator.count("POST", "/search") == searches


def test_a_rejected_record_goes_alone_and_the_others_are_written(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    pool = _pool(hs_emulator, owners={"table": {"agent-x": "999999"}})
    bad = _ended(2, agent={"id": "agent-x", "name": "X"})  # an owner id HubSpot does not know
    _queue(store, _ended(1), bad, _ended(3))
    outcome = batch.flush(store, pool, "hs")
    assert outcome.single == ["generic:call-2"]
    assert sorted(outcome.synced) == ["generic:call-1", "generic:call-3"]
    assert store.ledger("hs", "generic:call-2").activity is None


def test_a_retried_batch_reconciles_instead_of_duplicating(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    pool = _pool(hs_emulator)
    _queue(store, _ended(1), _ended(2))
    batch.flush(store, pool, "hs")
    # The ledger lost its answer (a worker killed after the CRM write): the retry must find it.
    store.redis.hdel(store.k("ledger", "hs", "generic:call-1"), "activity", "version")
    _queue(store, _ended(1))
    assert batch.flush(store, pool, "hs").synced == ["generic:call-1"]
    assert len(hs_emulator.find("calls", "hs_call_external_id", "generic:call-1")) == 1


def test_a_busy_call_goes_to_the_single_path(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    pool = _pool(hs_emulator)
    _queue(store, _ended(1), _ended(2))
    with store.lock("sync:hs:generic:call-1"):
        outcome = batch.flush(store, pool, "hs")
    assert outcome.single == ["generic:call-1"] and outcome.synced == ["generic:call-2"]


def test_only_one_flush_is_scheduled_per_window(store: StateStore) -> None:
    assert batch.queue_call(store, "hs", "generic:a", 0.3) is True
    assert batch.queue_call(store, "hs", "generic:b", 0.3) is False
    assert batch.queue_call(store, "hs", "generic:a", 0.3) is False


@pytest.mark.parametrize("window", [0.0])
def test_window_zero_turns_batching_off(hs_emulator: HubSpotEmulator, window: float) -> None:
    assert batch.batch_window(_pool(hs_emulator, batch_window=window), "hs") == 0.0


def test_hubspot_many_numbers_find_what_one_at_a_time_finds(hs_emulator: HubSpotEmulator) -> None:
    for n in range(60):
        hs_emulator.add_object("contacts", {"phone": f"+1415555{n:04d}", "firstname": f"C{n}"})
    hs_emulator.add_object("contacts", {"mobilephone": "(415) 555-0007", "firstname": "M"})
    connector = _pool(hs_emulator).get("hs")
    phones = [f"+1415555{n:04d}" for n in range(60)] + ["+14155559999"]
    searches = hs_emulator.count("POST", "/search")
    many = connector.find_customers_many(phones)
    assert hs_emulator.count("POST", "/search") - searches == 2  # 50 numbers per search
    for phone in ["+14155550000", "+14155550007", "+14155550059", "+14155559999"]:
        assert [c.id for c in many[phone]] == [c.id for c in connector.find_customers(phone)]
    assert len(many["+14155550007"]) == 2 and many["+14155559999"] == []


def test_salesforce_many_numbers_find_what_one_at_a_time_finds(
    sf_emulator: SalesforceEmulator,
) -> None:
    org = sf_emulator.org
    for n in range(40):
        org.insert("Contact", {"LastName": f"C{n}", "Phone": f"(415) 555-{n:04d}"})
    org.insert("Lead", {"LastName": "L", "Company": "X", "MobilePhone": "+14155550003"})
    connector = sf_connector(sf_emulator)
    phones = [f"+1415555{n:04d}" for n in range(40)] + ["+14155559999"]
    before = len(org.log)
    many = connector.find_customers_many(phones)
    data = [p for _m, p in org.log[before:] if p.startswith("/services/data/")]
    assert [p.rsplit("/", 1)[-1] for p in data] == ["composite"]  # 3 queries, one API call
    for phone in phones:
        assert [c.id for c in many[phone]] == [c.id for c in connector.find_customers(phone)]
    assert [c.object_type for c in many["+14155550003"]] == ["Contact", "Lead"]


def test_a_short_batch_waits_while_calls_keep_arriving(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    pool = _pool(hs_emulator)
    _queue(store, _ended(1), _ended(2))
    waiting = batch.flush(store, pool, "hs", window=0.3)
    assert 0 < waiting.postpone <= 0.3 and waiting.synced == []
    # Nothing new for a whole window: the batch goes, however short.
    members = store.k("batch", "hs")
    store.redis.zadd(members, dict.fromkeys(store.redis.zrange(members, 0, -1), time.time() - 0.4))
    assert len(batch.flush(store, pool, "hs", window=0.3).synced) == 2
    # Calls still arriving, but the oldest has waited ten windows: it goes too.
    _queue(store, _ended(3))
    store.redis.zadd(members, {"generic:call-3": time.time() - 3.1})
    _queue(store, _ended(4))
    assert len(batch.flush(store, pool, "hs", window=0.3).synced) == 2


def test_salesforce_best_candidate_only_skips_lower_objects(
    sf_emulator: SalesforceEmulator,
) -> None:
    org = sf_emulator.org
    org.insert("Contact", {"LastName": "C", "Phone": "+14155550001"})
    org.insert("Lead", {"LastName": "L", "Company": "X", "Phone": "+14155550001"})
    connector = sf_connector(sf_emulator)
    connector.find_customers_many(["+14155550009"])  # logs in
    before = len(org.log)
    best = connector.find_customers_many(["+14155550001"], all_matches=False)
    assert [c.object_type for c in best["+14155550001"]] == ["Contact"]
    assert len(org.log) - before == 1  # Contact matched: Lead and Account not queried


def test_salesforce_follow_ups_in_one_collection_each_once(
    sf_emulator: SalesforceEmulator,
) -> None:
    from acw_sync.connector import TaskWrite
    from acw_sync.testing import sample_call
    from acw_sync.testing.conformance import sample_followup

    org = sf_emulator.org
    connector = sf_connector(sf_emulator)
    tasks = [TaskWrite(sample_followup(sample_call(), rule=f"r{n}")) for n in range(3)]
    connector.find_customers_many(["+14155550009"])  # logs in
    before = len(org.log)
    first = connector.create_tasks(tasks)
    assert len(org.log) - before == 2  # one key query, one collection
    assert all(getattr(r, "created", False) for r in first)
    again = sf_connector(sf_emulator).create_tasks(tasks)  # another worker, no memory
    assert [getattr(r, "id", None) for r in again] == [getattr(r, "id", None) for r in first]
    assert not any(getattr(r, "created", True) for r in again)
    assert len(org.find("Task")) == 3
    # Keys the core never sent before (fresh): created without the key query.
    fresh = [TaskWrite(sample_followup(sample_call(), rule=f"f{n}"), fresh=True) for n in range(3)]
    before = len(org.log)
    assert all(getattr(r, "created", False) for r in connector.create_tasks(fresh))
    assert len(org.log) - before == 1  # the collection only
    assert len(org.find("Task")) == 6


def test_at_most_batch_lanes_flushes_per_instance_at_a_time(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    pool = _pool(hs_emulator)
    assert pool.instance("hs").batch_lanes == 2
    _queue(store, _ended(1))
    with store.lock("batch:hs"), store.lock("batch:hs:1"):
        busy = batch.flush(store, pool, "hs")
    assert busy.postpone > 0 and busy.synced == []
    with store.lock("batch:hs"):  # one lane busy: the other flushes
        assert batch.flush(store, pool, "hs").synced == ["generic:call-1"]


def test_a_full_batch_starts_the_next_before_it_writes(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    pool = _pool(hs_emulator)
    _queue(store, *(_ended(n) for n in range(101)))
    started: list[int] = []
    outcome = batch.flush(store, pool, "hs", on_more=lambda: started.append(len(hs_emulator.log)))
    assert len(outcome.synced) == 100 and not outcome.more
    assert started and started[0] < len(hs_emulator.log)  # before any request of this flush
    assert batch.flush(store, pool, "hs").synced == ["generic:call-100"]


@pytest.mark.parametrize(
    ("stored", "region"),
    [
        ("(415) 555-0100", None),
        ("+1 415-555-0100", None),
        ("4155550100", "US"),
        ("020 7946 0958", None),
        ("+44 20 7946 0958", "US"),
        ("not a number", None),
        ("", None),
    ],
)
def test_matching_numbers_agrees_with_same_number(stored: str, region: str | None) -> None:
    from acw_sync.phone import by_region, matching_numbers, same_number

    phones = ["+14155550100", "+442079460958", "+14155550199"]
    expected = [p for p in phones if same_number(stored, p, region)]
    assert sorted(matching_numbers(stored, by_region(phones, region))) == sorted(expected)


def test_hubspot_best_candidate_searches_mobile_only_for_misses(
    hs_emulator: HubSpotEmulator,
) -> None:
    for n in range(90):
        hs_emulator.add_object("contacts", {"phone": f"+1415555{n:04d}"})
    hs_emulator.add_object("contacts", {"mobilephone": "(415) 555-0095", "firstname": "M"})
    connector = _pool(hs_emulator).get("hs")
    phones = [f"+1415555{n:04d}" for n in range(96)]
    searches = hs_emulator.count("POST", "/search")
    best = connector.find_customers_many(phones, all_matches=False)
    assert hs_emulator.count("POST", "/search") - searches == 2  # phones, then 6 misses' mobiles
    for phone in ["+14155550000", "+14155550089", "+14155550095", "+14155550093"]:
        assert [c.id for c in best[phone]][:1] == [c.id for c in connector.find_customers(phone)][
            :1
        ]


def _activities(emulator: HubSpotEmulator, key: str) -> int:
    return len(emulator.find("calls", "hs_call_external_id", key))


def test_a_batch_write_that_timed_out_is_reconciled_not_created_again(
    store: StateStore, hs_emulator: HubSpotEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The duplicate the HubSpot fault test found with batching on.

    A batch create that times out is still being applied by HubSpot. The batch was retried
    after its short backoff: its keys were no longer fresh, so the connector searched for them
    first, but the slow write had not landed yet, found nothing, and created every call again.
    """
    from acw_sync import guard

    monkeypatch.setattr(guard, "IN_DOUBT_DELAY", 2.0)
    pool = _pool(hs_emulator)
    pool.config.connectors["hs"].options["timeout"] = 0.5
    keys = ["generic:call-1", "generic:call-2"]
    _queue(store, _ended(1), _ended(2))
    hs_emulator.inject("slow", 1, path="/calls/batch/create", delay=1.5)
    first = batch.flush(store, pool, "hs")
    assert first.error is not None and guard.in_doubt(first.error)
    assert sorted(first.failed) == keys
    # The retry, as soon as the backoff allows (sync_batch: requeue, flush again).
    batch.requeue(store, "hs", first.failed)
    again = batch.flush(store, pool, "hs")
    assert again.synced == [] and sorted(again.waiting) == keys  # in doubt: not sent again
    assert all(0 < wait <= 2.0 for wait in again.waiting.values())
    time.sleep(2.1)  # the slow write has landed; the doubt is over
    assert [_activities(hs_emulator, k) for k in keys] == [1, 1]
    batch.requeue(store, "hs", list(again.waiting))
    creates = hs_emulator.count("POST", "/batch/create")
    last = batch.flush(store, pool, "hs")
    assert sorted(last.synced) == keys
    assert hs_emulator.count("POST", "/batch/create") == creates  # found by key, updated
    assert [_activities(hs_emulator, k) for k in keys] == [1, 1]
    assert all(store.ledger("hs", k).activity is not None for k in keys)


def test_a_paused_instance_or_an_open_circuit_sends_nothing(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    from acw_sync.circuit import CircuitSettings
    from acw_sync.guard import Deferred, Guard

    pool = _pool(hs_emulator)
    guard = Guard(store)
    _queue(store, _ended(1), _ended(2))
    sent = len(hs_emulator.log)
    guard.parking.pause("hs", time.time() + 60)
    paused = batch.flush(store, pool, "hs", guard=guard)
    assert isinstance(paused.error, Deferred) and paused.error.why == "paused"
    assert sorted(paused.failed) == ["generic:call-1", "generic:call-2"]
    assert len(hs_emulator.log) == sent
    guard.parking.resume("hs")
    settings = CircuitSettings(failure_threshold=1, reset_timeout=60)
    guard.circuit.record_failure("hs", settings)
    batch.requeue(store, "hs", paused.failed)
    blocked = batch.flush(store, pool, "hs", guard=guard)
    assert isinstance(blocked.error, Deferred) and blocked.error.why == "circuit"
    assert len(hs_emulator.log) == sent
    # Nothing was spent: the calls sync once the circuit lets requests through again.
    store.redis.delete(store.k("circuit", "hs"))
    batch.requeue(store, "hs", blocked.failed)
    assert len(batch.flush(store, pool, "hs", guard=guard).synced) == 2


def test_a_flush_counts_every_request_in_the_shared_limiter(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    from acw_sync.guard import Guard, SharedRequestLimiter

    pool = _pool(hs_emulator)
    _queue(store, _ended(1), _ended(2))
    assert len(batch.flush(store, pool, "hs", guard=Guard(store)).synced) == 2
    assert isinstance(pool.get("hs").client.limiter, SharedRequestLimiter)  # type: ignore[attr-defined]
    assert store.redis.exists(store.k("rate", "hs", "*"))


def test_a_batch_write_answered_5xx_is_in_doubt_too(
    store: StateStore, hs_emulator: HubSpotEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acw_sync import guard

    monkeypatch.setattr(guard, "IN_DOUBT_DELAY", 5.0)
    pool = _pool(hs_emulator)
    _queue(store, _ended(1))
    hs_emulator.inject("server_error", 1, path="/calls/batch/create", status=504)
    failed = batch.flush(store, pool, "hs")
    assert failed.error is not None and guard.in_doubt(failed.error)
    assert guard.doubt_left(store, "hs", ["generic:call-1"])["generic:call-1"] > 4
    # The single path honours the same mark (sync_call waits it out before its lock).
    batch.requeue(store, "hs", failed.failed)
    assert list(batch.flush(store, pool, "hs").waiting) == ["generic:call-1"]


def test_the_pipelined_ledger_reads_as_the_store_reads_it(store: StateStore) -> None:
    from acw_sync.batch_state import LedgerWrites, ledger_from
    from acw_sync.model import CrmObjectRef, CustomerRef

    activity = CrmObjectRef(object_type="call", id="7", created=True)
    customer = CustomerRef(object_type="contact", id="9", name="Ana")
    store.ledger_set("hs", "generic:a", customer=customer, attempted=1)
    writes = LedgerWrites(store, "hs")
    writes.set("generic:b", customer=customer, attempted=1)
    for key in ("generic:a", "generic:b"):
        writes.set(key, activity=activity, version="v1", state="synced", synced_at=12.5)
        writes.set(key, **{"task:r1": activity})
    writes.send()
    store.ledger_set("hs", "generic:c", customer=None)
    writes.set("generic:d", customer=None)
    writes.send()
    for a, b in (("generic:a", "generic:b"), ("generic:c", "generic:d")):
        raw = store.redis.hgetall(store.k("ledger", "hs", b))
        assert ledger_from(raw) == store.ledger("hs", a) == store.ledger("hs", b)
        assert store.redis.ttl(store.k("ledger", "hs", b)) > 0


def test_a_failed_search_inside_a_batch_write_is_retried_not_in_doubt(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    from acw_sync.guard import in_doubt

    pool = _pool(hs_emulator)
    for n in (1, 2):  # an earlier attempt: the batch reconciles by key (a search) first
        store.ledger_set("hs", f"generic:call-{n}", attempted=1)
    _queue(store, _ended(1))
    hs_emulator.inject("server_error", 1, path="/calls/search", status=502)
    assert batch.flush(store, pool, "hs").synced == ["generic:call-1"]  # retried in-process
    _queue(store, _ended(2))
    hs_emulator.inject("server_error", 3, path="/calls/search", status=502)  # 1 + 2 retries
    failed = batch.flush(store, pool, "hs")
    assert failed.error is not None and failed.error.details["request"] == "search"
    assert not in_doubt(failed.error) and failed.failed == ["generic:call-2"]


def test_a_flush_is_taken_before_the_events_already_queued(
    redis_client: Any, redis_url: str
) -> None:
    """In a burst thousands of events are queued: a flush behind them would wait for all."""
    import json

    from acw_sync.publish import RedisPublisher
    from acw_sync.tasks import configure_broker, schedule_flush

    configure_broker(redis_url)  # the app's connection pool stays open, as in test_publish
    publisher = RedisPublisher(redis_url)
    try:
        # One message per ingest batch (process_event for a lone event, process_events else).
        for n in range(50):
            publisher([_ended(n)] if n % 2 else [_ended(n), _ended(1000 + n)])
        schedule_flush("hs", countdown=0.3)
        for n in range(50, 60):
            publisher([_ended(n)])
        queued = redis_client.llen("acw")
        first = json.loads(redis_client.rpop("acw"))  # what a worker takes next (BRPOP)
    finally:
        publisher.close()
    assert queued == 61
    assert first["headers"]["task"] == "acw.sync_batch" and first["headers"]["eta"]


def _live(emulator: HubSpotEmulator, object_type: str) -> int:
    with emulator.lock:
        return sum(not o.archived for o in emulator.objects[object_type].values())


def _missed(n: int) -> CallEvent:
    return _ended(n, outcome="missed", answered_at=None)


def test_follow_ups_of_a_batch_are_created_without_a_key_search_once(
    store: StateStore, hs_emulator: HubSpotEmulator
) -> None:
    pool = _pool(hs_emulator)
    _queue(store, _missed(1), _missed(2))
    outcome = batch.flush(store, pool, "hs")
    assert sorted(outcome.synced) == ["generic:call-1", "generic:call-2"]
    assert hs_emulator.count("POST", "/tasks/search") == 0  # fresh keys: nothing to find
    assert hs_emulator.count("POST", "/tasks/batch/create") == 1
    assert _live(hs_emulator, "tasks") == 2
    assert all(store.ledger("hs", f"generic:call-{n}").tasks for n in (1, 2))


def test_a_follow_up_batch_that_timed_out_is_reconciled_not_created_again(
    store: StateStore, hs_emulator: HubSpotEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task batch create whose answer was lost: the keys are no longer fresh, so once the
    doubt is over the connector searches for them and finds what landed."""
    from acw_sync import guard

    monkeypatch.setattr(guard, "IN_DOUBT_DELAY", 2.0)
    pool = _pool(hs_emulator)
    pool.config.connectors["hs"].options["timeout"] = 0.5
    keys = ["generic:call-1", "generic:call-2"]
    _queue(store, _missed(1), _missed(2))
    hs_emulator.inject("slow", 1, path="/tasks/batch/create", delay=1.5)
    first = batch.flush(store, pool, "hs")
    assert first.error is not None and guard.in_doubt(first.error)
    time.sleep(2.1)  # the slow write has landed; the doubt is over
    tasks_made = _live(hs_emulator, "tasks")
    assert tasks_made == 2
    batch.requeue(store, "hs", first.failed)
    last = batch.flush(store, pool, "hs")
    assert sorted(last.synced) == keys
    assert hs_emulator.count("POST", "/tasks/search") >= 1  # not fresh: looked up by key
    assert _live(hs_emulator, "tasks") == tasks_made  # found, not created again
    assert all(store.ledger("hs", k).tasks for k in keys)
