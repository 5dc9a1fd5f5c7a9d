"""``process_events``: the events of one ingest batch in one Celery message.

The task runs in this process (``Task.apply``: Celery's tracer, its signals, our
``task_signals``) against a real Redis and the sandbox CRM; the messages it publishes are run
from the queue the same way. A real worker consumes batch messages in
``tests/test_end_to_end.py`` and is killed mid-batch at the end of this file.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import psutil
import pytest
import redis

from acw_connector_sandbox import SandboxStore
from acw_sync import metrics
from acw_sync.publish import RedisPublisher
from acw_sync.store import StateStore
from tests.ops.stack import make_stack

CONFIG = """
providers:
  generic:
    secret: whsec_dGVzdA==
connectors:
  crm:
    type: sandbox
    options:
      path: %(db)s
    matching:
      on_none: create
"""


def _event(n: int, call: str, kind: str = "ended") -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"ev-{call}-{n}",
        "provider": "generic",
        "call_id": call,
        "type": kind,
        "occurred_at": f"2026-01-01T10:00:{n:02d}Z",
        "customer_number": "+14155550100",
        "direction": "inbound",
    }
    return event


@pytest.fixture
def worker(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxStore]:
    """This process as a worker: config, state and broker in the test Redis."""
    from acw_sync.runtime import reset_runtime
    from acw_sync.tasks import app, configure_broker

    db = tmp_path / "crm.db"
    (tmp_path / "acw-sync.yaml").write_text(CONFIG % {"db": db})
    monkeypatch.setenv("ACW_CONFIG", str(tmp_path / "acw-sync.yaml"))
    monkeypatch.setenv("ACW_BROKER_URL", redis_url)
    reset_runtime()
    configure_broker(redis_url)
    yield SandboxStore(db)
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def _run_queue(client: redis.Redis) -> list[str]:
    """Run every message on the queue here, as a worker would, until it is empty."""
    from acw_sync.tasks import app

    ran = []
    while raw := client.rpop("acw"):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        name = message["headers"]["task"]
        app.tasks[name].apply(args=args, kwargs=kwargs)
        ran.append(name)
    return ran


def _counted(result: str) -> float:
    return float(metrics.EVENTS_PROCESSED.labels("generic", result)._value.get())


def test_each_event_is_merged_as_process_event_merges_it(
    worker: SandboxStore, redis_client: redis.Redis, store: StateStore
) -> None:
    from acw_sync.tasks import process_events

    before = {r: _counted(r) for r in ("merged", "queued")}
    batch = [_event(0, "a", "started"), _event(1, "a"), _event(0, "b")]
    outcome = process_events.apply(args=[batch])
    assert outcome.successful() and outcome.result == "3 merged"
    assert {e.event_id for e in store.events("generic:a")} == {"ev-a-0", "ev-a-1"}
    assert (record := store.record("generic:a")) is not None and record.ended
    # Per event, as if each had been its own process_event.
    assert _counted("merged") - before["merged"] == 1
    assert _counted("queued") - before["queued"] == 2
    assert store.redis.hlen(store.k("inbox")) == 0
    # One sync per ended call, then the activities.
    assert _run_queue(redis_client) == ["acw.sync_call", "acw.sync_call"]
    assert len(worker.query("SELECT * FROM activities")) == 2


def test_a_batch_run_again_writes_nothing_twice(
    worker: SandboxStore, redis_client: redis.Redis, store: StateStore
) -> None:
    """A redelivered batch (its worker killed mid-batch): events are stored by id, and the
    syncs it queues again find the ledger up to date."""
    from acw_sync.tasks import process_events

    batch = [_event(0, "c", "started"), _event(1, "c"), _event(0, "d")]
    process_events.apply(args=[batch])
    _run_queue(redis_client)
    activities = worker.query("SELECT * FROM activities ORDER BY key")
    assert len(activities) == 2 and all(a["updates"] == 0 for a in activities)
    process_events.apply(args=[batch])
    assert set(_run_queue(redis_client)) <= {"acw.sync_call"}
    assert worker.query("SELECT * FROM activities ORDER BY key") == activities  # not written
    assert len(store.events("generic:c")) == 2


def test_a_bad_event_is_published_alone_and_the_others_go_on(
    worker: SandboxStore, redis_client: redis.Redis, store: StateStore
) -> None:
    from acw_sync.tasks import process_events

    bad = {**_event(0, "e"), "type": "no-such-type"}
    outcome = process_events.apply(args=[[_event(0, "f"), bad, _event(0, "g")]])
    assert outcome.successful() and outcome.result == "2 merged, 1 published alone"
    assert store.record("generic:f") is not None and store.record("generic:g") is not None
    queued = [json.loads(m) for m in redis_client.lrange("acw", 0, -1)]
    alone = [m for m in queued if m["headers"]["task"] == "acw.process_event"]
    [message] = alone
    assert json.loads(base64.b64decode(message["body"]))[0] == [bad]
    # Its own message takes process_event's failure path; the others are synced.
    _run_queue(redis_client)
    assert {a["key"] for a in worker.query("SELECT * FROM activities")} == {
        "generic:f",
        "generic:g",
    }


def test_an_infrastructure_failure_gives_the_whole_batch_back(
    worker: SandboxStore, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.exceptions import Reject

    from acw_sync.runtime import get_runtime
    from acw_sync.tasks import StateTask, process_events

    real = StateStore.merge_event
    calls = []

    def flaky(self: StateStore, event: Any, **kw: Any) -> Any:
        calls.append(event.event_id)
        if len(calls) == 2:
            raise redis.ConnectionError("state Redis went away")
        return real(self, event, **kw)

    get_runtime()
    monkeypatch.setattr(StateStore, "merge_event", flaky)
    monkeypatch.setattr(StateTask, "infrastructure_wait", 0.0)
    outcome = process_events.apply(args=[[_event(0, "h"), _event(0, "i"), _event(0, "j")]])
    assert isinstance(outcome.result, Reject) and outcome.result.requeue
    assert calls == ["ev-h-0", "ev-i-0"]  # stopped there: nothing published alone


def test_the_figures_left_on_the_request_are_observed(
    worker: SandboxStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a task leaves on its request reaches task_postrun (StateTask runs the task under
    the worker's request instead of pushing a bare one): the call's ACW figures, once per call,
    for a lone event and for each call of a batch."""
    from acw_sync.tasks import process_event, process_events

    seen: list[str] = []
    monkeypatch.setattr(metrics, "observe_call_figures", lambda record: seen.append(record.key))
    process_event.apply(args=[_event(0, "k")])
    process_events.apply(args=[[_event(0, "l"), _event(0, "m"), _event(1, "k")]])
    assert seen == ["generic:k", "generic:l", "generic:m"]


# -- a real worker killed mid-batch ------------------------------------------------------------


def test_a_worker_killed_mid_batch_redelivers_the_whole_message(
    redis_url: str, tmp_path: Path
) -> None:
    """SIGKILL the pool while it holds a batch half merged: the message comes back whole
    (``acks_late``, ``reject_on_worker_lost``), every event is merged and every call synced
    once. The state Redis is paused for writes to hold the task mid-batch."""
    stack = make_stack(tmp_path, redis_url, ACW_VISIBILITY_TIMEOUT="20")
    client = stack.redis
    calls = [f"kill-{n}" for n in range(40)]
    events = []
    for call in calls:
        events += [_event(0, call, "started"), _event(1, call)]
    from acw_sync.model import CallEvent

    parsed = [CallEvent.model_validate(e) for e in events]
    try:
        worker = stack.start("worker")
        stack.wait(stack.worker_ready, 30, "the worker")
        publisher = RedisPublisher(redis_url)
        publisher(parsed[:100])  # one process_events message
        publisher.close()

        def stored() -> int:
            pipe = client.pipeline(transaction=False)
            for call in calls:
                pipe.hlen(f"acw:events:generic:{call}")
            return sum(pipe.execute())

        deadline = time.monotonic() + 30
        while stored() == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        client.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
        try:
            half = stored()
            children = psutil.Process(worker.pid).children()
            for child in children:
                os.kill(child.pid, signal.SIGKILL)
        finally:
            client.execute_command("CLIENT", "UNPAUSE")
        assert 0 < half < len(parsed), "the batch was not held mid-way"
        stack.wait(lambda: stored() == len(parsed), 60, "the redelivered batch")
        stack.wait(
            lambda: len({a["key"] for a in stack.activities()}) == len(calls),
            60,
            "every call synced",
        )
        time.sleep(1.0)  # a wrongly repeated write would show up now
        written = stack.activities()
        assert sorted(a["key"] for a in written) == sorted(f"generic:{c}" for c in calls)
        assert [a["key"] for a in written if a["updates"]] == []  # each written once
        received = [
            line
            for line in stack.log_lines("worker")
            if str(line.get("event", "")).startswith("Task acw.process_events[")
            and str(line.get("event", "")).endswith("received")
        ]
        assert len(received) >= 2 and len({line.get("task_id") for line in received}) == 1
    finally:
        stack.stop_all()
        client.flushdb()
