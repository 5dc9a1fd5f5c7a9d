"""End to end with real processes: `acw-sync serve` and `acw-sync worker` on a real Redis.

A signed webhook goes in over HTTP; a sandbox CRM record comes out. The same webhook delivered
three times gives one activity; a bad signature gives 401 and nothing is enqueued.

Every test runs twice: with Redis as the Celery broker, and with RabbitMQ as the broker
(``ACW_TEST_AMQP_URL``, default ``amqp://guest:guest@127.0.0.1:5672//``; skipped when it is not
reachable) while the state (ledger, records, dedupe, dead letters) stays in Redis.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from acw_connector_sandbox import SandboxStore
from tests.helpers import SECRET, generic_body, signed_headers

CONFIG = """
providers:
  generic:
    secret: ${ACW_GENERIC_SECRET}
connectors:
  crm:
    type: sandbox
    options:
      path: %(db)s
    matching:
      on_none: create
"""


@dataclass
class Stack:
    url: str
    crm: SandboxStore
    redis: redis.Redis
    procs: list[subprocess.Popen[bytes]]
    logs: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Any, timeout: float, what: str, stack: Stack | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    logs = ""
    if stack is not None:
        logs = "\n".join(p.read_text()[-3000:] for p in stack.logs.glob("*.log"))
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


AMQP_URL = os.environ.get("ACW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _amqp_reachable(url: str) -> str | None:
    """None when a broker answers at ``url``, else why not."""
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def stack(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    broker = redis_url
    # A queue of our own: other runs sharing the broker never take this run's messages.
    extra = {"ACW_QUEUE": f"acw-test-{uuid.uuid4().hex[:8]}"}
    if request.param == "rabbitmq":
        why = _amqp_reachable(AMQP_URL)
        if why is not None:
            pytest.skip(f"RabbitMQ is not reachable at {AMQP_URL} ({why}); CI runs this variant")
        broker = AMQP_URL
        extra["ACW_REDIS_URL"] = redis_url  # the state stays in Redis
    root = tmp_path_factory.mktemp("e2e")
    db = root / "crm.db"
    (root / "acw-sync.yaml").write_text(CONFIG % {"db": db})
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    env = {
        **os.environ,
        "ACW_BROKER_URL": broker,
        "ACW_CONFIG": str(root / "acw-sync.yaml"),
        "ACW_DATA_DIR": str(root / "data"),
        "ACW_GENERIC_SECRET": SECRET,
        "ACW_LOG_FORMAT": "json",
        **extra,
    }
    port = _free_port()
    procs = []
    for name, args in (
        ("server", ["serve", "--port", str(port)]),
        ("worker", ["worker", "-c", "2"]),
    ):
        log = (root / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "acw_sync", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    stack = Stack(f"http://127.0.0.1:{port}", SandboxStore(db), client, procs, root)

    def ready() -> bool:
        try:
            return requests.get(f"{stack.url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    _wait(ready, 30, "the server to be ready", stack)
    yield stack
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    if request.param == "rabbitmq":
        _delete_queue(AMQP_URL, extra["ACW_QUEUE"])
    client.flushdb()


def _delete_queue(url: str, name: str) -> None:
    import kombu

    with kombu.Connection(url, connect_timeout=2) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(name)  # raises when already gone


def send(stack: Stack, body: bytes, msg_id: str, **kw: Any) -> requests.Response:
    return requests.post(
        f"{stack.url}/webhooks/generic",
        data=body,
        headers=signed_headers(body, msg_id, **kw),
        timeout=10,
    )


def activities(stack: Stack, key: str) -> list[dict[str, Any]]:
    return stack.crm.query("SELECT * FROM activities WHERE key = ?", (key,))


def test_signed_webhook_becomes_a_sandbox_activity(stack: Stack) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=3)
    started = generic_body(
        "e2e-1", "started", direction="inbound", customer_number="+14155550123",
        started_at=t0.isoformat(), agent={"email": "ana@example.com", "name": "Ana"},
    )  # fmt: skip
    ended = generic_body(
        "e2e-1", "ended", ended_at=(t0 + timedelta(seconds=95)).isoformat(),
        answered_at=(t0 + timedelta(seconds=5)).isoformat(), outcome="completed",
        notes=["Asked for a copy of the contract."],
    )  # fmt: skip
    assert send(stack, started, "e2e-1-a").status_code == 202
    assert send(stack, ended, "e2e-1-b").status_code == 202

    # Two workers may merge "ended" before "started": the first sync then lacks the direction,
    # and the re-sync the later event triggers completes it. Wait for the converged activity.
    def converged() -> bool:
        rows = activities(stack, "generic:e2e-1")
        return bool(rows) and rows[0]["direction"] == "inbound" and rows[0]["customer_id"]

    _wait(converged, 20, "the activity", stack)
    [activity] = activities(stack, "generic:e2e-1")
    assert activity["direction"] == "inbound" and activity["duration"] == 95
    assert "Asked for a copy of the contract." in activity["body"]
    [customer] = stack.crm.query("SELECT * FROM customers WHERE id = ?", (activity["customer_id"],))
    assert customer["phone_e164"] == "+14155550123" and customer["created_by_acw"] == 1


def test_same_webhook_three_times_is_one_activity(stack: Stack) -> None:
    body = generic_body(
        "e2e-2", "missed", direction="inbound", customer_number="+14155550124",
        ended_at=datetime.now(UTC).isoformat(),
    )  # fmt: skip
    statuses = [send(stack, body, "e2e-2-once").status_code for _ in range(3)]
    assert statuses == [202, 200, 200]
    _wait(
        lambda: stack.crm.query("SELECT * FROM tasks WHERE key LIKE 'generic:e2e-2#%'"),
        20,
        "the task",
        stack,
    )
    time.sleep(1.0)  # give a wrongly enqueued duplicate the chance to show up
    assert len(activities(stack, "generic:e2e-2")) == 1
    assert len(stack.crm.query("SELECT * FROM tasks WHERE key LIKE 'generic:e2e-2#%'")) == 1


def test_bad_signature_is_401_and_nothing_enqueued(stack: Stack) -> None:
    body = generic_body("e2e-3", "ended", customer_number="+14155550125")
    response = send(
        stack, body, "e2e-3-x", secret="whsec_" + "d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldA=="
    )
    assert response.status_code == 401
    assert response.json()["error"] == "no matching v1 signature"
    time.sleep(1.0)
    assert stack.redis.exists("acw:events:generic:e2e-3") == 0
    assert stack.redis.exists("acw:dedupe:generic:e2e-3-x") == 0
    assert activities(stack, "generic:e2e-3") == []


def test_concurrent_webhooks_go_out_in_batch_messages_and_all_sync(stack: Stack) -> None:
    """Concurrent requests share a drain: their events go out as ``process_events`` messages
    (one per drain batch) through this broker's publisher, and every call is synced once."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = datetime.now(UTC) - timedelta(minutes=2)
    calls = [f"e2e-batch-{n}" for n in range(24)]
    bodies = []
    for n, call in enumerate(calls):
        number = f"+1415555{n:04d}"
        bodies.append(
            (generic_body(call, "started", direction="inbound", customer_number=number,
                          started_at=t0.isoformat()), f"{call}-a")
        )  # fmt: skip
        bodies.append(
            (generic_body(call, "missed", direction="inbound", customer_number=number,
                          ended_at=(t0 + timedelta(seconds=20)).isoformat()), f"{call}-b")
        )  # fmt: skip
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda b: send(stack, *b).status_code, bodies))
    assert statuses == [202] * len(bodies)

    def synced() -> bool:
        keys = {a["key"] for a in stack.crm.query("SELECT key FROM activities")}
        return all(f"generic:{c}" in keys for c in calls)

    _wait(synced, 30, "every call of the burst", stack)
    worker_log = (stack.logs / "worker.log").read_text()
    assert "Task acw.process_events[" in worker_log, "no batch message reached the worker"
    for call in calls:
        assert len(activities(stack, f"generic:{call}")) == 1
