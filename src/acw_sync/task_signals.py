"""Worker observability through Celery signals: log context, metrics, heartbeats, sync stats.

Connected when :mod:`acw_sync.tasks` is imported, so the tasks themselves stay free of ops
code. Around every task the call's fields (event id, call key, provider, connector instance,
attempt) are bound into the log context, so every line of the task, Celery's included,
carries them. After it, the outcome is counted (:mod:`acw_sync.metrics`) and recorded in the
small Redis records :mod:`acw_sync.status` reads. The worker's main process writes a
heartbeat while it runs.

A failure in here is logged and swallowed: observability never fails a task.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from celery.signals import (
    after_task_publish,
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from acw_sync import metrics, status
from acw_sync.logs import bind_call, clear_call, configure_logging
from acw_sync.store import LockBusy, StateStore

__all__ = ["call_fields"]

log = structlog.get_logger("acw_sync.worker")

PROCESS_EVENT = "acw.process_event"
PROCESS_EVENTS = "acw.process_events"
SYNC_CALL = "acw.sync_call"
_TERMINAL = {"synced", "unchanged", "skipped", "unresolved", "not_ended", "unknown_call", "dead"}


def call_fields(task_name: str, args: Any, kwargs: Any) -> dict[str, Any]:
    """The call's identity from a task's arguments (what the log context carries)."""
    args, kwargs = list(args or ()), dict(kwargs or {})
    if task_name == PROCESS_EVENT:
        event = args[0] if args else kwargs.get("event")
        if isinstance(event, dict):
            provider, call_id = event.get("provider"), event.get("call_id")
            return {
                "event_id": event.get("event_id"),
                "provider": provider,
                "call_key": f"{provider}:{call_id}" if provider and call_id else None,
            }
    elif task_name == SYNC_CALL:
        instance = args[0] if args else kwargs.get("instance")
        call_key = args[1] if len(args) > 1 else kwargs.get("call_key")
        provider = str(call_key).partition(":")[0] if call_key else None
        return {"connector": instance, "call_key": call_key, "provider": provider}
    return {}


@contextlib.contextmanager
def _guard(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        log.warning("observability hook failed", hook=what, error=f"{type(exc).__name__}: {exc}")


def _store() -> StateStore:
    from acw_sync.runtime import get_runtime

    return get_runtime().store


# -- around each task -------------------------------------------------------------------------


@dataclass(slots=True)
class _Running:
    """What the hooks around one task share: its call fields and when it started."""

    fields: dict[str, Any]
    wall: float
    cpu: float
    """This thread's CPU clock at the start."""


_running: dict[str, _Running] = {}


def _bind_context(
    *, task_id: str, task: Any, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    clear_call()
    with _guard("prerun"):
        # The task may carry its own count of real failures (deferrals are not attempts).
        carried = (kwargs or {}).get("attempt") if isinstance(kwargs, dict) else None
        attempt = int(carried if carried is not None else (task.request.retries or 0)) + 1
        fields = call_fields(task.name, args, kwargs)
        bind_call(task_id=task_id, task=task.name, attempt=attempt, **fields)
        _running[task_id] = _Running(fields, time.perf_counter(), time.thread_time())


def _after_task(
    *,
    task_id: str,
    task: Any,
    args: Any = None,
    kwargs: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    running = _running.pop(task_id, None)
    try:
        if task.name in {PROCESS_EVENT, PROCESS_EVENTS}:
            with _guard("call figures"):  # the flag is taken: observe whatever the outcome
                _observe_figures(task)
        if state != "SUCCESS":
            return  # retries and failures are counted by their own signals
        fields = running.fields if running else call_fields(task.name, args, kwargs)
        if task.name == SYNC_CALL:
            with _guard("postrun sync"):
                started = running.wall if running else None
                _sync_done(fields["connector"], fields["call_key"], str(retval), started)
        elif task.name == PROCESS_EVENT:
            with _guard("postrun event"):
                _event_done(fields.get("provider") or "?", str(retval))
        elif task.name == PROCESS_EVENTS:
            with _guard("postrun events"):  # per event, as if each had been its own task
                for provider, result in getattr(task.request, "acw_events", None) or ():
                    _event_done(provider, result)
    finally:
        clear_call()
        if running is not None:  # the task and these hooks: what the task cost this process
            with _guard("task cpu"):
                _task_cpu(task.name).inc(max(0.0, time.thread_time() - running.cpu))


@functools.cache
def _task_cpu(task_name: str) -> Any:
    return metrics.TASK_CPU.labels(task_name)


@functools.cache
def _events_processed(provider: str, result: str) -> Any:
    # Label values come from the config's providers and a fixed set of results: bounded.
    return metrics.EVENTS_PROCESSED.labels(provider, result)


def _sync_done(instance: str, call_key: str, result: str, started: float | None) -> None:
    metrics.SYNCS.labels(instance, result).inc()
    if started is not None:
        metrics.SYNC_DURATION.labels(instance).observe(time.perf_counter() - started)
    store = _store()
    if result not in _TERMINAL:
        return
    status.mark_done(store, instance, call_key)
    status.record_attempt(store, instance, ok=result != "dead")
    if result == "dead":
        raw = store.redis.hget(store.k("dlq"), f"{instance}|{call_key}")
        letter = json.loads(str(raw)) if raw else {}
        reason = str(letter.get("reason") or "error")
        metrics.DEAD_LETTERS.labels(instance, reason).inc()
        status.record_error(
            store, instance, call_key, reason, str(letter.get("last_error") or ""), outcome="dead"
        )


def _event_done(provider: str, result: str) -> None:
    _events_processed(provider, result).inc()


def _observe_figures(task: Any) -> None:
    """An ended call's ACW figures, once per call: ``process_event`` leaves the record on
    the request when it set the call's figures flag (with the record, in one round trip);
    ``process_events`` leaves the list of them."""
    record = getattr(task.request, "acw_figures", None)
    if record is not None:
        metrics.observe_call_figures(record)
    for record in getattr(task.request, "acw_figures_many", None) or ():
        metrics.observe_call_figures(record)


def _on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    with _guard("retry"):
        name = getattr(sender, "name", "?")
        fields = call_fields(name, getattr(request, "args", None), getattr(request, "kwargs", None))
        # The task raises Retry inside its `except ConnectorError`: the cause is the Retry's
        # exc when given, else the exception being handled when it was raised.
        cause = getattr(reason, "exc", None) or getattr(reason, "__context__", None)
        instance = fields.get("connector") or "-"
        if isinstance(cause, LockBusy) or type(cause).__name__ == "Deferred":
            # Another worker holds the call, or the guard said wait (pause, open circuit,
            # rate limit): a retry, but no failed attempt.
            why = "busy" if isinstance(cause, LockBusy) else "deferred"
            metrics.RETRIES.labels(name, instance, why).inc()
            return
        why = str(getattr(cause, "reason", None) or type(cause).__name__)
        metrics.RETRIES.labels(name, instance, why).inc()
        if name == SYNC_CALL and fields.get("call_key"):
            metrics.SYNCS.labels(instance, "retry").inc()
            store = _store()
            status.record_attempt(store, instance, ok=False)
            status.record_error(
                store, instance, fields["call_key"], why, str(cause), outcome="retry"
            )


def _on_failure(
    sender: Any = None, exception: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    with _guard("failure"):
        name = getattr(sender, "name", "?")
        fields = call_fields(name, args, kwargs)
        if name == SYNC_CALL and fields.get("call_key"):
            instance = fields["connector"]
            metrics.SYNCS.labels(instance, "error").inc()
            store = _store()
            status.record_attempt(store, instance, ok=False)
            why = str(getattr(exception, "reason", None) or type(exception).__name__)
            status.record_error(
                store, instance, fields["call_key"], why, str(exception), outcome="error"
            )


def _on_publish(sender: str | None = None, body: Any = None, **_: Any) -> None:
    """A sync was queued (first time, or again by a retry or a replay): it is unsynced."""
    if sender != SYNC_CALL:
        return
    with _guard("publish"):
        args, kwargs = (body[0], body[1]) if isinstance(body, list | tuple) else ((), {})
        fields = call_fields(SYNC_CALL, args, kwargs)
        if fields.get("connector") and fields.get("call_key"):
            status.mark_unsynced(_store(), fields["connector"], fields["call_key"])


# -- the worker process -------------------------------------------------------------------------


def _our_logging(loglevel: Any = None, **_: Any) -> None:
    """Celery's loggers go through our formatter (a receiver here stops Celery's own setup)."""
    level = loglevel if isinstance(loglevel, str) else None
    if isinstance(loglevel, int):
        import logging

        level = logging.getLevelName(loglevel)
    configure_logging(level)


class _Heartbeat:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.hostname = ""

    def start(self, hostname: str, concurrency: int | None) -> None:
        from acw_sync.runtime import state_url

        store = StateStore.from_url(state_url())
        port = os.environ.get("ACW_WORKER_METRICS_PORT")
        info = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "concurrency": concurrency,
            "metrics_port": int(port) if port else None,
        }
        self.hostname = hostname

        def run() -> None:
            while not self._stop.is_set():
                with _guard("heartbeat"):
                    status.beat(store, hostname, info)
                self._stop.wait(status.HEARTBEAT_TTL / 3)
            with _guard("heartbeat stop"):
                status.forget_worker(store, hostname)

        self._thread = threading.Thread(target=run, name="acw-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


_heartbeat = _Heartbeat()


def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    with _guard("worker ready"):
        hostname = str(getattr(sender, "hostname", None) or os.uname().nodename)
        pool = getattr(getattr(sender, "controller", None), "concurrency", None)
        _heartbeat.start(hostname, pool if isinstance(pool, int) else None)
        log.info("worker ready", hostname=hostname, concurrency=pool)


def _shutting_down(sig: Any = None, how: Any = None, **_: Any) -> None:
    log.info(
        "worker shutting down: running tasks finish, held messages go back to the queue",
        signal=str(sig),
        how=str(how),
    )


def _stop_heartbeat(**_: Any) -> None:
    with _guard("worker shutdown"):
        _heartbeat.stop()
        log.info("worker stopped", hostname=_heartbeat.hostname)


for _signal, _receiver in (
    (task_prerun, _bind_context),
    (task_postrun, _after_task),
    (task_retry, _on_retry),
    (task_failure, _on_failure),
    (after_task_publish, _on_publish),
    (setup_logging, _our_logging),
    (worker_ready, _start_heartbeat),
    (worker_shutting_down, _shutting_down),
    (worker_shutdown, _stop_heartbeat),
):
    _signal.connect(_receiver, weak=False)
