"""The Celery app and its two tasks: ``process_event`` and ``sync_call``.

``process_event`` merges one event into its call; once the call has ended it enqueues one
``sync_call`` per routed connector instance, so one CRM's failure never blocks another.
``sync_call`` runs :func:`acw_sync.sync.sync_call` and turns connector errors into retries with
capped, fully jittered exponential backoff, or into dead letters.

Delivery is at-least-once: both tasks are idempotent (events are stored by id, CRM writes go
through the ledger and the connectors' reconciliation by key).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import structlog
from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown

from acw_sync import batch
from acw_sync.embedded import broker_url
from acw_sync.errors import (
    AuthExpired,
    ConnectorError,
    CredentialsInvalid,
    PermanentError,
    RetryableError,
)
from acw_sync.merge import merge_events
from acw_sync.model import CallEvent
from acw_sync.runtime import get_runtime, reset_runtime
from acw_sync.store import LockBusy
from acw_sync.sync import sync_call as run_sync

__all__ = ["app", "backoff_delay", "process_event", "sync_batch", "sync_call"]

log = structlog.get_logger("acw_sync.worker")

#: Longest countdown a retry may use. Celery on Redis redelivers any message held longer than
#: the visibility timeout (and then runs it twice), so countdowns stay far below it.
MAX_COUNTDOWN = 300.0
#: Seconds of the first retry; doubles each attempt (full jitter: uniform in [0, delay]).
BACKOFF_BASE = 2.0
VISIBILITY_TIMEOUT = 3600

app = Celery("acw_sync")
app.conf.update(
    broker_url=os.environ.get("ACW_BROKER_URL") or None,
    #: Ack after the task returns: a worker that dies mid-task leaves the message for another.
    task_acks_late=True,
    #: A killed pool child requeues its message instead of acking it (at-least-once).
    task_reject_on_worker_lost=True,
    #: One message per process: CRM calls are slow, and prefetched messages wait behind them.
    worker_prefetch_multiplier=1,
    #: JSON only. Pickle would let anyone who can write to the broker run code in workers.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    #: Our state lives in our own Redis keys; nothing reads Celery results.
    task_ignore_result=True,
    #: ACW_QUEUE lets several deployments (or test runs) share one broker without sharing work.
    task_default_queue=os.environ.get("ACW_QUEUE") or "acw",
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "socket_timeout": 5,
        "socket_connect_timeout": 3,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    },
    #: A publish that cannot reach the broker fails fast, so ingest can answer 503.
    task_publish_retry_policy={
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    },
    worker_hijack_root_logger=False,
    worker_soft_shutdown_timeout=30,
    worker_enable_soft_shutdown_on_idle=True,
    worker_cancel_long_running_tasks_on_connection_loss=False,
)


def configure_broker(url: str | None = None) -> str:
    """Point the app at ``url`` (default: ``ACW_BROKER_URL`` or the embedded Redis)."""
    resolved = url or broker_url()
    app.conf.broker_url = resolved
    return resolved


@worker_process_init.connect
def _fresh_runtime(**_: Any) -> None:
    reset_runtime()  # never share sockets or SQLite handles across a fork


@worker_process_shutdown.connect
def _close_runtime(**_: Any) -> None:
    reset_runtime()


# Log context, metrics, heartbeats and sync stats hang on Celery's signals (connected on import).
from acw_sync import task_signals as _task_signals  # noqa: E402, F401


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before retry ``attempt`` (0-based): full jitter, capped, honouring Retry-After."""
    ceiling = min(MAX_COUNTDOWN, BACKOFF_BASE * (2**attempt))
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, MAX_COUNTDOWN)


@app.task(name="acw.process_event", bind=True, max_retries=None)
def process_event(self: Task, event: dict[str, Any]) -> str:
    """Merge one event into its call; enqueue the syncs once the call has ended."""
    runtime = get_runtime()
    parsed = CallEvent.model_validate(event)
    store = runtime.store
    added, events = store.add_event_and_events(parsed)
    record = merge_events(events)
    store.save_record(record)
    bound = log.bind(
        event_id=parsed.event_id,
        call_key=parsed.call_key,
        provider=parsed.provider,
        event_type=parsed.type.value,
    )
    bound.info("event merged", duplicate=not added, ended=record.ended)
    if not record.ended:
        return "merged"
    team = record.agent.team if record.agent else None
    for instance in runtime.config.routes_for(
        record.provider, record.provider_account, record.line_number, team
    ):
        window = batch.batch_window(runtime.pool, instance)
        if window > 0:  # batched: one sync_batch per window collects this call with others
            if batch.queue_call(store, instance, record.key, window):
                sync_batch.apply_async(args=[instance], countdown=window)
            bound.info("sync batched", connector=instance)
            continue
        if store.mark_pending(instance, record.key):
            sync_call.apply_async(args=[instance, record.key], kwargs={"first_seen": time.time()})
            bound.info("sync queued", connector=instance)
    return "queued"


@app.task(name="acw.sync_call", bind=True, max_retries=None)
def sync_call(self: Task, instance: str, call_key: str, first_seen: float | None = None) -> str:
    """Sync one call to one connector instance, retrying transient failures."""
    runtime = get_runtime()
    store = runtime.store
    attempt = int(self.request.retries or 0)
    bound = log.bind(call_key=call_key, connector=instance, attempt=attempt + 1)
    store.clear_pending(instance, call_key)
    try:
        with store.lock(f"sync:{instance}:{call_key}", ttl=120):
            result = run_sync(store, runtime.pool, instance, call_key)
    except LockBusy:
        # Another worker is syncing this call; run again after it, with the newest data.
        raise self.retry(countdown=1.0 + random.random(), max_retries=None) from None
    except ConnectorError as exc:
        spec = runtime.pool.instance(instance)
        age = time.time() - (first_seen or time.time())
        permanent = isinstance(exc, PermanentError | CredentialsInvalid)
        if isinstance(exc, AuthExpired) and attempt >= 1:
            permanent = True
        exhausted = attempt + 1 >= spec.max_attempts or age > spec.max_age
        if permanent or exhausted:
            _dead_letter(instance, call_key, exc, attempt + 1)
            bound.error(
                "sync failed: dead-lettered",
                reason=exc.reason,
                error=str(exc),
                crm_message=exc.crm_message,
            )
            return "dead"
        retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
        delay = backoff_delay(attempt, retry_after)
        bound.warning("sync failed: will retry", reason=exc.reason, error=str(exc), delay=delay)
        raise self.retry(countdown=delay, max_retries=None) from None
    bound.info(
        "sync finished",
        outcome=result.status,
        activity_id=result.activity_id,
        crm_writes=result.crm_writes,
    )
    return result.status


@app.task(name="acw.sync_batch", bind=True, max_retries=None)
def sync_batch(self: Task, instance: str, attempt: int = 0, scheduled: bool = True) -> str:
    """Sync the calls queued for ``instance`` in batch requests (see :mod:`acw_sync.batch`).

    Calls the batch could not take (a rejected record, a busy lock) go to ``sync_call``, whose
    retries and dead letters apply; a whole-batch transient failure retries the batch.
    """
    runtime = get_runtime()
    store = runtime.store
    window = batch.batch_window(runtime.pool, instance) if scheduled else 0.0
    outcome = batch.flush(store, runtime.pool, instance, window=window)
    if outcome.postpone:
        sync_batch.apply_async(args=[instance], countdown=outcome.postpone)
        return f"postponed {outcome.postpone:.2f} s"
    single = list(outcome.single)
    exc = outcome.error
    if exc is not None:
        spec = runtime.pool.instance(instance)
        if isinstance(exc, RetryableError) and attempt + 1 < spec.max_attempts:
            batch.requeue(store, instance, outcome.failed)
            delay = backoff_delay(attempt, exc.retry_after)
            log.warning(
                "batch failed: will retry", connector=instance, reason=exc.reason, delay=delay
            )
            sync_batch.apply_async(
                args=[instance],
                kwargs={"attempt": attempt + 1, "scheduled": False},
                countdown=delay,
            )
        else:
            single += outcome.failed
    if outcome.more:
        sync_batch.apply_async(args=[instance], kwargs={"scheduled": False})
    for call_key in single:
        sync_call.apply_async(args=[instance, call_key], kwargs={"first_seen": time.time()})
    return f"synced {len(outcome.synced)}, alone {len(single)}"


def _dead_letter(instance: str, call_key: str, exc: ConnectorError, attempts: int) -> None:
    store = get_runtime().store
    entry_id = f"{instance}|{call_key}"
    previous = {e["id"]: e for e in store.dead_letters()}.get(entry_id)
    now = time.time()
    store.dead_letter(
        {
            "id": entry_id,
            "connector": instance,
            "call_key": call_key,
            "reason": exc.reason,
            "attempts": attempts,
            "first_error": previous["first_error"] if previous else str(exc),
            "last_error": str(exc),
            "crm_message": exc.crm_message,
            "first_failed_at": previous["first_failed_at"] if previous else now,
            "last_failed_at": now,
        }
    )
    store.ledger_set(instance, call_key, state="dead", error=str(exc))
