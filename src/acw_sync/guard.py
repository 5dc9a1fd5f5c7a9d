"""The guard around every connector request: pause, circuit, rate limit, quick retries.

:func:`guard_connector` wraps a connector so that each CRM request of the sync path
(``find_customers``, ``create_customer``, ``upsert_call``, ...) goes through, in order:

1. the instance's pause (a spent daily quota) and circuit breaker: when either says wait, the
   request is not sent and :class:`Deferred` tells the task until when (it parks the work);
2. the shared rate limiter (:mod:`acw_sync.ratelimit`): short waits are slept here, long ones
   become :class:`Deferred` too;
3. the request, retried in-process with tenacity (full jitter, a few hundred milliseconds) when
   it failed with a connection blip, so a dropped connection does not cost a task retry;
4. the outcome, fed back: success closes the circuit, a transient failure counts against it,
   a 429 halves the shared rate, a spent quota pauses the instance.

Connectors stay ignorant of all of this; the Celery task decides what a raised error means.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import structlog
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from acw_sync import metrics
from acw_sync.circuit import CircuitBreaker, CircuitSettings
from acw_sync.config import ConnectorInstance
from acw_sync.connector import Connector
from acw_sync.errors import ConnectorError, QuotaExhausted, RateLimited, RetryableError
from acw_sync.parking import Parking
from acw_sync.ratelimit import KNOWN_LIMITS, Rate, RateLimiter
from acw_sync.store import StateStore

__all__ = [
    "GUARDED_OPERATIONS",
    "IN_DOUBT_DELAY",
    "WRITE_OPERATIONS",
    "Deferred",
    "Guard",
    "SharedRequestLimiter",
    "doubt_left",
    "guard_connector",
    "in_doubt",
    "mark_in_doubt",
    "rates_for",
]

log = structlog.get_logger("acw_sync.guard")

GUARDED_OPERATIONS = frozenset(
    {
        "find_customers",
        "find_customers_many",
        "create_customer",
        "update_customer",
        "find_owner",
        "upsert_call",
        "upsert_calls",
        "create_task",
        "create_tasks",
    }
)
#: Longest rate-limit wait slept inside a task; longer waits give the worker slot back.
MAX_INLINE_WAIT = 5.0
#: Operations that write. A write that failed without an answer (a timeout, a reset
#: connection) or with a 5xx (a gateway may give up while the CRM goes on) is *in doubt*: the
#: CRM may still be applying it, and a retry that searched for it now would not find it and
#: write it twice. Writes are never retried in-process; every sync of the calls concerned, on
#: the single and the batch path, waits ``IN_DOUBT_DELAY`` before it retries and reconciles.
WRITE_OPERATIONS = frozenset(
    {
        "create_customer",
        "update_customer",
        "upsert_call",
        "upsert_calls",
        "create_task",
        "create_tasks",
    }
)
#: Least wait before retrying a write that is in doubt: a request the CRM is still processing
#: must land before the retry searches for it by key. (Read at call time: tests lower it.)
IN_DOUBT_DELAY = float(os.environ.get("ACW_IN_DOUBT_DELAY", "30"))

T = TypeVar("T")


class Deferred(RetryableError):
    """Not sent: the instance is paused, its circuit is open or its rate is spent.

    ``retry_after`` is when to try again. Deferrals do not count as attempts.
    """

    reason = "deferred"

    def __init__(self, message: str, *, retry_after: float, why: str) -> None:
        super().__init__(message, retry_after=retry_after)
        self.why = why


def _is_blip(exc: BaseException) -> bool:
    """A failure worth an immediate in-process retry: transient, and the CRM set no wait."""
    if not isinstance(exc, RetryableError) or isinstance(exc, RateLimited | Deferred):
        return False
    return exc.retry_after is None or exc.retry_after <= 1.0


def in_doubt(exc: ConnectorError) -> bool:
    """A write that failed with no answer, or a 5xx, from the CRM: it may still land."""
    return (
        isinstance(exc, RetryableError)
        and not isinstance(exc, Deferred | RateLimited)
        and (exc.status is None or exc.status >= 500)
        and exc.details.get("operation") in WRITE_OPERATIONS
        and exc.details.get("request") != "search"  # a search that failed wrote nothing
    )


def _doubt_key(store: StateStore, instance: str, call_key: str) -> str:
    return store.k("indoubt", instance, call_key)


def mark_in_doubt(store: StateStore, instance: str, call_keys: list[str]) -> None:
    """A write of these calls is in doubt: every sync of them waits ``IN_DOUBT_DELAY``."""
    if not call_keys:
        return
    pipe = store.redis.pipeline(transaction=False)
    for key in call_keys:
        pipe.set(_doubt_key(store, instance, key), "1", px=int(IN_DOUBT_DELAY * 1000))
    pipe.execute()


def doubt_left(store: StateStore, instance: str, call_keys: list[str]) -> dict[str, float]:
    """The calls of ``call_keys`` still in doubt, with the seconds their doubt lasts."""
    if not call_keys:
        return {}
    pipe = store.redis.pipeline(transaction=False)
    for key in call_keys:
        pipe.pttl(_doubt_key(store, instance, key))
    left = pipe.execute()
    return {k: int(ms) / 1000 for k, ms in zip(call_keys, left, strict=True) if int(ms) > 0}


def rates_for(spec: ConnectorInstance, connector: Connector) -> dict[str, Rate]:
    """The buckets of one instance: ``*`` for the account, others per operation or endpoint."""
    settings = spec.rate_limit
    if not settings.enabled:
        return {}
    declared = {k: Rate(*v) for k, v in type(connector).rate_limits.items()}
    rates = declared or dict(KNOWN_LIMITS.get(spec.type, {}))
    # A connector whose options state the account's tier (HubSpot: ``tier`` requests per 10 s,
    # ``search_per_second``) knows its limits better than the table.
    options = connector.config
    tier = getattr(options, "tier", None)
    if isinstance(tier, int) and "*" in rates:
        rates["*"] = Rate(tier, 10.0)
    search = getattr(options, "search_per_second", None)
    if isinstance(search, int | float) and "search" in rates:
        rates["search"] = Rate(max(1, int(search)), 1.0)
    if settings.requests:
        rates["*"] = Rate(settings.requests, settings.per)
    for operation, rate in settings.operations.items():
        rates[operation] = Rate(rate.requests, rate.per)
    return rates


class Guard:
    """Pause, circuit, rate limit and quick retries for the connectors of one process."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.parking = Parking(store)
        self.circuit = CircuitBreaker(store.redis, store.prefix)
        self.limiter = RateLimiter(store.redis, store.prefix)

    def call(
        self,
        connector: Connector,
        spec: ConnectorInstance,
        operation: str,
        fn: Callable[..., T],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        instance = connector.instance
        circuit = CircuitSettings(**spec.circuit.model_dump())
        paused = self.parking.paused_until(instance)
        now = time.time()
        if paused is not None:
            raise Deferred(f"{instance} is paused (quota)", retry_after=paused - now, why="paused")
        retry_at = self.circuit.allow(instance, circuit)
        if retry_at is not None:
            raise Deferred(
                f"{instance}: circuit open", retry_after=max(0.0, retry_at - now), why="circuit"
            )
        account = spec.rate_limit.account or instance
        rates = rates_for(spec, connector)
        seam = self._plug_request_limiter(connector, account, rates)
        if seam is None:
            self._throttle(account, operation, rates)
        write = operation in WRITE_OPERATIONS

        def on_a_search(exc: BaseException) -> bool:
            # The request that failed was a search: it wrote nothing, and every write before it
            # in this operation was answered, so no write is in flight.
            return seam is not None and seam.last_bucket == "search"

        def attempt() -> T:
            if seam is not None:
                seam.last_bucket = None
            return fn(*args, **kwargs)

        retrying = Retrying(
            stop=stop_after_attempt(spec.quick_retries + 1),
            wait=wait_random_exponential(multiplier=0.1, max=1.0),
            # Writes are retried in-process only when what failed was a search (nothing in
            # flight); a failed write request waits for the task and its in-doubt delay.
            retry=retry_if_exception(lambda e: _is_blip(e) and (not write or on_a_search(e))),
            reraise=True,
        )
        try:
            try:
                result = retrying(attempt)
            except ConnectorError as exc:
                exc.details.setdefault("operation", operation)
                if write and on_a_search(exc):
                    exc.details.setdefault("request", "search")
                raise
        except Deferred:
            raise  # throttled by our own limiter inside the connector: says nothing of the CRM
        except RateLimited:
            factor = self.limiter.penalize(account, "*")
            log.warning("CRM rate limit hit: slowing down", connector=instance, factor=factor)
            raise
        except QuotaExhausted as exc:
            until = time.time() + (exc.retry_after or 3600.0)
            self.parking.pause(instance, until)
            log.error("CRM quota exhausted: instance paused", connector=instance, until=until)
            raise
        except RetryableError:
            if self.circuit.record_failure(instance, circuit) == "open":
                log.error("circuit opened: CRM failing, work parks", connector=instance)
            raise
        except ConnectorError:
            raise  # the CRM answered: permanent and credential errors say nothing of its health
        if self.circuit.record_success(instance) != "closed":
            log.info("circuit closed: CRM answering again", connector=instance)
        return result

    def _plug_request_limiter(
        self, connector: Connector, account: str, rates: dict[str, Rate]
    ) -> SharedRequestLimiter | None:
        """Give a connector with a limiter seam (``use_rate_limiter``) the shared limiter, so
        that every HTTP request, not every operation, is counted. None when it has no seam."""
        plug = getattr(connector, "use_rate_limiter", None)
        if plug is None:
            return None
        seam: SharedRequestLimiter | None = getattr(connector, "_acw_request_limiter", None)
        if seam is None or seam.guard is not self:
            seam = SharedRequestLimiter(self, account, rates)
            plug(seam)
            connector._acw_request_limiter = seam  # type: ignore[attr-defined]
        return seam

    def _throttle(self, account: str, operation: str, rates: dict[str, Rate]) -> None:
        waited = 0.0
        for bucket in ("*", operation):
            rate = rates.get(bucket)
            if rate is not None:
                waited = self.take(account, bucket, rate, waited)

    def take(self, account: str, bucket: str, rate: Rate, waited: float = 0.0) -> float:
        """One request from a bucket, sleeping short waits; the seconds waited so far."""
        while True:
            wait = self.limiter.try_acquire(account, bucket, rate)
            if wait <= 0:
                return waited
            if waited + wait > MAX_INLINE_WAIT:
                raise Deferred(
                    f"{account}: rate limit {rate} spent", retry_after=wait, why="throttled"
                )
            time.sleep(wait)
            # Labelled by the rate-limit account: the instance's name unless several instances
            # share one CRM account (rate_limit.account).
            metrics.record_rate_limit_wait(account, wait)
            waited += wait


class SharedRequestLimiter:
    """The shared limiter behind a connector's own limiter seam: ``acquire(bucket)`` per HTTP
    request. The connector's ``burst`` bucket is the account-wide ``*``."""

    def __init__(self, guard: Guard, account: str, rates: dict[str, Rate]) -> None:
        self.guard = guard
        self.account = account
        self.rates = rates
        self.last_bucket: str | None = None
        """The bucket of the last request let through: tells the guard whether a failure
        happened on a search (a read) or on another request."""

    def acquire(self, bucket: str) -> None:
        self.last_bucket = bucket
        name = "*" if bucket == "burst" else bucket
        rate = self.rates.get(name)
        if rate is not None:
            self.guard.take(self.account, name, rate)


class _GuardedConnector:
    def __init__(self, connector: Connector, spec: ConnectorInstance, guard: Guard) -> None:
        self._connector = connector
        self._spec = spec
        self._guard = guard

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._connector, name)
        if name in GUARDED_OPERATIONS and callable(attr):
            return functools.partial(self._guard.call, self._connector, self._spec, name, attr)
        return attr


def guard_connector(connector: Connector, spec: ConnectorInstance, guard: Guard) -> Connector:
    """``connector`` with every CRM request going through ``guard``."""
    return cast(Connector, _GuardedConnector(connector, spec, guard))
