"""Graceful shutdown with real processes: SIGTERM never loses an event.

* The server, on SIGTERM, stops accepting connections, finishes the request in flight (its
  event is on the queue and answered 202) and exits 0.
* A stream of webhooks keeps coming while the worker and then the server are SIGTERMed and
  restarted; the sender behaves like a platform (it retries what was not answered 2xx).
  Some syncs are waiting for a retry (CRM rate limit) when the worker stops. In the end every
  call is in the CRM exactly once.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from tests.helpers import generic_body, signed_headers
from tests.ops.stack import Stack, make_stack


@pytest.fixture
def stack(redis_url: str, tmp_path: object) -> Iterator[Stack]:
    from pathlib import Path

    stack = make_stack(Path(str(tmp_path)), redis_url)
    try:
        yield stack
    finally:
        stack.stop_all()
        stack.redis.flushdb()


def _connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return None


def test_server_finishes_the_request_in_flight_then_exits(stack: Stack) -> None:
    stack.start("server")
    stack.wait(stack.server_ready, 30, "the server")
    body = generic_body("gs-inflight", "ended", customer_number="+14155550999")
    head = "".join(
        f"{k}: {v}\r\n"
        for k, v in {
            **signed_headers(body, "gs-inflight-1"),
            "host": "127.0.0.1",
            "content-length": str(len(body)),
        }.items()
    )
    conn = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    conn.sendall(f"POST /webhooks/generic HTTP/1.1\r\n{head}\r\n".encode() + body[:20])
    time.sleep(0.3)  # the request is in flight: headers read, body half sent
    server = stack.procs["server"]
    server.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while (probe := _connect(stack.port)) is not None and time.monotonic() < deadline:
        probe.close()
        time.sleep(0.05)
    assert probe is None, "the server still accepts connections after SIGTERM"
    conn.sendall(body[20:])
    answer = conn.recv(65536).decode()
    conn.close()
    assert answer.startswith("HTTP/1.1 202"), answer
    # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly.
    assert server.wait(timeout=15) in (0, -signal.SIGTERM)
    stack.procs.pop("server")
    assert "Finished server process" in stack.logs("server")
    assert stack.redis.llen("acw") == 1  # the event is on the queue


def _send_like_a_platform(stack: Stack, calls: list[str], sent: list[str]) -> None:
    """Deliver each call's webhook until it is answered 2xx (platforms retry the rest)."""
    for call_id in calls:
        body = generic_body(
            call_id, "ended", direction="inbound", customer_number="+14155550100",
            ended_at=datetime.now(UTC).isoformat(),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                response = requests.post(
                    f"{stack.url}/webhooks/generic",
                    data=body,
                    headers=signed_headers(body, f"{call_id}-msg"),
                    timeout=5,
                )
                if response.status_code in (200, 202):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{call_id} was never accepted")
            time.sleep(0.1)
        sent.append(call_id)
        time.sleep(0.03)


def test_no_event_is_lost_when_worker_and_server_stop_mid_stream(stack: Stack) -> None:
    calls = [f"gs-{i:03d}" for i in range(36)]
    stack.crm.inject_fault("rate_limit", times=6, retry_after=5)
    stack.start("server")
    stack.start("worker")
    stack.wait(stack.server_ready, 30, "the server")
    stack.wait(stack.worker_ready, 30, "the worker")
    sent: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _send_like_a_platform(stack, calls, sent)
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=run)
    sender.start()
    stack.wait(lambda: len(sent) >= 10, 30, "the first webhooks")
    # Mid-stream: a warm shutdown of the worker (syncs wait for a retry, tasks run)...
    assert stack.stop("worker") == 0
    stack.start("worker")
    stack.wait(lambda: len(sent) >= 22, 30, "more webhooks")
    # ...and of the server while webhooks keep coming.
    assert stack.stop("server") in (0, -signal.SIGTERM)
    stack.start("server")
    sender.join(timeout=90)
    assert not errors and sent == calls

    expected = {f"generic:{c}" for c in calls}

    def all_synced() -> bool:
        rows = stack.crm.query("SELECT key, COUNT(*) AS n FROM activities GROUP BY key")
        return {r["key"] for r in rows} >= expected

    stack.wait(all_synced, 60, "every call in the CRM")
    time.sleep(1.0)  # a duplicate would show up now
    rows = stack.crm.query("SELECT key, COUNT(*) AS n FROM activities GROUP BY key")
    assert {r["key"]: r["n"] for r in rows} == dict.fromkeys(expected, 1)
    # What ops see afterwards: nothing left unsynced, the rate limit as the last error.
    assert stack.redis.zcard("acw:ops:unsynced") == 0
    last_error = json.loads(stack.redis.get("acw:ops:lasterror:crm") or "{}")
    assert last_error["reason"] == "rate_limited" and last_error["outcome"] == "retry"
    worker_log = stack.logs("worker")
    assert worker_log.count('"event": "worker stopped"') == 1  # the first worker, warmly
    # Syncs really were waiting for their retry when the worker stopped: it handed them back.
    assert "sync failed: will retry" in worker_log
    assert "unacknowledged message(s)" in worker_log.split("worker stopped")[0]
