"""The reliability pieces on a real Redis: rate limiter, circuit breaker, guard, parking,
scheduler and reconciler, backoff."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from acw_connector_sandbox import SandboxConnector, SandboxStore
from acw_sync.circuit import CircuitBreaker, CircuitSettings
from acw_sync.config import AppConfig, ConnectorInstance
from acw_sync.errors import QuotaExhausted, RateLimited, RetryableError
from acw_sync.guard import Deferred, Guard, guard_connector, rates_for
from acw_sync.model import CallEvent, CallRecord, CrmObjectRef, CustomerRef
from acw_sync.parking import Parking, Scheduler, reconcile
from acw_sync.ratelimit import Rate, RateLimiter
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool, sync_call
from acw_sync.tasks import MAX_COUNTDOWN, backoff_delay

# -- rate limiter -------------------------------------------------------------------------


def test_gcra_allows_the_burst_then_spaces_requests(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    rate = Rate(100, 1.0)  # bursts of 10, then one every 1/90 s
    granted = [limiter.try_acquire("acct", "*", rate) for _ in range(10)]
    assert granted == [0.0] * 10
    wait = limiter.try_acquire("acct", "*", rate)
    assert 0 < wait <= 0.02
    time.sleep(wait)
    assert limiter.try_acquire("acct", "*", rate) == 0.0
    # another account is not slowed
    assert limiter.try_acquire("other", "*", rate) == 0.0


def test_gcra_never_grants_more_than_the_limit_in_a_window(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    rate = Rate(20, 0.5)
    grants = []
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        if limiter.try_acquire("acct", "*", rate) == 0.0:
            grants.append(time.monotonic())
    for i, t in enumerate(grants):
        in_window = [g for g in grants[i:] if g - t < 0.5]
        assert len(in_window) <= 20
    assert len(grants) <= 20 * 1.2 / 0.5 + 2


def test_429_halves_the_rate_and_it_recovers(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, recover=1.0)
    assert limiter.factor("acct", "*") == 1.0
    assert limiter.penalize("acct", "*") == pytest.approx(0.5)
    assert limiter.penalize("acct", "*") == pytest.approx(0.25, abs=0.02)
    rate = Rate(80, 1.0)
    granted = sum(limiter.try_acquire("acct", "*", rate) == 0.0 for _ in range(80))
    assert granted <= 3  # a burst of a tenth of 80 x ~0.25
    time.sleep(1.1)
    assert limiter.factor("acct", "*") == 1.0


def test_rates_for_uses_declared_limits_then_config(tmp_path: Path) -> None:
    class Limited(SandboxConnector):
        rate_limits: ClassVar[dict[str, tuple[int, float]]] = {"*": (100, 10.0)}

    spec = ConnectorInstance(type="sandbox", options={"path": str(tmp_path / "c.db")})
    connector = Limited("crm", Limited.config_model.model_validate(spec.options))
    assert rates_for(spec, connector) == {"*": Rate(100, 10.0)}
    spec = ConnectorInstance.model_validate(
        {
            "type": "hubspot",
            "rate_limit": {"requests": 190, "per": 10, "operations": {"x": {"requests": 2}}},
        }
    )
    plain = SandboxConnector("crm", SandboxConnector.config_model.model_validate(spec.options))
    rates = rates_for(spec, plain)
    assert rates["*"] == Rate(190, 10.0) and rates["x"] == Rate(2, 1.0)
    assert rates["search"] == Rate(5, 1.0)  # HubSpot's documented search limit
    assert rates_for(spec.model_copy(update={"rate_limit": spec.rate_limit.model_copy(
        update={"enabled": False})}), plain) == {}  # fmt: skip


# -- circuit breaker -------------------------------------------------------------------------


def test_circuit_opens_probes_and_closes(redis_client: redis.Redis) -> None:
    breaker = CircuitBreaker(redis_client)
    cfg = CircuitSettings(failure_threshold=3, reset_timeout=0.3, probe_timeout=5)
    assert breaker.allow("a", cfg) is None
    assert [breaker.record_failure("a", cfg) for _ in range(3)] == ["closed", "closed", "open"]
    retry_at = breaker.allow("a", cfg)
    assert retry_at is not None and retry_at > time.time()
    assert breaker.allow("b", cfg) is None  # other instances are not slowed
    time.sleep(0.35)
    assert breaker.blocked_until("a", cfg) is None
    assert breaker.allow("a", cfg) is None  # this caller is the probe
    assert breaker.allow("a", cfg) is not None  # everyone else waits for the probe
    assert breaker.record_failure("a", cfg) == "open"  # the probe failed: open again
    time.sleep(0.35)
    assert breaker.allow("a", cfg) is None
    assert breaker.record_success("a") == "half_open"
    assert breaker.state("a") == "closed" and breaker.times_opened("a") == 2


def test_success_resets_the_failure_count(redis_client: redis.Redis) -> None:
    breaker = CircuitBreaker(redis_client)
    cfg = CircuitSettings(failure_threshold=2)
    breaker.record_failure("a", cfg)
    breaker.record_success("a")
    assert breaker.record_failure("a", cfg) == "closed"


# -- backoff -------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=40), st.none() | st.floats(0, 10_000))
@settings(max_examples=200)
def test_backoff_is_full_jitter_capped_and_honours_retry_after(
    attempt: int, retry_after: float | None
) -> None:
    delay = backoff_delay(attempt, retry_after)
    assert 0 <= delay <= MAX_COUNTDOWN
    if retry_after is not None:
        assert delay >= min(retry_after, MAX_COUNTDOWN)


# -- guard ---------------------------------------------------------------------------------


class Flaky(SandboxConnector):
    """Fails its first ``fail`` find_customers calls with ``error``."""

    fail = 0
    error: ClassVar[Exception] = RetryableError("connection reset")
    calls = 0

    def find_customers(self, phone: str) -> list[CustomerRef]:
        type(self).calls += 1
        if type(self).calls <= type(self).fail:
            raise type(self).error
        return []


@pytest.fixture
def flaky(tmp_path: Path) -> tuple[Any, ConnectorInstance]:
    Flaky.calls = 0
    spec = ConnectorInstance.model_validate(
        {
            "type": "sandbox",
            "options": {"path": str(tmp_path / "c.db")},
            "circuit": {"failure_threshold": 2, "reset_timeout": 60},
        }
    )
    return Flaky("crm", Flaky.config_model.model_validate(spec.options)), spec


def test_guard_retries_connection_blips_in_process(store: StateStore, flaky: Any) -> None:
    connector, spec = flaky
    Flaky.fail, Flaky.error = 2, RetryableError("connection reset")
    guarded = guard_connector(connector, spec, Guard(store))
    assert guarded.find_customers("+14155550100") == []
    assert Flaky.calls == 3


def test_guard_opens_the_circuit_then_defers(store: StateStore, flaky: Any) -> None:
    connector, spec = flaky
    Flaky.fail, Flaky.error = 100, RetryableError("503", status=503)
    guard = Guard(store)
    guarded = guard_connector(connector, spec, guard)
    for _ in range(2):
        with pytest.raises(RetryableError):
            guarded.find_customers("+14155550100")
    assert guard.circuit.state("crm") == "open"
    calls = Flaky.calls
    with pytest.raises(Deferred) as deferred:
        guarded.find_customers("+14155550100")
    assert deferred.value.why == "circuit" and deferred.value.retry_after
    assert Flaky.calls == calls  # nothing sent while open


def test_guard_429_adapts_the_shared_rate(store: StateStore, flaky: Any) -> None:
    connector, spec = flaky
    Flaky.fail, Flaky.error = 1, RateLimited("429", retry_after=2)
    guard = Guard(store)
    with pytest.raises(RateLimited):
        guard_connector(connector, spec, guard).find_customers("+14155550100")
    assert Flaky.calls == 1  # a 429 is not retried in-process
    assert guard.limiter.factor("crm", "*") == pytest.approx(0.5, abs=0.01)


def test_guard_quota_pauses_the_instance(store: StateStore, flaky: Any) -> None:
    connector, spec = flaky
    Flaky.fail, Flaky.error = 1, QuotaExhausted("REQUEST_LIMIT_EXCEEDED", retry_after=3600)
    guard = Guard(store)
    guarded = guard_connector(connector, spec, guard)
    with pytest.raises(QuotaExhausted):
        guarded.find_customers("+14155550100")
    until = guard.parking.paused_until("crm")
    assert until is not None and until > time.time() + 3500
    with pytest.raises(Deferred) as deferred:
        guarded.find_customers("+14155550100")
    assert deferred.value.why == "paused"


# -- parking, scheduler, reconciler ----------------------------------------------------------


def test_parking_and_scheduler_reenqueue_when_due(store: StateStore) -> None:
    parking = Parking(store)
    now = time.time()
    parking.park("crm", "generic:1", now - 1, first_seen=now - 100, attempt=2, reason="circuit")
    parking.park("crm", "generic:2", now + 3600, first_seen=now, attempt=0, reason="quota")
    enqueued: list[tuple[str, str, float, int]] = []
    scheduler = Scheduler(store, AppConfig(), lambda *a: enqueued.append(a))
    other = Scheduler(store, AppConfig(), lambda *a: enqueued.append(a))
    assert scheduler.tick() == 1
    assert other.tick() == 0  # one scheduler at a time
    assert enqueued == [("crm", "generic:1", pytest.approx(now - 100), 2)]
    assert [e.call_key for e in parking.entries()] == ["generic:2"]
    assert store.pending_since("crm", "generic:1") is not None


def _ended_call(store: StateStore, call_id: str, ago: float) -> CallRecord:
    from acw_sync.merge import merge_events

    ended = datetime.now(UTC) - timedelta(seconds=ago)
    event = CallEvent.model_validate(
        {
            "event_id": f"{call_id}-e",
            "provider": "generic",
            "call_id": call_id,
            "type": "ended",
            "occurred_at": ended,
            "ended_at": ended,
            "customer_number": "+14155550100",
        }
    )
    store.add_event(event)
    record = merge_events(store.events(event.call_key))
    store.save_record(record)
    return record


def test_reconciler_reenqueues_unsynced_calls_only(store: StateStore, tmp_path: Path) -> None:
    config = AppConfig(
        connectors={"crm": ConnectorInstance(type="sandbox", options={"path": str(tmp_path)})}
    )
    lost = _ended_call(store, "lost", ago=900)
    _ended_call(store, "fresh", ago=10)  # too recent: its sync may still be queued
    dead = _ended_call(store, "dead", ago=900)
    store.ledger_set("crm", dead.key, state="dead")
    stuck = _ended_call(store, "stuck", ago=900)
    store.redis.set(store.k("pending", "crm", stuck.key), repr(time.time() - 2000))
    enqueued: list[Any] = []
    n = reconcile(store, config, lambda *a: enqueued.append(a), stale_after=600, window=3600)
    assert n == 2 and sorted(e[1] for e in enqueued) == [lost.key, stuck.key]
    # a second pass within stale_after does not enqueue them again
    assert reconcile(store, config, lambda *a: None, stale_after=600, window=3600) == 0


def test_sync_goes_through_the_guard(store: StateStore, tmp_path: Path) -> None:
    class Counting(SandboxConnector):
        seen: ClassVar[list[str]] = []

        def upsert_call(self, call: CallRecord, **kw: Any) -> CrmObjectRef:
            Counting.seen.append("upsert_call")
            return super().upsert_call(call, **kw)

        def find_customers(self, phone: str) -> list[CustomerRef]:
            Counting.seen.append("find_customers")
            return super().find_customers(phone)

    spec = ConnectorInstance(type="sandbox", options={"path": str(tmp_path / "s.db")})
    pool = ConnectorPool(AppConfig(connectors={"crm": spec}))
    pool._made["crm"] = Counting("crm", Counting.config_model.model_validate(spec.options))
    record = _ended_call(store, "g1", ago=5)
    guard = Guard(store)
    guard.circuit.record_failure("crm", CircuitSettings(failure_threshold=1))
    with pytest.raises(Deferred):
        sync_call(store, pool, "crm", record.key, guard=guard)
    assert Counting.seen == []
    guard.circuit.record_success("crm")
    assert sync_call(store, pool, "crm", record.key, guard=guard).status == "synced"
    assert Counting.seen == ["find_customers", "upsert_call"]
    SandboxStore(tmp_path / "s.db").close()


# -- ingest claims ---------------------------------------------------------------------------


def test_half_done_delivery_is_accepted_again_not_a_duplicate(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis went away between the claim and the publish (the claim could not be released):
    the platform's retry must be published, not answered "duplicate"."""
    from starlette.testclient import TestClient

    from acw_sync.server import Ingest, create_app
    from tests.helpers import SECRET, generic_body, signed_headers

    published: list[CallEvent] = []
    broker_down = True

    def publish(event: CallEvent) -> None:
        if broker_down:
            raise ConnectionError("broker unreachable")
        published.append(event)

    def release_fails(*_: Any) -> None:
        raise redis.ConnectionError("redis went away")

    monkeypatch.setattr(store, "release", release_fails)
    ingest = Ingest.from_config(
        AppConfig(providers={"generic": {"secret": SECRET}}), store, publish, lambda: True
    )
    client = TestClient(create_app(ingest))
    body = generic_body("half-done", customer_number="+14155550100")
    first = client.post("/webhooks/generic", content=body, headers=signed_headers(body, "hd-1"))
    assert first.status_code == 503
    broker_down = False
    again = client.post("/webhooks/generic", content=body, headers=signed_headers(body, "hd-1"))
    assert again.status_code == 202 and [e.event_id for e in published] == ["hd-1"]
    third = client.post("/webhooks/generic", content=body, headers=signed_headers(body, "hd-1"))
    assert third.status_code == 200 and len(published) == 1


def test_hubspot_connector_gets_the_shared_limiter_per_request(store: StateStore) -> None:
    from pydantic import SecretStr

    from acw_connector_hubspot import HubSpotConnector
    from acw_connector_hubspot.config import HubSpotConfig
    from acw_sync.guard import SharedRequestLimiter
    from tests.emulators.hubspot import HubSpotEmulator

    emulator = HubSpotEmulator().start()
    try:
        emulator.add_private_app_token("pat-test")
        config = HubSpotConfig(access_token=SecretStr("pat-test"), host=emulator.url, tier=190)
        connector = HubSpotConnector("hs", config)
        spec = ConnectorInstance(type="hubspot")
        assert rates_for(spec, connector) == {"*": Rate(190, 10.0), "search": Rate(4, 1.0)}
        guarded = guard_connector(connector, spec, Guard(store))
        assert guarded.find_customers("+14155550100") == []
        assert isinstance(connector.client.limiter, SharedRequestLimiter)
        assert store.redis.exists("acw:rate:hs:search")
    finally:
        emulator.stop()


def test_scheduler_never_removes_a_call_parked_again_meanwhile(store: StateStore) -> None:
    parking = Parking(store)
    now = time.time()
    parking.park("crm", "generic:r", now - 1, first_seen=now, attempt=0, reason="circuit")

    def enqueue(instance: str, call_key: str, first_seen: float, attempt: int) -> None:
        # the sync runs at once, finds the circuit still open and parks the call again
        parking.park(instance, call_key, now + 60, first_seen=first_seen, attempt=0, reason="c")

    assert Scheduler(store, AppConfig(), enqueue).tick() == 1
    [again] = parking.entries()
    assert again.call_key == "generic:r" and again.due == pytest.approx(now + 60)
    [stale] = [again]
    parking.park("crm", "generic:r", now + 90, first_seen=now, attempt=0, reason="c")
    assert not parking.take(stale)  # what was read is not what is stored any more


def test_inbox_republishes_accepted_events_never_stored(store: StateStore) -> None:
    events = [
        CallEvent.model_validate(
            {"event_id": f"in-{i}", "provider": "generic", "call_id": f"c{i}", "type": "ended",
             "occurred_at": datetime.now(UTC)}
        )
        for i in range(3)
    ]  # fmt: skip
    store.inbox_add(events)
    store.add_event(events[0])  # stored, but the worker died before clearing its inbox entry
    store.inbox_done(events[1].event_id)  # processed normally
    assert store.inbox_stale(older_than=60) == []
    republished: list[str] = []
    scheduler = Scheduler(
        store, AppConfig(), lambda *a: None, republish=lambda e: republished.append(e.event_id)
    )
    scheduler.stale_after = 0.0
    assert scheduler.redeliver_lost_events() == 1 and republished == ["in-2"]
    assert store.redis.zcard("acw:inbox:index") == 1  # in-2 stays until a worker stores it
    store.inbox_done("in-2")
    assert store.redis.hlen("acw:inbox") == 0


def test_shared_limiter_waits_are_counted_in_metrics(store: StateStore) -> None:
    from acw_sync import metrics

    def waits() -> float:
        value = metrics.REGISTRY.get_sample_value(
            "acw_crm_rate_limit_waits_total", {"connector": "metered"}
        )
        return value or 0.0

    guard = Guard(store)
    before = waits()
    rate = Rate(20, 1.0)  # a burst of 2, then one every 50 ms
    waited = sum(guard.take("metered", "*", rate) for _ in range(6))
    assert waited > 0
    assert waits() - before >= 1
