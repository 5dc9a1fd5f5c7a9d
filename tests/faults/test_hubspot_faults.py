"""Two CRMs at once: the HubSpot API emulator failing under the stream while the sandbox CRM
stays healthy. Every call must land exactly once in each (or be a dead letter there), and the
shared limiter must be the one the HubSpot connector uses for every HTTP request."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.emulators.hubspot import HubSpotEmulator
from tests.faults.harness import (
    Call,
    Counts,
    Stack,
    audit,
    check_invariant,
    diagnose,
    make_calls,
    report,
    send_stream,
    settle,
    start_stack,
)

TOKEN = "pat-na1-fault-test-token"

HUBSPOT = """  hs:
    type: hubspot
    options:
      access_token: %(token)s
      host: %(url)s
      timeout: 1.0
      tier: 250
    matching:
      on_none: create
      cache_ttl: 30
    max_attempts: 12
    batch_window: %(window)s
    rate_limit:
      requests: 2000
      per: 10
      operations:
        search: {requests: 40, per: 1}
    circuit:
      failure_threshold: 8
      reset_timeout: 2
      probe_timeout: 5
"""


def _hubspot_audit(emulator: HubSpotEmulator) -> object:
    def check(stack: Stack, calls: list[Call]) -> Counts:
        activities: dict[str, int] = {}
        tasks: dict[str, int] = {}
        with emulator.lock:
            for obj in emulator.objects["calls"].values():
                key = obj.properties.get("hs_call_external_id")
                if key:
                    activities[key] = activities.get(key, 0) + 1
            for obj in emulator.objects["tasks"].values():
                key = obj.properties.get("acw_followup_key")
                if key:
                    call_key = key.split("#", 1)[0]
                    tasks[call_key] = tasks.get(call_key, 0) + 1
        return check_invariant(stack, calls, activities, tasks, "hs")

    return check


@pytest.mark.parametrize(
    "window", [pytest.param(0.0, id="single"), pytest.param(0.25, id="batched")]
)
@pytest.mark.parametrize(
    "n", [pytest.param(200, id="ci"), pytest.param(1000, id="long", marks=pytest.mark.slow)]
)
def test_hubspot_emulator_faults_and_a_healthy_sandbox(
    n: int, window: float, redis_url: str, tmp_path: Path
) -> None:
    emulator = HubSpotEmulator(tier=2000, search_per_second=40).start()
    emulator.add_private_app_token(TOKEN)
    extra = HUBSPOT % {"token": TOKEN, "url": emulator.url, "window": window}
    stack = start_stack(tmp_path, redis_url, workers=2, extra_connectors=extra)
    check_hs = _hubspot_audit(emulator)
    stop = threading.Event()
    try:
        calls = make_calls("hs", n)
        injected = {"502": 0, "429": 0, "401": 0, "slow": 0}
        rng = random.Random(3)

        served = [0]

        def chaos() -> None:
            # Faults spread in time (at most one every 0.4 s), whatever the stream's length,
            # and over requests (at most one in four): armed before whatever request comes
            # next, a fault every 0.4 s would fail every request of a quiet system, so a
            # circuit's probe (2 s after it opened) would always fail and the last calls
            # could never land, on either path.
            while not stop.wait(0.4):
                with emulator.lock:
                    pending = sum(f.remaining for f in emulator.faults)
                    requests = len(emulator.log)
                if pending >= 1 or requests - served[0] < 4:  # a rate, not a backlog
                    continue
                served[0] = requests
                kind = rng.choice(["502", "502", "429", "slow"])
                if kind == "502":
                    emulator.inject("server_error", 1, status=502)
                elif kind == "429":
                    emulator.inject("ten_secondly", 1, retry_after=1.0)
                else:
                    emulator.inject("slow", 1, delay=1.5)  # past the 1 s timeout: it lands
                injected[kind] += 1

        def fault(i: int) -> None:
            if i == n // 2:
                emulator.inject("unauthorized", 1)
                injected["401"] += 1

        injector = threading.Thread(target=chaos, daemon=True)
        injector.start()
        t0 = time.monotonic()
        send_stream(stack, [d for c in calls for d in c.bodies], during=fault)
        counts_hs = settle(stack, calls, timeout=150, check=check_hs)  # type: ignore[arg-type]
        stop.set()
        counts_sb = settle(stack, calls, timeout=30)
        elapsed = time.monotonic() - t0
        report("hubspot", counts_hs, elapsed, f"injected={injected} requests={len(emulator.log)}")
        report("sandbox-beside-hubspot", counts_sb, elapsed)
        assert counts_hs.ok, f"{counts_hs.line()}\n{diagnose(stack, counts_hs)}\n{stack.logs()}"
        assert counts_sb.ok and counts_sb.synced == n, counts_sb.line()
        # A 401 on a private-app token cannot be refreshed: the connector calls it revoked
        # credentials. The admin checks the token and replays; the call then lands once.
        assert set(counts_hs.reasons) <= {"credentials"}
        if counts_hs.dead:
            replayed = subprocess.run(
                [sys.executable, "-m", "acw_sync", "dlq", "replay", "--reason", "credentials"],
                env=stack.env, capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            assert f"{counts_hs.dead} dead letter(s) replayed" in replayed.stdout
            time.sleep(1.0)
            after = settle(stack, calls, timeout=30, check=check_hs)  # type: ignore[arg-type]
            report("hubspot-after-replay", after, time.monotonic() - t0)
            assert after.ok and after.synced == n, after.line()
        assert audit(stack, calls).ok
    finally:
        stop.set()
        stack.stop()
        emulator.stop()
