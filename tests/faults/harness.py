"""The fault-test harness: real `acw-sync serve` and `acw-sync worker` processes, a real Redis,
the sandbox CRM with injected faults, a stream of signed calls, and the invariant audit.

The invariant (the issue's "nothing lost, nothing twice"): every call ends as exactly one
activity with exactly its expected follow-up tasks in the CRM, or as a dead letter with a
reason. :func:`audit` counts synced, dead-lettered, lost and duplicated calls.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import requests

from acw_connector_sandbox import SandboxStore
from tests.helpers import SECRET, generic_body, signed_headers

INSTANCE = "crm"

CONFIG = """
providers:
  generic:
    secret: ${ACW_GENERIC_SECRET}
connectors:
  crm:
    type: sandbox
    options:
      path: %(db)s
      timeout: 30
    matching:
      on_none: create
      cache_ttl: 30
    max_attempts: %(max_attempts)d
    circuit:
      failure_threshold: %(threshold)d
      reset_timeout: %(reset)s
      probe_timeout: 5
%(extra)s"""

#: Settings that make retries, redelivery and the reconciler act in seconds, not minutes.
FAST_ENV = {
    "ACW_BACKOFF_BASE": "0.2",
    "ACW_IN_DOUBT_DELAY": "2",
    "ACW_VISIBILITY_TIMEOUT": "12",
    "ACW_SYNC_LOCK_TTL": "8",
    "ACW_SCHEDULER_INTERVAL": "0.5",
    "ACW_RECONCILE_EVERY": "2",
    "ACW_RECONCILE_AFTER": "8",
    "ACW_LOG_FORMAT": "json",
    "ACW_LOG_LEVEL": "WARNING",
}

OUTCOMES = ("completed", "missed", "voicemail", "completed")
"""Missed calls and voicemails get one call-back task each; completed calls none."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Call:
    call_id: str
    outcome: str
    number: str
    bodies: list[tuple[bytes, str]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"generic:{self.call_id}"

    @property
    def expected_tasks(self) -> int:
        return 0 if self.outcome == "completed" else 1


def make_calls(run: str, n: int, *, two_events: bool = False) -> list[Call]:
    """``n`` calls from 40 numbers (half known to the CRM, see :func:`seed_customers`)."""
    calls = []
    # In the past (so the reconciler's window covers every call), one second apart.
    t0 = datetime.now(UTC) - timedelta(hours=2)
    for i in range(n):
        call = Call(f"{run}-{i}", OUTCOMES[i % len(OUTCOMES)], f"+1415555{i % 40:04d}")
        start = t0 + timedelta(seconds=i)
        common = {"direction": "inbound", "customer_number": call.number}
        if two_events:
            started = generic_body(
                call.call_id, "started", started_at=start.isoformat(),
                timestamp=start.isoformat(), **common,
            )  # fmt: skip
            call.bodies.append((started, f"{call.call_id}-s"))
        ended_at = start + timedelta(seconds=40)
        ended = generic_body(
            call.call_id, "ended", started_at=start.isoformat(), ended_at=ended_at.isoformat(),
            outcome=call.outcome, timestamp=ended_at.isoformat(), **common,
        )  # fmt: skip
        call.bodies.append((ended, f"{call.call_id}-e"))
        calls.append(call)
    return calls


def seed_customers(crm: SandboxStore) -> None:
    for i in range(0, 40, 2):
        number = f"+1415555{i:04d}"
        crm.add_customer(name=f"Customer {i}", phone=number, phone_e164=number)


@dataclass
class Stack:
    root: Path
    redis_url: str
    url: str
    crm: SandboxStore
    redis: redis.Redis
    env: dict[str, str]
    server: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: dict[int, float] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "acw_sync", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_server(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.server = self._spawn("server", ["serve", "--port", str(port)])

    def start_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        worker = self._spawn(f"worker-{len(self.workers)}", ["worker", "-c", str(concurrency)])
        self.workers.append(worker)
        self.started[worker.pid] = time.monotonic()
        return worker

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def ready(self) -> bool:
        try:
            return self.session.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
            for p in sorted(self.root.glob("*.log"))
        )

    def stop(self) -> None:
        procs = [p for p in (self.server, *self.workers) if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.session.close()


def start_stack(
    root: Path,
    redis_url: str,
    *,
    workers: int = 2,
    max_attempts: int = 10,
    threshold: int = 5,
    reset: float = 3.0,
    env: dict[str, str] | None = None,
    extra_connectors: str = "",
) -> Stack:
    db = root / "crm.db"
    config = CONFIG % {
        "db": db,
        "max_attempts": max_attempts,
        "threshold": threshold,
        "reset": reset,
        "extra": extra_connectors,
    }
    (root / "acw-sync.yaml").write_text(config)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    full_env = {
        **os.environ,
        **FAST_ENV,
        "ACW_BROKER_URL": redis_url,
        "ACW_CONFIG": str(root / "acw-sync.yaml"),
        "ACW_DATA_DIR": str(root / "data"),
        "ACW_GENERIC_SECRET": SECRET,
        **(env or {}),
    }
    crm = SandboxStore(db)
    seed_customers(crm)
    stack = Stack(root, redis_url, f"http://127.0.0.1:{free_port()}", crm, client, full_env)
    stack.start_server()
    for _ in range(workers):
        stack.start_worker()
    wait_for(stack.ready, 30, "the server to be ready", stack)
    # Workers are up when their pools are: every worker has its processes, and a moment more.
    wait_for(
        lambda: all(len(pool_children(w)) >= 2 for w in stack.workers),
        30,
        "the worker pools",
        stack,
    )
    time.sleep(1.0)
    for pid in stack.started:
        stack.started[pid] -= WORKER_WARMUP  # warm now: their pool processes may be killed
    return stack


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{stack.logs()}")


def post(stack: Stack, body: bytes, msg_id: str, deadline: float) -> int:
    """Deliver one webhook as a platform would: retry on 5xx and connection errors."""
    while True:
        try:
            response = stack.session.post(
                f"{stack.url}/webhooks/generic",
                data=body,
                headers=signed_headers(body, msg_id),
                timeout=10,
            )
            if response.status_code < 500:
                assert response.status_code in (200, 202), response.text
                return response.status_code
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"webhook {msg_id} never accepted\n{stack.logs()}")
        time.sleep(0.2)


def send_stream(
    stack: Stack,
    deliveries: Iterable[tuple[bytes, str]],
    *,
    during: Callable[[int], None] | None = None,
    timeout: float = 120,
) -> int:
    """Send every delivery; ``during(i)`` runs before the i-th (to inject faults)."""
    deadline = time.monotonic() + timeout
    sent = 0
    for i, (body, msg_id) in enumerate(deliveries):
        if during is not None:
            during(i)
        post(stack, body, msg_id, deadline)
        sent += 1
    return sent


@dataclass
class Counts:
    calls: int
    synced: int = 0
    dead: int = 0
    lost: int = 0
    lost_keys: list[str] = field(default_factory=list)
    duplicated: int = 0
    wrong_tasks: int = 0
    activities: int = 0
    tasks: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.wrong_tasks == 0
            and self.synced + self.dead == self.calls
        )

    def line(self) -> str:
        return (
            f"calls={self.calls} synced={self.synced} dead_lettered={self.dead} "
            f"lost={self.lost} duplicated={self.duplicated} wrong_tasks={self.wrong_tasks} "
            f"activities={self.activities} tasks={self.tasks} dead_reasons={self.reasons}"
        )


def audit(stack: Stack, calls: list[Call]) -> Counts:
    """Check the invariant for every call: one activity and its tasks, or a dead letter."""
    activities: dict[str, int] = {}
    for row in stack.crm.query("SELECT key, COUNT(*) AS n FROM activities GROUP BY key"):
        activities[row["key"]] = int(row["n"])
    tasks: dict[str, int] = {}
    for row in stack.crm.query("SELECT key FROM tasks"):
        call_key = str(row["key"]).split("#", 1)[0]
        tasks[call_key] = tasks.get(call_key, 0) + 1
    return check_invariant(stack, calls, activities, tasks, INSTANCE)


def check_invariant(
    stack: Stack,
    calls: list[Call],
    activities: dict[str, int],
    tasks: dict[str, int],
    instance: str,
) -> Counts:
    """Counts from what one CRM holds: activities and tasks per call key."""
    dead = {e["call_key"]: e for e in _dead_letters(stack) if e.get("connector") == instance}
    counts = Counts(len(calls))
    for call in calls:
        n_act, n_tasks = activities.get(call.key, 0), tasks.get(call.key, 0)
        counts.activities += n_act
        counts.tasks += n_tasks
        if n_act > 1 or n_tasks > call.expected_tasks:
            counts.duplicated += 1
        elif n_act == 1 and n_tasks == call.expected_tasks:
            counts.synced += 1
        elif call.key in dead:
            counts.dead += 1
            reason = str(dead[call.key].get("reason"))
            counts.reasons[reason] = counts.reasons.get(reason, 0) + 1
        elif n_act == 1:
            counts.wrong_tasks += 1
        else:
            counts.lost += 1
            counts.lost_keys.append(call.key)
    return counts


def diagnose(stack: Stack, counts: Counts, limit: int = 5) -> str:
    """What Redis knows of the first lost calls (for the failure message)."""
    lines = []
    for key in counts.lost_keys[:limit]:
        r = stack.redis
        lines.append(
            f"{key}: events={r.hlen(f'acw:events:{key}')} "
            f"ledger={r.hgetall(f'acw:ledger:{INSTANCE}:{key}')} "
            f"pending={r.get(f'acw:pending:{INSTANCE}:{key}')} "
            f"parked={r.zscore('acw:parked', f'{INSTANCE}|{key}')} "
            f"lock={r.get(f'acw:lock:sync:{INSTANCE}:{key}')} "
            f"queue={r.llen('acw')} unacked={r.hlen('unacked')}"
        )
    return "\n".join(lines)


def _dead_letters(stack: Stack) -> list[dict[str, Any]]:
    from acw_sync.store import StateStore

    return StateStore(stack.redis).dead_letters()


def settle(
    stack: Stack,
    calls: list[Call],
    timeout: float,
    check: Callable[[Stack, list[Call]], Counts] = audit,
) -> Counts:
    """Wait until the invariant holds (or ``timeout``); the last audit."""
    deadline = time.monotonic() + timeout
    counts = check(stack, calls)
    while not counts.ok and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = check(stack, calls)
    if counts.ok:
        time.sleep(1.0)  # let a wrongly queued duplicate show up before the final count
        counts = check(stack, calls)
    return counts


def pool_children(worker: subprocess.Popen[bytes]) -> list[int]:
    """The prefork pool processes of a worker (Linux /proc)."""
    try:
        text = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


#: Celery gives up a whole worker when a pool process dies while the pool is starting
#: ("Could not start worker processes"); in production a supervisor restarts it. The test
#: kills pool processes of running workers only.
WORKER_WARMUP = 4.0


def kill_random_child(stack: Stack, rng: random.Random) -> bool:
    now = time.monotonic()
    children = [
        c
        for w in stack.live_workers()
        if now - stack.started.get(w.pid, now) > WORKER_WARMUP
        for c in pool_children(w)
    ]
    if not children:
        return False
    try:
        os.kill(rng.choice(children), signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def report(name: str, counts: Counts, seconds: float, extra: str = "") -> None:
    print(f"\n[{name}] {counts.line()} elapsed={seconds:.1f}s {extra}".rstrip())
