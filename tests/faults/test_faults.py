"""Fault injection with real processes: nothing lost, nothing twice.

Each test starts `acw-sync serve`, worker processes and the sandbox CRM, sends a stream of
signed calls while a fault happens, then audits the invariant (see ``harness``) and prints
the counts. CI runs 200 calls per test; the ``slow`` variants (``make faults``) run 1,000 and
the full one-minute CRM outage.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from acw_sync.embedded import EmbeddedRedis
from tests.faults.harness import (
    INSTANCE,
    audit,
    diagnose,
    kill_random_child,
    make_calls,
    report,
    send_stream,
    settle,
    start_stack,
)

pytestmark = pytest.mark.timeout(600)

SIZES = [
    pytest.param(200, id="ci"),
    pytest.param(1000, id="long", marks=pytest.mark.slow),
]


def _deliveries(calls: list, times: int = 1, shuffle: bool = False, seed: int = 7) -> list:
    out = [d for call in calls for d in call.bodies for _ in range(times)]
    if shuffle:
        random.Random(seed).shuffle(out)
    return out


@pytest.mark.parametrize("n", SIZES)
def test_worker_sigkill_mid_sync(n: int, redis_url: str, tmp_path: Path) -> None:
    """Pool children SIGKILLed every few deliveries, a whole worker killed and replaced, and
    the CRM itself killing the worker right after 2 % of its writes (the instant between the
    CRM write and the ledger write)."""
    stack = start_stack(tmp_path, redis_url, workers=2)
    rng = random.Random(1)
    kills = {"children": 0, "workers": 0}
    try:
        stack.crm.set_chaos(crash_after_write=0.02)
        calls = make_calls("kill", n)
        t0 = time.monotonic()

        def fault(i: int) -> None:
            if i and i % 15 == 0:
                time.sleep(0.3)  # let syncs be in flight
                kills["children"] += kill_random_child(stack, rng)
            if i == n // 2:
                victim = stack.live_workers()[0]
                os.killpg(victim.pid, signal.SIGKILL)
                kills["workers"] += 1
                stack.start_worker()

        send_stream(stack, _deliveries(calls), during=fault)
        counts = settle(stack, calls, timeout=150)
        requests_made = stack.crm.query("SELECT COUNT(*) AS n FROM requests")[0]["n"]
        report(
            "sigkill", counts, time.monotonic() - t0, f"kills={kills} crm_requests={requests_made}"
        )
        assert counts.ok, f"{counts.line()}\n{diagnose(stack, counts)}\n{stack.logs()}"
    finally:
        stack.stop()


@pytest.mark.parametrize("n", SIZES)
def test_redis_restart_mid_stream(n: int, tmp_path: Path) -> None:
    """Our own Redis (AOF everysec) stopped and started again on the same port mid-stream."""
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    stack = start_stack(tmp_path, url, workers=2)
    restarts = 0
    try:
        calls = make_calls("redis", n)
        t0 = time.monotonic()

        def fault(i: int) -> None:
            nonlocal restarts
            if i in (n // 3, 2 * n // 3):
                server.stop()
                time.sleep(2.0)
                server.start(port=port)
                restarts += 1

        send_stream(stack, _deliveries(calls), during=fault)
        counts = settle(stack, calls, timeout=150)
        report("redis-restart", counts, time.monotonic() - t0, f"restarts={restarts}")
        assert counts.ok, f"{counts.line()}\n{diagnose(stack, counts)}\n{stack.logs()}"
    finally:
        stack.stop()
        server.stop()


@pytest.mark.parametrize("n", SIZES)
def test_crm_failing_30_percent(n: int, redis_url: str, tmp_path: Path) -> None:
    """30 % of CRM requests fail (503, 429 with Retry-After, timeouts), one session expires,
    and 3 % of writes commit but answer a timeout."""
    stack = start_stack(tmp_path, redis_url, workers=2, max_attempts=12, threshold=20)
    try:
        stack.crm.set_chaos(
            rate=0.3,
            weights={"unavailable": 1, "rate_limit": 1, "timeout": 1},
            retry_after=1.0,
            timeout=0.3,
            lost_response=0.03,
        )
        stack.crm.inject_fault("expired_session", 1)
        calls = make_calls("flaky", n)
        t0 = time.monotonic()
        send_stream(stack, _deliveries(calls))
        counts = settle(stack, calls, timeout=150)
        requests_made = stack.crm.query("SELECT COUNT(*) AS n FROM requests")[0]["n"]
        report("crm-30pct", counts, time.monotonic() - t0, f"crm_requests={requests_made}")
        assert counts.ok, f"{counts.line()}\n{diagnose(stack, counts)}\n{stack.logs()}"
    finally:
        stack.stop()


@pytest.mark.parametrize("n", SIZES)
def test_every_webhook_three_times_shuffled(n: int, redis_url: str, tmp_path: Path) -> None:
    """Two events per call, each delivered three times, all shuffled (ended before started)."""
    stack = start_stack(tmp_path, redis_url, workers=2)
    try:
        calls = make_calls("dup", n, two_events=True)
        deliveries = _deliveries(calls, times=3, shuffle=True)
        t0 = time.monotonic()
        send_stream(stack, deliveries, timeout=240)
        counts = settle(stack, calls, timeout=120)
        report("dup-x3", counts, time.monotonic() - t0, f"deliveries={len(deliveries)}")
        assert counts.ok, f"{counts.line()}\n{diagnose(stack, counts)}\n{stack.logs()}"
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("n", "outage"),
    [
        pytest.param(200, 6.0, id="ci"),
        pytest.param(1000, 60.0, id="long", marks=pytest.mark.slow),
    ],
)
def test_crm_down_circuit_parks_and_recovers(
    n: int, outage: float, redis_url: str, tmp_path: Path
) -> None:
    """The CRM answers 503 to everything for ``outage`` seconds: the circuit opens, the work
    parks in Redis (no attempts spent), probes find the CRM back, and everything lands."""
    stack = start_stack(tmp_path, redis_url, workers=2, max_attempts=6, threshold=5, reset=2.0)
    try:
        calls = make_calls("down", n)
        t0 = time.monotonic()
        seen = {"parked": 0, "state": "closed"}

        def fault(i: int) -> None:
            if i == n // 4:
                stack.crm.set_chaos(down_until=time.time() + outage)

        send_stream(stack, _deliveries(calls), during=fault)
        parked_key = "acw:parked"
        deadline = time.monotonic() + outage
        while time.monotonic() < deadline:
            seen["parked"] = max(seen["parked"], int(stack.redis.zcard(parked_key)))
            state = stack.redis.hget(f"acw:circuit:{INSTANCE}", "state") or "closed"
            if state != "closed":
                seen["state"] = state
            time.sleep(0.2)
        counts = settle(stack, calls, timeout=120 + outage)
        opened = int(stack.redis.hget(f"acw:circuit:{INSTANCE}", "opened") or 0)
        report(
            "crm-down",
            counts,
            time.monotonic() - t0,
            f"outage={outage:g}s circuit_opened={opened} max_parked={seen['parked']}",
        )
        assert counts.ok, f"{counts.line()}\n{diagnose(stack, counts)}\n{stack.logs()}"
        assert opened >= 1 and seen["parked"] > 0
        assert counts.dead == 0  # parked work spends no attempts
        assert audit(stack, calls).synced == n
    finally:
        stack.stop()
