"""Prometheus metrics of the server and the workers, and the registry a scrape reads.

Every metric is defined here, so this module is the catalogue (the README's "Operating acw-sync" explains each).
Labels stay bounded: providers and connector instances come from the config, reasons from
fixed sets, teams from the agents' team names.

Multi-process: a prefork worker's tasks run in child processes. When
``PROMETHEUS_MULTIPROC_DIR`` is set *before* ``prometheus_client`` is first imported (the
``worker --metrics-port`` command does it), each process writes its samples to files there and
:func:`scrape_registry` aggregates them. The directory must be empty at start-up and must not
be shared by two process groups (the server and a worker, or two workers).

Gauges that describe shared state (queue depth, dead letters, workers alive) are computed
at scrape time from Redis by :class:`StateCollector`, never stored in a process.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from acw_sync.errors import ConnectorError, RateLimited

__all__ = [
    "ACW_HANDLE",
    "ACW_HOLD",
    "ACW_TALK",
    "ACW_WRAPUP",
    "CALL_END_TO_CRM",
    "CRM_ERRORS",
    "CRM_LATENCY",
    "CRM_RATE_LIMIT_WAITS",
    "CRM_RATE_LIMIT_WAIT_SECONDS",
    "CRM_REQUESTS",
    "DEAD_LETTERS",
    "EVENTS_PROCESSED",
    "FOLLOWUPS",
    "INGEST_LATENCY",
    "RETRIES",
    "SYNCS",
    "SYNC_DURATION",
    "TASK_CPU",
    "WEBHOOKS_ACCEPTED",
    "WEBHOOKS_RECEIVED",
    "WEBHOOKS_REJECTED",
    "StateCollector",
    "WebhookMetrics",
    "instrument_connector",
    "instrument_webhooks",
    "observe_call_figures",
    "record_rate_limit_wait",
    "scrape_registry",
]

_DURATION_BUCKETS = (5, 15, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)

WEBHOOKS_RECEIVED = Counter(
    "acw_webhooks_received_total", "Webhook requests received", ["provider"]
)
WEBHOOKS_ACCEPTED = Counter(
    "acw_webhooks_accepted_total",
    "Webhook requests answered 2xx, by kind (new, duplicate, handshake, ignored)",
    ["provider", "kind"],
)
WEBHOOKS_REJECTED = Counter(
    "acw_webhooks_rejected_total",
    "Webhook requests refused, by reason "
    "(signature, payload, too_large, unknown_provider, queue_unavailable, error)",
    ["provider", "reason"],
)
INGEST_LATENCY = Histogram(
    "acw_ingest_latency_seconds",
    "Time to answer a webhook (verify, parse, dedupe, enqueue)",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PROCESSED = Counter(
    "acw_events_processed_total",
    "Call events merged by workers (result: merged, queued, duplicate)",
    ["provider", "result"],
)
SYNCS = Counter(
    "acw_syncs_total",
    "Sync attempts by connector instance and result "
    "(synced, unchanged, skipped, unresolved, not_ended, unknown_call, parked, retry, dead, "
    "error)",
    ["connector", "result"],
)
SYNC_DURATION = Histogram(
    "acw_sync_duration_seconds",
    "Time one sync attempt took",
    ["connector"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RETRIES = Counter(
    "acw_task_retries_total",
    "Task retries scheduled, by task, connector instance and error reason",
    ["task", "connector", "reason"],
)
TASK_CPU = Counter(
    "acw_task_cpu_seconds_total",
    "CPU seconds spent running tasks in worker pool processes, by task (Celery's own "
    "bookkeeping around the task and the consumer process are not included)",
    ["task"],
)
DEAD_LETTERS = Counter(
    "acw_dead_letters_total", "Syncs moved to the dead-letter store", ["connector", "reason"]
)
CRM_REQUESTS = Counter(
    "acw_crm_requests_total",
    "Calls into a connector's CRM operations (one may be several HTTP requests)",
    ["connector", "operation"],
)
CRM_ERRORS = Counter(
    "acw_crm_errors_total",
    "CRM operations that failed, by error reason",
    ["connector", "operation", "reason"],
)
CRM_LATENCY = Histogram(
    "acw_crm_request_seconds",
    "Time of one CRM operation",
    ["connector", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CRM_RATE_LIMIT_WAITS = Counter(
    "acw_crm_rate_limit_waits_total",
    "Times a CRM's rate limit made us wait (429s and the local limiter)",
    ["connector"],
)
CRM_RATE_LIMIT_WAIT_SECONDS = Counter(
    "acw_crm_rate_limit_wait_seconds_total", "Seconds waited for CRM rate limits", ["connector"]
)
CALL_END_TO_CRM = Histogram(
    "acw_call_end_to_crm_seconds",
    "Time from the call's end to its activity's first write in the CRM",
    ["connector"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400),
)
FOLLOWUPS = Counter(
    "acw_followups_created_total", "Follow-up tasks created, by rule", ["connector", "rule"]
)
ACW_TALK = Histogram(
    "acw_call_talk_seconds", "Talk time of ended calls", ["team"], buckets=_DURATION_BUCKETS
)
ACW_HOLD = Histogram(
    "acw_call_hold_seconds", "Hold time of ended calls", ["team"], buckets=_DURATION_BUCKETS
)
ACW_WRAPUP = Histogram(
    "acw_call_wrapup_seconds",
    "After-call work (wrap-up) time reported by the platform",
    ["team"],
    buckets=_DURATION_BUCKETS,
)
ACW_HANDLE = Histogram(
    "acw_call_handle_seconds",
    "Handle time (AHT = talk + hold + wrap-up) of connected calls",
    ["team"],
    buckets=_DURATION_BUCKETS,
)

NO_TEAM = "(none)"


# -- webhooks -------------------------------------------------------------------------------

_REJECT_REASONS = {
    400: "payload",
    401: "signature",
    403: "signature",
    404: "unknown_provider",
    413: "too_large",
    503: "queue_unavailable",
}

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Awaitable[Any]])


def _accepted_kind(status: int, body: bytes) -> str:
    if status == 202:
        return "new"
    try:
        answer = json.loads(body)
    except ValueError:
        return "handshake"
    if not isinstance(answer, dict) or "accepted" not in answer:
        return "handshake"
    return "ignored" if answer.get("ignored") else "duplicate"


class WebhookMetrics:
    """The webhook endpoint's metrics, with their label children bound once.

    ``Counter.labels(...)`` costs several times the increment it precedes; on the request path
    the children are looked up in a dict instead (created on first use, so the exposition holds
    only the series that happened). Unconfigured provider names are counted as ``unknown``
    (bounded labels).
    """

    def __init__(self, providers: Iterable[str]) -> None:
        self._known = frozenset(providers)
        self._children: dict[tuple[str, str, str], Any] = {}

    def label(self, name: str) -> str:
        """The provider label for a name taken from the path."""
        return name if name in self._known else "unknown"

    def _child(self, metric: str, provider: str, value: str = "") -> Any:
        key = (metric, provider, value)
        child = self._children.get(key)
        if child is None:
            if metric == "received":
                child = WEBHOOKS_RECEIVED.labels(provider)
            elif metric == "latency":
                child = INGEST_LATENCY.labels(provider)
            elif metric == "accepted":
                child = WEBHOOKS_ACCEPTED.labels(provider, value)
            else:
                child = WEBHOOKS_REJECTED.labels(provider, value)
            self._children[key] = child
        return child

    def received(self, provider: str) -> None:
        self._child("received", provider).inc()

    def answered(self, provider: str, status: int, seconds: float, kind: str = "") -> None:
        """One answered request: its latency, and accepted by ``kind`` or rejected by status."""
        self._child("latency", provider).observe(seconds)
        if status < 300:
            self._child("accepted", provider, kind or "handshake").inc()
        else:
            self._child("rejected", provider, _REJECT_REASONS.get(status, "error")).inc()

    def failed(self, provider: str) -> None:
        """An unhandled error (answered 500; not timed, as before)."""
        self._child("rejected", provider, "error").inc()


def instrument_webhooks(endpoint: _Endpoint, providers: Iterable[str]) -> _Endpoint:
    """Wrap a Starlette webhook endpoint: count requests by provider and outcome, time them.

    The server's own endpoint uses :class:`WebhookMetrics` directly (no Request object); this
    wrapper is kept for endpoints built on Starlette.
    """
    metrics = WebhookMetrics(providers)

    @functools.wraps(endpoint)
    async def timed(request: Any) -> Any:
        provider = metrics.label(request.path_params.get("provider", ""))
        started = time.perf_counter()
        metrics.received(provider)
        try:
            response = await endpoint(request)
        except Exception:
            metrics.failed(provider)
            raise
        status = int(response.status_code)
        kind = _accepted_kind(status, response.body) if status < 300 else ""
        metrics.answered(provider, status, time.perf_counter() - started, kind)
        return response

    return timed  # type: ignore[return-value]


# -- connectors -----------------------------------------------------------------------------

_OPERATIONS = (
    "find_customers",
    "create_customer",
    "update_customer",
    "find_owner",
    "upsert_call",
    "create_task",
)

_C = TypeVar("_C")


def record_rate_limit_wait(instance: str, seconds: float) -> None:
    """Count one wait for a CRM rate limit (the shared limiter and 429 answers call this)."""
    CRM_RATE_LIMIT_WAITS.labels(instance).inc()
    CRM_RATE_LIMIT_WAIT_SECONDS.labels(instance).inc(max(0.0, seconds))


def _timed_operation(instance: str, operation: str, method: Callable[..., Any]) -> Any:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        CRM_REQUESTS.labels(instance, operation).inc()
        started = time.perf_counter()
        try:
            result = method(*args, **kwargs)
        except ConnectorError as exc:
            CRM_ERRORS.labels(instance, operation, exc.reason).inc()
            if isinstance(exc, RateLimited):
                record_rate_limit_wait(instance, exc.retry_after or 0.0)
            raise
        except NotImplementedError:
            raise
        except Exception:
            CRM_ERRORS.labels(instance, operation, "exception").inc()
            raise
        finally:
            CRM_LATENCY.labels(instance, operation).observe(time.perf_counter() - started)
        _after(instance, operation, args, result)
        return result

    return call


def _after(instance: str, operation: str, args: tuple[Any, ...], result: Any) -> None:
    created = bool(getattr(result, "created", False))
    if operation == "upsert_call" and created and args:
        ended = getattr(args[0], "ended_at", None)
        if ended is not None:
            CALL_END_TO_CRM.labels(instance).observe(max(0.0, time.time() - ended.timestamp()))
    elif operation == "create_task" and created and args:
        FOLLOWUPS.labels(instance, str(getattr(args[0], "rule", "?"))).inc()


def instrument_connector(connector: _C) -> _C:
    """Count and time ``connector``'s CRM operations (returns the same object, instrumented).

    ``upsert_call`` that creates an activity also observes the call-end-to-CRM time;
    ``create_task`` that creates a task counts a follow-up for its rule.
    """
    instance = str(getattr(connector, "instance", "?"))
    for operation in _OPERATIONS:
        method = getattr(connector, operation, None)
        if method is not None and not getattr(method, "_acw_timed", False):
            wrapped = _timed_operation(instance, operation, method)
            setattr(wrapped, "_acw_timed", True)  # noqa: B010
            setattr(connector, operation, wrapped)
    return connector


# -- call figures ---------------------------------------------------------------------------


def observe_call_figures(record: Any) -> None:
    """Observe one ended call's talk, hold, wrap-up and handle times (call once per call).

    The figures are the analyzer's (:func:`acw_sync.analyzer.call_figures`), so the metrics
    and the ACW report agree: talk is the platform's, else answered to ended; a missed call
    has no talk or handle time.
    """
    from acw_sync.analyzer import call_figures  # workers only: keep the server's import light

    figures = call_figures(record)
    agent = getattr(record, "agent", None)
    team = (getattr(agent, "team", None) or NO_TEAM)[:64]
    for histogram, value in (
        (ACW_TALK, figures.talk),
        (ACW_HOLD, figures.hold),
        (ACW_WRAPUP, figures.acw),
        (ACW_HANDLE, figures.handle),
    ):
        if value is not None:
            histogram.labels(team).observe(value)


# -- scraping -------------------------------------------------------------------------------


class StateCollector:
    """Gauges read from shared state at scrape time (queue depth, dead letters, workers)."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self._read()
        except Exception:
            figures = {}
        up = GaugeMetricFamily("acw_broker_up", "1 when the broker answered the scrape")
        up.add_metric([], 1.0 if figures.get("broker_ok") else 0.0)
        yield up
        depth = GaugeMetricFamily(
            "acw_queue_depth", "Messages waiting in the queue", labels=["queue"]
        )
        for queue, value in (figures.get("queues") or {}).items():
            depth.add_metric([queue], float(value))
        yield depth
        circuits = GaugeMetricFamily(
            "acw_circuit_state",
            "1 for the circuit breaker state each connector instance is in",
            labels=["connector", "state"],
        )
        for instance, state in (figures.get("circuits") or {}).items():
            if state != "n/a":
                for candidate in ("closed", "open", "half_open"):
                    circuits.add_metric([instance, candidate], 1.0 if state == candidate else 0.0)
        yield circuits
        for name, key, doc in (
            ("acw_queue_unacked", "unacked", "Messages taken by workers and not yet acked"),
            ("acw_dead_letters", "dead_letters", "Entries in the dead-letter store"),
            ("acw_workers_alive", "workers_alive", "Workers whose heartbeat is fresh"),
            ("acw_unsynced_calls", "unsynced", "Syncs queued or retrying, not yet done"),
            (
                "acw_oldest_unsynced_seconds",
                "oldest_unsynced_age",
                "Age of the oldest sync not yet done",
            ),
        ):
            if figures.get(key) is not None:
                gauge = GaugeMetricFamily(name, doc)
                gauge.add_metric([], float(figures[key]))
                yield gauge


class _Chain:
    def __init__(self, *parts: Any) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()


def scrape_registry(state: StateCollector | None = None) -> CollectorRegistry:
    """The registry one scrape reads: this process (or every process of the multiprocess
    directory) plus the shared-state gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Chain(REGISTRY))
    if state is not None:
        registry.register(state)
    return registry
