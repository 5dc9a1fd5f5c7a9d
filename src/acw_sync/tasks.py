"""The Celery app and its two tasks: ``process_event`` and ``sync_call``.

``process_event`` merges one event into its call; once the call has ended it enqueues one
``sync_call`` per routed connector instance, so one CRM's failure never blocks another.
``sync_call`` runs :func:`acw_sync.sync.sync_call` behind the guard (:mod:`acw_sync.guard`:
pause, circuit breaker, shared rate limit, in-process retries of connection blips) and decides
what a failure means:

* transient: a Celery retry with capped, fully jittered exponential backoff, never shorter
  than the CRM's ``Retry-After``;
* a wait longer than the countdown cap, a paused instance or an open circuit: parked in Redis
  (:mod:`acw_sync.parking`), re-enqueued by the scheduler thread of the workers when due;
* permanent, credentials, or attempts/age spent: the dead-letter store.

``process_events`` runs ``process_event`` for each event of one ingest batch (one message for
up to 100 events: Celery's cost per message is paid once per batch).

Delivery is at-least-once: both tasks are idempotent (events are stored by id, CRM writes go
through the ledger and the connectors' reconciliation by key).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import kombu.exceptions
import redis
import structlog
from celery import Celery, Task
from celery.exceptions import Reject
from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from acw_sync import batch, status
from acw_sync import guard as guard_module
from acw_sync.circuit import CircuitSettings
from acw_sync.embedded import broker_url
from acw_sync.errors import (
    AuthExpired,
    ConnectorError,
    CredentialsInvalid,
    PermanentError,
    QuotaExhausted,
    RetryableError,
)
from acw_sync.guard import Deferred, Guard, in_doubt, mark_in_doubt
from acw_sync.model import CallEvent
from acw_sync.parking import Enqueue, Scheduler
from acw_sync.runtime import get_runtime, reset_runtime
from acw_sync.store import LockBusy, StateStore
from acw_sync.sync import sync_call as run_sync

__all__ = [
    "app",
    "backoff_delay",
    "enqueue_sync",
    "process_event",
    "process_events",
    "sync_batch",
    "sync_call",
]

log = structlog.get_logger("acw_sync.worker")

#: Longest countdown a retry may use. Celery on Redis redelivers any message held longer than
#: the visibility timeout (and then runs it twice), so countdowns stay far below it.
MAX_COUNTDOWN = 300.0
#: Deferrals this short (a rate-limit window, a circuit about to half-open) are Celery
#: countdowns; longer ones are parked in Redis and re-enqueued by the scheduler.
DEFER_INLINE = 10.0
#: Seconds one ``sync_batch`` task keeps flushing while whole batches are waiting.
INLINE_FLUSHES_FOR = 10.0
#: Whole-batch failures (transient, not deferrals) after which a call leaves the batch path
#: and syncs alone (``sync_call``, with its own ``max_attempts``).
BATCH_ATTEMPTS = 3
#: Seconds of the first retry; doubles each attempt (full jitter: uniform in [0, delay]).
BACKOFF_BASE = float(os.environ.get("ACW_BACKOFF_BASE", "2.0"))
#: How long one sync may hold its call's lock. A worker killed mid-sync leaves the lock until
#: it expires, so the redelivered task waits that long; a sync running longer than this could
#: overlap with the next one (still idempotent, but twice the CRM requests).
SYNC_LOCK_TTL = float(os.environ.get("ACW_SYNC_LOCK_TTL", "120"))
#: Broker redelivery of unacked messages (a worker lost with its tasks). Countdowns must stay
#: far below it; tests lower it (``ACW_VISIBILITY_TIMEOUT``) to see redelivery in seconds.
VISIBILITY_TIMEOUT = int(os.environ.get("ACW_VISIBILITY_TIMEOUT", "3600"))

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
    _broker_clients.clear()


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


#: Failures of our own infrastructure (the state Redis, the broker), not of a CRM.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    redis.RedisError,
    kombu.exceptions.OperationalError,
    ConnectionError,
)


class StateTask(Task):  # type: ignore[misc]
    """A task that never lets an infrastructure failure ack its message.

    Celery acknowledges a message whose task raised; if Redis went away mid-task, that would
    drop the event or the sync. Instead the task waits (bounded) for Redis to answer again and
    rejects the message with requeue; if even that cannot reach the broker, the message stays
    unacknowledged and the broker redelivers it after the visibility timeout.
    """

    #: Seconds to wait for the state Redis before giving the message back.
    infrastructure_wait = 30.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if self.request_stack.top is None:  # called directly, not by a worker
                return super().__call__(*args, **kwargs)
            # Under the worker's tracer the message's request is on the stack already, as for
            # a task without a custom __call__. Task.__call__ would push a copy over it, and
            # what the task leaves on its request (process_event's ACW figures) would be
            # popped with the copy before task_postrun reads it.
            return self.run(*args, **kwargs)
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning(
                "infrastructure unavailable: message given back",
                task=self.name,
                error=f"{type(exc).__name__}: {exc}",
            )
            _wait_for_state(self.infrastructure_wait)
            raise Reject(f"infrastructure unavailable: {type(exc).__name__}", requeue=True) from exc


def _wait_for_state(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_runtime().store.ping():
            return
        time.sleep(0.5)


@app.task(name="acw.process_event", bind=True, max_retries=None, base=StateTask)
def process_event(self: Task, event: dict[str, Any]) -> str:
    """Merge one event into its call; enqueue the syncs once the call has ended."""
    runtime = get_runtime()
    parsed = CallEvent.model_validate(event)
    store = runtime.store
    # One or two round trips: store the event, merge the call's events, save the record and
    # take the event off the inbox (stored: from here on the reconciler covers the call).
    figures = status.figures_key(store, parsed.call_key)
    added, record, figures_due = store.merge_event(parsed, figures_key=figures)
    if figures_due:
        # The call's ACW figures are due (once per call): task_signals observes them.
        self.request.acw_figures = record
    fields = {
        "event_id": parsed.event_id,
        "call_key": parsed.call_key,
        "provider": parsed.provider,
        "event_type": parsed.type.value,
    }
    log.info("event merged", duplicate=not added, ended=record.ended, **fields)
    if not record.ended:
        return "merged"
    team = record.agent.team if record.agent else None
    # A redelivered message may come from a worker killed between setting the pending flag and
    # enqueueing the sync: enqueue regardless (a second sync of the same call writes nothing).
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    for instance in runtime.config.routes_for(
        record.provider, record.provider_account, record.line_number, team
    ):
        window = batch.batch_window(runtime.pool, instance)
        if window > 0:  # batched: one sync_batch per window collects this call with others
            if batch.queue_call(store, instance, record.key, window) or redelivered:
                schedule_flush(instance, countdown=window)
            log.info("sync batched", connector=instance, **fields)
            continue
        if store.mark_pending(instance, record.key) or redelivered:
            sync_call.apply_async(args=[instance, record.key], kwargs={"first_seen": time.time()})
            log.info("sync queued", connector=instance, **fields)
    return "queued"


@app.task(name="acw.process_events", bind=True, max_retries=None, base=StateTask)
def process_events(self: Task, events: list[dict[str, Any]]) -> str:
    """Merge the events of one ingest batch, each exactly as ``process_event`` merges it.

    One message for many events saves the worker Celery's per-message cost. Each event runs
    ``process_event``'s own code on its own: one that fails is published again as its own
    ``process_event`` message (whose failure path then applies) and the others go on. A failure
    of our infrastructure gives the whole message back (:class:`StateTask`); the events merged
    before it are absorbed when it returns (stored by id; a second sync writes nothing).
    """
    results: list[tuple[str, str]] = []
    figures: list[Any] = []
    # task_signals counts each event and observes its call's figures, as for process_event.
    self.request.acw_events, self.request.acw_figures_many = results, figures
    for event in events:
        fields = _event_fields(event)
        with structlog.contextvars.bound_contextvars(**fields):
            try:
                result, record = _run_process_event(self.request, event)
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as exc:
                log.warning(
                    "event failed in its batch: published alone",
                    error=f"{type(exc).__name__}: {exc}",
                )
                # Counted by its own task, whose failure path (logs, metrics) then applies.
                process_event.apply_async(args=[event])
                continue
        results.append((str(fields.get("provider") or "?"), result))
        if record is not None:
            figures.append(record)
    alone = len(events) - len(results)
    return f"{len(results)} merged, {alone} published alone" if alone else f"{len(results)} merged"


def _event_fields(event: Any) -> dict[str, Any]:
    """The event's log fields (whatever the message holds: a bad event is logged too)."""
    if not isinstance(event, dict):
        return {}
    provider, call_id = event.get("provider"), event.get("call_id")
    fields = {"event_id": event.get("event_id"), "provider": provider}
    if provider and call_id:
        fields["call_key"] = f"{provider}:{call_id}"
    return {k: str(v) for k, v in fields.items() if v is not None}


def _run_process_event(batch_request: Any, event: dict[str, Any]) -> tuple[str, Any]:
    """``process_event``'s body for one event of a batch: its result, and the call's record
    when its figures became due.

    It runs with a request of its own that carries the batch's delivery info (a redelivered
    batch is a redelivered event), so what it leaves on its request stays with this event.
    """
    process_event.push_request(
        id=batch_request.id,
        args=[event],
        kwargs={},
        delivery_info=batch_request.delivery_info,
        hostname=batch_request.hostname,
    )
    try:
        result = process_event.run(event)
        return str(result), getattr(process_event.request, "acw_figures", None)
    finally:
        process_event.pop_request()


@app.task(name="acw.sync_call", bind=True, max_retries=None, base=StateTask)
def sync_call(
    self: Task,
    instance: str,
    call_key: str,
    first_seen: float | None = None,
    attempt: int | None = None,
) -> str:
    """Sync one call to one connector instance, retrying, parking or dead-lettering failures."""
    runtime = get_runtime()
    store = runtime.store
    first_seen = first_seen or time.time()
    # ``attempt`` counts real failures only: deferrals (pause, open circuit, throttling) and
    # lock contention are not attempts, so they are carried explicitly, not as Celery retries.
    attempt = int(attempt if attempt is not None else (self.request.retries or 0))
    bound = log.bind(call_key=call_key, connector=instance, attempt=attempt + 1)
    store.clear_pending(instance, call_key)
    guard = _guard(store)
    now = time.time()
    paused = guard.parking.paused_until(instance)
    if paused is not None:
        return _park(guard, instance, call_key, paused, first_seen, attempt, "paused", bound)
    retry_at = guard.circuit.blocked_until(instance, _circuit_settings(runtime.pool, instance))
    if retry_at is not None:
        return _park(guard, instance, call_key, retry_at, first_seen, attempt, "circuit", bound)
    kwargs: dict[str, Any] = {"first_seen": first_seen, "attempt": attempt}
    doubt_key = store.k("indoubt", instance, call_key)
    doubt_ms = int(store.redis.pttl(doubt_key))
    if doubt_ms > 0:
        # A write of this call got no answer moments ago, in this chain of retries or another
        # (a redelivery, the reconciler): let it land before anyone searches for it by key.
        raise self.retry(countdown=doubt_ms / 1000 + random.random(), kwargs=kwargs)
    try:
        with store.lock(f"sync:{instance}:{call_key}", ttl=SYNC_LOCK_TTL):
            result = run_sync(
                store, runtime.pool, instance, call_key, guard=guard, analyze=runtime.analyzer()
            )
    except LockBusy:
        # Another worker is syncing this call; run again after it, with the newest data.
        raise self.retry(countdown=1.0 + random.random(), kwargs=kwargs) from None
    except Deferred as exc:
        due = now + (exc.retry_after or 0.0)
        if (exc.retry_after or 0.0) <= DEFER_INLINE:
            raise self.retry(
                countdown=(exc.retry_after or 0.0) + random.random(), kwargs=kwargs
            ) from None
        return _park(guard, instance, call_key, due, first_seen, attempt, exc.why, bound)
    except ConnectorError as exc:
        spec = runtime.pool.instance(instance)
        age = time.time() - first_seen
        permanent = isinstance(exc, PermanentError | CredentialsInvalid)
        if isinstance(exc, AuthExpired) and attempt >= 1:
            permanent = True
        quota = isinstance(exc, QuotaExhausted)  # the instance is paused: not this call's fault
        exhausted = (attempt + 1 >= spec.max_attempts and not quota) or age > spec.max_age
        if permanent or exhausted:
            _dead_letter(instance, call_key, exc, attempt + 1, first_seen)
            return "dead"
        retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
        if in_doubt(exc):  # the write may still land: give it time before reconciling
            retry_after = max(retry_after or 0.0, guard_module.IN_DOUBT_DELAY)
            mark_in_doubt(store, instance, [call_key])
        delay = backoff_delay(attempt, retry_after)
        kwargs["attempt"] = attempt if quota else attempt + 1
        if retry_after is not None and retry_after > MAX_COUNTDOWN:
            bound.warning(
                "sync failed: parked", reason=exc.reason, error=str(exc), wait=retry_after
            )
            return _park(
                guard, instance, call_key, now + retry_after, first_seen,
                kwargs["attempt"], exc.reason, bound,
            )  # fmt: skip
        bound.warning("sync failed: will retry", reason=exc.reason, error=str(exc), delay=delay)
        raise self.retry(countdown=delay, kwargs=kwargs) from None
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

    The flush goes through the guard as ``sync_call`` does, and its failures mean what they
    mean there: a deferral (pause, open circuit, rate budget) requeues the calls for a short
    wait or parks them for a long one, spending no attempt; a write in doubt parks them past
    ``IN_DOUBT_DELAY`` (they come back into a batch and reconcile by key); another transient
    failure retries the batch with backoff, and a call whose attempts are spent, a rejected
    record, a busy lock or a permanent or credentials error go to ``sync_call``, whose retries
    and dead letters apply.
    """
    runtime = get_runtime()
    store = runtime.store
    guard = _guard(store)
    window = batch.batch_window(runtime.pool, instance) if scheduled else 0.0

    def next_batch() -> None:  # more calls than one batch: the next goes in another lane
        if batch.claim_flush(store, instance, batch.batch_window(runtime.pool, instance)):
            schedule_flush(instance)

    # While whole batches are waiting (a burst), this task flushes them one after another
    # instead of queueing a task per batch behind the burst's events; bounded in time.
    deadline = time.monotonic() + INLINE_FLUSHES_FOR
    counts = {"synced": 0, "alone": 0, "parked": 0}
    first = True
    while True:
        outcome = batch.flush(
            store,
            runtime.pool,
            instance,
            window=window if first else 0.0,
            guard=guard,
            on_more=next_batch if first else None,
        )
        if outcome.postpone:
            schedule_flush(instance, countdown=outcome.postpone)
            break
        _batch_done(store, runtime.pool, guard, instance, outcome, attempt=attempt, counts=counts)
        if outcome.error is not None or not outcome.full or time.monotonic() > deadline:
            if outcome.more:
                schedule_flush(instance, kwargs={"scheduled": False})
            break
        first = False
    return ", ".join(f"{k} {v}" for k, v in counts.items())


# KEYS: the queue.  ARGV: task id, how deep to look.  Moves the message to the consumer's end.
_JUMP_QUEUE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]))
for _, item in ipairs(items) do
  if string.find(item, ARGV[1], 1, true) then
    redis.call('LREM', KEYS[1], 1, item)
    redis.call('RPUSH', KEYS[1], item)
    return 1
  end
end
return 0
"""
#: How far from the publishing end a just-published flush is looked for (a burst's webhooks
#: are pushed meanwhile).
JUMP_DEPTH = 500
_broker_clients: dict[str, redis.Redis] = {}
"""One client per broker URL in this process (cleared after a fork)."""


def schedule_flush(instance: str, **options: Any) -> None:
    """Publish a ``sync_batch`` that is taken before the messages already queued.

    In a burst the queue holds thousands of ``process_event`` messages; a flush published
    behind them would wait for all of them, so batches would only start once every event was
    merged. On a Redis broker the flush message is moved to the consumer's end of the list (in
    one Lua call: it stays in the list throughout, so it cannot be lost; an ETA is honoured
    by the worker as usual). Other brokers get the plain ``apply_async``.
    """
    result = sync_batch.apply_async(args=[instance], **options)
    url = str(app.conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return
    try:
        client = _broker_clients.get(url)
        if client is None:
            client = _broker_clients[url] = redis.Redis.from_url(url, socket_timeout=5)
        client.eval(_JUMP_QUEUE, 1, app.conf.task_default_queue, str(result.id), JUMP_DEPTH)
    except redis.RedisError as exc:  # still queued, only not first: never worth failing for
        log.warning("flush not moved ahead of the queue", error=str(exc))


def _batch_done(
    store: StateStore,
    pool: Any,
    guard: Guard,
    instance: str,
    outcome: batch.BatchOutcome,
    *,
    attempt: int,
    counts: dict[str, int],
) -> None:
    """Park the calls in doubt, handle a failure, send the calls that must go alone."""
    bound = log.bind(connector=instance)
    now = time.time()
    single = [(key, 0) for key in outcome.single]
    for key, wait in outcome.waiting.items():
        _park(guard, instance, key, now + wait, now, 0, "in_doubt", bound.bind(call_key=key))
    if outcome.error is not None:
        single += _batch_failed(store, pool, guard, instance, outcome, attempt=attempt)
    for call_key, tries in single:
        sync_call.apply_async(
            args=[instance, call_key], kwargs={"first_seen": time.time(), "attempt": tries}
        )
    counts["synced"] += len(outcome.synced)
    counts["alone"] += len(single)
    counts["parked"] += len(outcome.waiting)


def _batch_failed(
    store: StateStore,
    pool: Any,
    guard: Guard,
    instance: str,
    outcome: batch.BatchOutcome,
    *,
    attempt: int,
) -> list[tuple[str, int]]:
    """Requeue, park or retry the calls of a failed flush; those for ``sync_call`` (with the
    attempts they have spent)."""
    exc = outcome.error
    assert exc is not None
    failed = list(outcome.failed)
    bound = log.bind(connector=instance, reason=exc.reason, error=str(exc), calls=len(failed))
    now = time.time()
    if isinstance(exc, Deferred | QuotaExhausted):  # not the calls' fault: no attempt spent
        wait = exc.retry_after or 0.0
        if wait <= DEFER_INLINE:
            batch.requeue(store, instance, failed)
            schedule_flush(
                instance,
                kwargs={"attempt": attempt, "scheduled": False},
                countdown=wait + random.random(),
            )
            return []
        why = exc.why if isinstance(exc, Deferred) else exc.reason
        for key in failed:
            _park(guard, instance, key, now + wait, now, 0, why, bound.bind(call_key=key))
        return []
    if not isinstance(exc, RetryableError):
        return [(key, 0) for key in failed]  # permanent, credentials, expired auth: alone
    # One fault fails a whole batch: after a few, a call goes on alone, with sync_call's own
    # budget (max_attempts, max_age), so correlated failures never dead-letter a batch at once.
    limit = min(pool.instance(instance).max_attempts, BATCH_ATTEMPTS)
    tries = batch.count_failures(store, instance, failed)
    spent = [k for k, n in tries.items() if n >= limit]
    again = [k for k, n in tries.items() if n < limit]
    single = [(k, 0) for k in spent]
    batch.forget_failures(store, instance, spent)
    if in_doubt(exc):
        # The write may still land: park past the doubt; when due the calls come back into a
        # batch whose connector searches for them by key before writing.
        due = now + guard_module.IN_DOUBT_DELAY
        bound.warning("batch write in doubt: calls parked", wait=guard_module.IN_DOUBT_DELAY)
        for key in again:
            _park(guard, instance, key, due, now, tries[key], "in_doubt", bound.bind(call_key=key))
        return single
    delay = backoff_delay(attempt, exc.retry_after)
    if exc.retry_after is not None and exc.retry_after > MAX_COUNTDOWN:
        for key in again:
            _park(guard, instance, key, now + exc.retry_after, now, tries[key], exc.reason, bound)
        return single
    batch.requeue(store, instance, again)
    bound.warning("batch failed: will retry", delay=delay)
    schedule_flush(instance, kwargs={"attempt": attempt + 1, "scheduled": False}, countdown=delay)
    return single


def _circuit_settings(pool: Any, instance: str) -> CircuitSettings:
    return CircuitSettings(**pool.instance(instance).circuit.model_dump())


_guards: dict[int, Guard] = {}


def _guard(store: StateStore) -> Guard:
    """One guard per state store (its Lua scripts registered once)."""
    guard = _guards.get(id(store))
    if guard is None or guard.store is not store:
        _guards.clear()
        guard = _guards[id(store)] = Guard(store)
    return guard


def _park(  # noqa: PLR0917
    guard: Guard,
    instance: str,
    call_key: str,
    due: float,
    first_seen: float,
    attempt: int,
    reason: str,
    bound: Any,
) -> str:
    # A little jitter: work parked behind one circuit does not all come back at one instant.
    due += random.uniform(0, 1.0)
    guard.parking.park(
        instance, call_key, due, first_seen=first_seen, attempt=attempt, reason=reason
    )
    bound.info("sync parked", reason=reason, due_in=round(due - time.time(), 1))
    return "parked"


def republish_event(event: CallEvent) -> None:
    """Publish an accepted event again (its first message was lost; see the inbox)."""
    process_event.apply_async(args=[event.model_dump(mode="json")])


def enqueue_sync(instance: str, call_key: str, first_seen: float, attempt: int) -> None:
    """Put one ``sync_call`` on the queue (the scheduler, the reconciler, ``dlq replay``)."""
    sync_call.apply_async(
        args=[instance, call_key], kwargs={"first_seen": first_seen, "attempt": attempt}
    )


def batch_enqueue(store: StateStore, pool: Any) -> Enqueue:
    """The scheduler's enqueue: a call of a batching instance (parked, or found unsynced by the
    reconciler) goes back into its instance's batch, so work parked behind an outage or a
    doubt comes back in batches; others get a ``sync_call``."""

    def enqueue(instance: str, call_key: str, first_seen: float, attempt: int) -> None:
        if instance in pool.config.connectors and (window := batch.batch_window(pool, instance)):
            if batch.queue_call(store, instance, call_key, window):
                schedule_flush(instance, countdown=window)
            return
        enqueue_sync(instance, call_key, first_seen, attempt)

    return enqueue


def _dead_letter(
    instance: str, call_key: str, exc: ConnectorError, attempts: int, first_seen: float
) -> None:
    store = get_runtime().store
    entry_id = f"{instance}|{call_key}"
    previous = store.get_dead_letter(entry_id)
    now = time.time()
    record = store.record(call_key)
    store.dead_letter(
        {
            "id": entry_id,
            "connector": instance,
            "call_key": call_key,
            "provider": record.provider if record else call_key.partition(":")[0],
            "reason": exc.reason,
            "attempts": attempts,
            "first_error": previous["first_error"] if previous else str(exc),
            "last_error": str(exc),
            "crm_message": exc.crm_message,
            "status": exc.status,
            "first_seen": first_seen,
            "first_failed_at": previous["first_failed_at"] if previous else now,
            "last_failed_at": now,
        }
    )
    store.ledger_set(instance, call_key, state="dead", error=str(exc))
    fields = {
        "call_key": call_key,
        "connector": instance,
        "reason": exc.reason,
        "attempts": attempts,
        "error": str(exc),
        "crm_message": exc.crm_message,
    }
    if isinstance(exc, CredentialsInvalid):
        # Nothing for this instance will sync until an admin fixes its credentials: say so loudly.
        log.critical(
            "ALERT: CRM credentials rejected; fix them, then `acw-sync dlq replay --reason "
            "credentials`",
            alert="credentials",
            **fields,
        )
    else:
        log.error("sync failed: dead-lettered", **fields)


# -- the scheduler thread of the worker's main process ------------------------------------
_scheduler: Scheduler | None = None


@worker_ready.connect
def _start_scheduler(**_: Any) -> None:
    global _scheduler
    if os.environ.get("ACW_SCHEDULER", "1") == "0":
        return
    from acw_sync.config import load_config
    from acw_sync.runtime import state_url
    from acw_sync.sync import ConnectorPool

    store = StateStore.from_url(state_url())
    _warn_unless_durable(store)
    config = load_config()
    enqueue = batch_enqueue(store, ConnectorPool(config))
    _scheduler = Scheduler(store, config, enqueue, republish=republish_event)
    _scheduler.start()
    log.info("scheduler started", interval=_scheduler.interval)


def _warn_unless_durable(store: StateStore) -> None:
    """Dead letters, parked work and queued tasks need AOF and no eviction: say so if not."""
    try:
        aof = store.redis.config_get("appendonly").get("appendonly")
        policy = store.redis.config_get("maxmemory-policy").get("maxmemory-policy")
    except Exception:  # managed Redis often forbids CONFIG: nothing to check
        return
    if aof != "yes" or policy != "noeviction":
        log.warning(
            "Redis is not durable: set appendonly yes, appendfsync everysec and "
            "maxmemory-policy noeviction, or a restart loses queued work and dead letters",
            appendonly=aof,
            maxmemory_policy=policy,
        )


@worker_shutdown.connect
def _stop_scheduler(**_: Any) -> None:
    if _scheduler is not None:
        _scheduler.stop()
