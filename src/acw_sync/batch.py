"""Coalescing the syncs of one connector instance into batch requests.

For an instance whose connector declares ``batch_size`` > 1 and whose ``batch_window`` is
positive, ``process_event`` does not enqueue one ``sync_call`` per call: it adds the call to
the instance's batch set (:func:`queue_call`) and, when no flush is scheduled yet, schedules
one ``sync_batch`` task ``batch_window`` seconds later. That task (:func:`flush`) takes up to
``batch_size`` calls and syncs them with one customer search for all their numbers
(``find_customers_many``), one ``upsert_calls`` and one ``create_tasks`` request.

Idempotency is the single path's: each call is synced under the same per-call lock as
``sync_call``, every result is written to that call's ledger as soon as the batch returns, and
a key is sent as ``fresh`` (create without searching the CRM first) only when the ledger shows
no earlier attempt to write it. A record the CRM rejects, or a call whose lock is busy, goes to
the per-call path (``sync_call``: its retries and dead letters), never failing its batch.

Every CRM request of a flush goes through the same guard as the single path
(:mod:`acw_sync.guard`): a paused instance, an open circuit or a spent rate budget defers the
batch (its calls are requeued, or parked as ``sync_call`` would park them), reads are retried
in-process on a connection blip, and a write that failed without an answer or with a 5xx is
*in doubt*: its calls are marked as the single path marks them, and no sync of theirs (batch or
single) is sent before ``IN_DOUBT_DELAY`` has passed; then they reconcile by key.

Redis keys: ``{p}:batch:{instance}`` (zset call_key -> first queued),
``{p}:batch:{instance}:flush`` (a flush is scheduled; expires should its task be lost) and
``{p}:batch:{instance}:tries`` (hash call_key -> whole-batch failures so far).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import structlog

from acw_sync.batch_state import (
    LedgerWrites,
    cached_customers,
    lock_calls,
    read_calls,
    unlock_calls,
)
from acw_sync.connector import CallWrite, TaskWrite, load_connector_class
from acw_sync.errors import ConnectorError
from acw_sync.guard import Guard, doubt_left, guard_connector, in_doubt, mark_in_doubt
from acw_sync.merge import merge_events
from acw_sync.model import CallRecord, CustomerRef
from acw_sync.rules import RulePlan
from acw_sync.store import Ledger, LockBusy, StateStore
from acw_sync.sync import (
    ConnectorPool,
    _create_customer,
    _resolve_owner,
    _update_customer,
    prepare_call,
    record_version,
)

__all__ = [
    "BatchOutcome",
    "batch_window",
    "claim_flush",
    "count_failures",
    "flush",
    "forget_failures",
    "queue_call",
    "requeue",
]

log = structlog.get_logger("acw_sync.batch")

#: Seconds past the window after which a scheduled flush that never ran (its task lost) no
#: longer stops new calls from scheduling another.
FLUSH_GRACE = 60
#: While calls keep arriving, a batch short of ``batch_size`` waits for more, up to this many
#: windows after its oldest call was queued. A lone call (nothing new for a whole window) is
#: flushed when its window ends, so an idle system still syncs within one window.
MAX_WAIT_WINDOWS = 10
#: Seconds one flush may hold its instance's flush lock (a stuck worker frees it after this).
FLUSH_LOCK_TTL = 120
#: Seconds a queued call's ``pending`` mark lives (as ``StateStore.mark_pending``'s).
PENDING_TTL = 3600
#: Seconds a flush may hold the per-call sync locks of its calls.
CALL_LOCK_TTL = 120


@dataclass
class BatchOutcome:
    """What one flush did. ``single`` calls go to the per-call path; ``failed`` with ``error``
    is a whole-request failure: those calls are to be retried (as a batch or one by one)."""

    synced: list[str] = field(default_factory=list)
    single: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error: ConnectorError | None = None
    more: bool = False
    full: bool = False
    """At least a whole batch was left queued when this flush took its calls."""
    requests: int = 0
    postpone: float = 0.0
    """Seconds to wait before flushing (calls are still arriving); nothing was taken."""
    waiting: dict[str, float] = field(default_factory=dict)
    """Calls taken but not sent, with the seconds to wait: an earlier write of theirs is in
    doubt (it may still land), so they must not be written before it has (the caller parks
    them; when due they come back and reconcile by key)."""


@dataclass
class _Item:
    key: str
    record: CallRecord
    ledger: Ledger
    version: str
    customer: CustomerRef | None = None
    owner_id: str | None = None
    plan: RulePlan | None = None


def batch_window(pool: ConnectorPool, instance: str) -> float:
    """Seconds to collect ``instance``'s syncs; 0 when its connector does not batch."""
    spec = pool.instance(instance)
    if spec.batch_window <= 0:
        return 0.0
    return spec.batch_window if _batch_size(spec.type) > 1 else 0.0


@functools.cache
def _batch_size(type_name: str) -> int:
    return load_connector_class(type_name).capabilities.batch_size  # entry points: scan once


def _keys(store: StateStore, instance: str) -> tuple[str, str]:
    return store.k("batch", instance), store.k("batch", instance, "flush")


def _tries_key(store: StateStore, instance: str) -> str:
    return store.k("batch", instance, "tries")


def count_failures(store: StateStore, instance: str, call_keys: list[str]) -> dict[str, int]:
    """One more real failure for each call (a whole batch failed); each call's count so far.

    Counted per call, not per ``sync_batch`` task: a call parked and brought back into a later
    batch keeps its count (``tasks.BATCH_ATTEMPTS`` of them send it on alone).
    """
    if not call_keys:
        return {}
    pipe = store.redis.pipeline(transaction=False)
    tries = _tries_key(store, instance)
    for key in call_keys:
        pipe.hincrby(tries, key, 1)
    pipe.expire(tries, 7 * 86400)
    counts = pipe.execute()[:-1]
    return {k: int(n) for k, n in zip(call_keys, counts, strict=True)}


def forget_failures(store: StateStore, instance: str, call_keys: list[str]) -> None:
    if call_keys:
        store.redis.hdel(_tries_key(store, instance), *call_keys)


def queue_call(store: StateStore, instance: str, call_key: str, window: float) -> bool:
    """Add the call to the instance's batch; True when the caller must schedule a flush.

    The call is marked pending as ``sync_call``'s are, so the reconciler leaves it alone while
    its batch is on the way (and finds it again should the batch be lost).
    """
    members, flag = _keys(store, instance)
    now = time.time()
    pipe = store.redis.pipeline(transaction=False)
    pipe.zadd(members, {call_key: now}, nx=True)
    pipe.set(store.k("pending", instance, call_key), repr(now), ex=PENDING_TTL)
    pipe.set(flag, "1", nx=True, ex=int(window + FLUSH_GRACE))
    *_, scheduled = pipe.execute()
    return bool(scheduled)


def claim_flush(store: StateStore, instance: str, window: float) -> bool:
    """Mark a flush of ``instance`` as scheduled; False when one already is (a call queued
    meanwhile scheduled it)."""
    flag = _keys(store, instance)[1]
    return bool(store.redis.set(flag, "1", nx=True, ex=int(window + FLUSH_GRACE)))


def requeue(store: StateStore, instance: str, call_keys: list[str]) -> None:
    """Put calls a flush took back into the batch (the caller schedules the flush)."""
    if not call_keys:
        return
    now = time.time()
    pipe = store.redis.pipeline(transaction=False)
    pipe.zadd(_keys(store, instance)[0], dict.fromkeys(call_keys, now), nx=True)
    for key in call_keys:
        pipe.set(store.k("pending", instance, key), repr(now), ex=PENDING_TTL)
    pipe.execute()


def _take(store: StateStore, instance: str, size: int) -> tuple[list[str], int]:
    """Up to ``size`` queued calls, oldest first; and how many are left."""
    members, flag = _keys(store, instance)
    pipe = store.redis.pipeline()
    pipe.delete(flag)  # calls queued from now on schedule the next flush themselves
    pipe.zpopmin(members, size)
    pipe.zcard(members)
    _, popped, left = pipe.execute()
    return [str(k) for k, _ in cast(list[tuple[str, float]], popped)], int(left)


def _lane_locks(store: StateStore, instance: str, lanes: int) -> list[str]:
    names = [f"batch:{instance}" if n == 0 else f"batch:{instance}:{n}" for n in range(lanes)]
    return [store.k("lock", name) for name in names]


def _wait_for_more(store: StateStore, instance: str, size: int, window: float, lanes: int) -> float:
    """Seconds the flush should wait for more calls; 0 to flush now.

    A quiet window sends a short batch, unless another flush of the instance is running: in a
    burst the workers busy flushing are why no call arrived, and more will.
    """
    members, flag = _keys(store, instance)
    pipe = store.redis.pipeline(transaction=False)
    pipe.zcard(members)
    pipe.zrange(members, 0, 0, withscores=True)
    pipe.zrange(members, -1, -1, withscores=True)
    pipe.exists(*_lane_locks(store, instance, lanes))
    count, oldest, newest, flushing = pipe.execute()
    if not count or count >= size or window <= 0:
        return 0.0
    now = time.time()
    waited = now - float(oldest[0][1])
    quiet = now - float(newest[0][1])
    max_wait = MAX_WAIT_WINDOWS * window
    if waited >= max_wait or (quiet >= window and not flushing):
        return 0.0
    store.redis.expire(flag, int(max_wait + FLUSH_GRACE))
    return max(0.05, min(window, max_wait - waited))


def flush(
    store: StateStore,
    pool: ConnectorPool,
    instance: str,
    *,
    window: float = 0.0,
    guard: Guard | None = None,
    on_more: Callable[[], None] | None = None,
) -> BatchOutcome:
    """Sync up to ``batch_size`` queued calls of ``instance`` in batch requests.

    Every CRM request goes through ``guard``, as on the single path (pause, circuit, shared
    rate limit, quick retries of reads): a refusal is a :class:`~acw_sync.guard.Deferred`
    error in the outcome. With ``window`` (the scheduled flush, not a follow-up of a full
    batch), a short batch whose calls are still arriving is postponed instead (see
    :data:`MAX_WAIT_WINDOWS`); so is any flush while ``batch_lanes`` flushes of the same
    instance run. ``on_more`` is called as soon as this flush has taken its calls when more are
    queued, so that the next batch starts in another lane meanwhile (``outcome.more`` then
    stays False).
    """
    size = pool.get(instance).capabilities.batch_size
    lanes = pool.instance(instance).batch_lanes
    if window > 0 and (delay := _wait_for_more(store, instance, size, window, lanes)) > 0:
        return BatchOutcome(postpone=delay)
    for lane in range(lanes):
        # At most ``batch_lanes`` flushes per instance at once (the shared rate limiter keeps
        # the CRM's budget across them); calls queued meanwhile make the next batch fuller.
        name = f"batch:{instance}" if lane == 0 else f"batch:{instance}:{lane}"
        try:
            with store.lock(name, ttl=FLUSH_LOCK_TTL):
                return _flush_locked(
                    store, pool, instance, size, guard or Guard(store), on_more=on_more
                )
        except LockBusy:
            continue
    return BatchOutcome(postpone=max(window, 0.1))


def _flush_locked(
    store: StateStore,
    pool: ConnectorPool,
    instance: str,
    size: int,
    guard: Guard,
    *,
    on_more: Callable[[], None] | None,
) -> BatchOutcome:
    keys, left = _take(store, instance, size)
    more = left > 0
    if more and on_more is not None:
        on_more()  # the next batch goes in another lane while this one waits on the CRM
        more = False
    outcome = BatchOutcome(more=more, full=left >= size)
    if not keys:
        return outcome
    held = lock_calls(store, instance, keys, ttl=CALL_LOCK_TTL)
    outcome.single = [k for k in keys if k not in held]  # sync_call waits for the other worker
    locked = [k for k in keys if k in held]
    try:
        # A write of these calls got no answer moments ago (in a batch or alone): sending them
        # now could write them twice. Under their locks, so no doubt starts unseen meanwhile.
        outcome.waiting = doubt_left(store, instance, locked)
        locked = [k for k in locked if k not in outcome.waiting]
        writes = LedgerWrites(store, instance)
        try:
            _sync_locked(store, pool, instance, locked, outcome, guard=guard, writes=writes)
        except ConnectorError as exc:
            writes.send()  # what the CRM answered before the failure
            done = {*outcome.synced, *outcome.single}
            outcome.failed = [k for k in locked if k not in done]
            outcome.error = exc
            if in_doubt(exc):
                # The write may still land: no sync of these calls may search for it (and,
                # not finding it, create it again) before it has.
                mark_in_doubt(store, instance, outcome.failed)
        writes.finished(outcome.synced, _tries_key(store, instance))
        writes.send()
    finally:
        unlock_calls(store, instance, held)
    log.info(
        "batch synced",
        connector=instance,
        calls=len(keys),
        synced=len(outcome.synced),
        single=len(outcome.single),
        failed=len(outcome.failed),
        in_doubt=len(outcome.waiting),
        crm_requests=outcome.requests,
        more=more,
    )
    return outcome


def _sync_locked(
    store: StateStore,
    pool: ConnectorPool,
    instance: str,
    keys: list[str],
    outcome: BatchOutcome,
    *,
    guard: Guard,
    writes: LedgerWrites,
) -> None:
    spec = pool.instance(instance)
    connector = guard_connector(pool.get(instance), spec, guard)
    items: list[_Item] = []
    for key, (events, ledger) in read_calls(store, instance, keys).items():
        if not events:
            continue
        record = merge_events(events)
        if not record.ended:
            continue
        version = record_version(record)
        if ledger.version == version and ledger.activity is not None:
            outcome.synced.append(key)  # unchanged
            continue
        items.append(_Item(key, record, ledger, version))
    if not items:
        return

    # Customers: the ledger, the Redis cache, then one search for every number still unknown.
    wanted: dict[str, list[_Item]] = {}
    for item in items:
        if item.ledger.customer_resolved:
            item.customer = item.ledger.customer
        elif item.record.customer_number is None:
            writes.set(item.key, customer=None)
        else:
            wanted.setdefault(item.record.customer_number, []).append(item)
    found = cached_customers(store, instance, list(wanted))
    unknown = [p for p in wanted if p not in found]
    if unknown:
        searched = connector.find_customers_many(
            unknown, all_matches=spec.matching.on_many == "unresolved"
        )
        outcome.requests += 1
        for phone in unknown:
            found[phone] = searched.get(phone, [])
            writes.cache_customers(phone, found[phone], spec.matching.cache_ttl)
    ready: list[_Item] = []
    owners: dict[tuple[str | None, str | None], str | None] = {}
    for item in items:
        number = item.record.customer_number
        if number is not None and not item.ledger.customer_resolved:
            matches = found[number]
            if len(matches) > 1 and spec.matching.on_many == "unresolved":
                writes.set(item.key, state="unresolved", version=item.version)
                outcome.synced.append(item.key)
                continue
            if matches:
                item.customer = matches[0]
            elif spec.matching.on_none == "create" and connector.capabilities.create_customer:
                writes.send()  # a customer write follows: the ledger first
                item.customer, creates = _create_customer(store, connector, item.record, number)
                outcome.requests += creates
            writes.set(item.key, customer=item.customer)
        if item.customer is None and spec.matching.on_none == "skip" and not item.ledger.activity:
            writes.set(item.key, state="skipped", version=item.version)
            outcome.synced.append(item.key)
            continue
        agent = item.record.agent
        who = (agent.id, agent.email) if agent else (None, None)
        if who not in owners:  # one look-up per agent and flush, not per call
            owners[who] = _resolve_owner(store, connector, spec, instance, item.record)
        item.owner_id = owners[who]
        ready.append(item)
    if not ready:
        writes.send()
        return

    # Activities: one batch; a key is fresh only when no attempt to write it was recorded.
    for item in ready:
        if item.ledger.activity is None and not item.ledger.attempted:
            writes.set(item.key, attempted=1)
    writes.send()  # customers and attempt marks before the write
    calls = []
    for i in ready:
        # The rules' plan and the mapped fields, exactly as the single path prepares them.
        record, fields, i.plan = prepare_call(pool.config, instance, i.record, i.customer)
        calls.append(
            CallWrite(
                call=record,
                key=i.key,
                customer=i.customer,
                owner_id=i.owner_id,
                existing=i.ledger.activity,
                fields=fields,
                fresh=i.ledger.activity is None and not i.ledger.attempted,
            )
        )
    results = connector.upsert_calls(calls)
    outcome.requests += 1
    written: list[_Item] = []
    for item, result in zip(ready, results, strict=True):
        if isinstance(result, ConnectorError):
            log.warning(
                "batch record rejected: syncing it alone",
                connector=instance,
                call_key=item.key,
                reason=result.reason,
                error=str(result),
            )
            outcome.single.append(item.key)
            continue
        writes.set(item.key, activity=result)
        written.append(item)
        item.ledger.activity = result
    writes.send()  # every activity id in the ledger before the tasks are written

    # Follow-up tasks: one batch for every rule not yet in a ledger; fresh (created without
    # searching the CRM for the key) only when no attempt to create it was recorded.
    task_writes: list[tuple[_Item, str, TaskWrite]] = []
    for item in written:
        for task in item.plan.tasks if item.plan else []:
            if task.rule not in item.ledger.tasks:
                fresh = task.rule not in item.ledger.tasks_attempted
                if fresh:
                    writes.set(item.key, **{f"task_attempted:{task.rule}": 1})
                task_writes.append(
                    (
                        item,
                        task.rule,
                        TaskWrite(
                            task,
                            customer=item.customer,
                            owner_id=item.owner_id,
                            activity=item.ledger.activity,
                            fresh=fresh,
                        ),
                    )
                )
    failed_tasks: set[str] = set()
    if task_writes:
        writes.send()  # the attempt marks before the write
        made = connector.create_tasks([w for _, _, w in task_writes])
        outcome.requests += 1
        for (item, rule, _), ref in zip(task_writes, made, strict=True):
            if isinstance(ref, ConnectorError):
                failed_tasks.add(item.key)
                continue
            writes.set(item.key, **{f"task:{rule}": ref})
        writes.send()
    now = time.time()
    for item in written:
        if item.key in failed_tasks:
            outcome.single.append(item.key)  # its activity is in the ledger; sync_call finishes
            continue
        if item.plan is not None and item.plan.customer_updates:
            # Rare (a rule writes customer fields): one request each, once per rule (ledger).
            outcome.requests += _update_customer(
                store,
                connector,
                instance=instance,
                call_key=item.key,
                customer=item.customer,
                plan=item.plan,
            )
        writes.set(item.key, version=item.version, state="synced", synced_at=now)
        outcome.synced.append(item.key)
