"""Parked work, paused instances, and the scheduler that brings parked work back.

Celery on Redis redelivers any message held longer than the broker's visibility timeout, so a
long wait must never be a countdown or an ETA. Work that must wait long (a paused instance, an
open circuit, a ``Retry-After`` beyond the countdown cap) is *parked* instead: one member per
(instance, call) in a sorted set scored by its due time, its details in a hash. Redis with AOF
keeps it across restarts.

:class:`Scheduler` is a thread in every worker's main process; one at a time (a Redis lock)
re-enqueues parked work when due (it takes the entry atomically, then enqueues), and every
``reconcile_every`` seconds runs :func:`reconcile`, which re-enqueues ended calls whose ledger is
not synced ``stale_after`` seconds after their last event: the backstop for broker messages lost
in a Redis crash and for stuck ``pending`` flags. In the same round it publishes again the
accepted events of the ingest's inbox that no worker has stored (their message was lost).

Keys: ``{p}:parked`` (zset), ``{p}:parked:data`` (hash), ``{p}:paused:{instance}``,
``{p}:lock:scheduler``; the inbox keys belong to :mod:`acw_sync.store`.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import structlog

from acw_sync.config import AppConfig
from acw_sync.model import CallEvent
from acw_sync.store import StateStore

__all__ = ["Enqueue", "ParkedSync", "Parking", "Scheduler", "reconcile"]

log = structlog.get_logger("acw_sync.scheduler")

Enqueue = Callable[[str, str, float, int], None]
"""``enqueue(instance, call_key, first_seen, attempt)``: put a ``sync_call`` on the queue."""

_TAKE = """
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current == ARGV[2] or (current == false and ARGV[2] == '') then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


@dataclass(frozen=True)
class ParkedSync:
    instance: str
    call_key: str
    due: float
    first_seen: float
    attempt: int
    reason: str
    raw: str = field(default="", compare=False, repr=False)
    """The stored JSON, so that :meth:`Parking.take` removes exactly what was read."""

    @property
    def member(self) -> str:
        return f"{self.instance}|{self.call_key}"


class Parking:
    """The parked syncs and the paused instances."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.redis = store.redis
        self._take = store.redis.register_script(_TAKE)

    def park(
        self,
        instance: str,
        call_key: str,
        due: float,
        *,
        first_seen: float,
        attempt: int,
        reason: str,
    ) -> None:
        entry = ParkedSync(instance, call_key, due, first_seen, attempt, reason)
        data = {k: v for k, v in entry.__dict__.items() if k != "raw"}
        data["parked_at"] = time.time()  # two parkings of one call never look the same
        pipe = self.redis.pipeline()
        pipe.zadd(self.store.k("parked"), {entry.member: due})
        pipe.hset(self.store.k("parked", "data"), entry.member, json.dumps(data))
        pipe.execute()

    def is_parked(self, instance: str, call_key: str) -> bool:
        return self.redis.zscore(self.store.k("parked"), f"{instance}|{call_key}") is not None

    def entries(self, until: float | None = None, limit: int = 500) -> list[ParkedSync]:
        """Parked syncs due by ``until`` (all when None), soonest first."""
        members = cast(
            list[str],
            self.redis.zrangebyscore(
                self.store.k("parked"), "-inf", "+inf" if until is None else until, 0, limit
            ),
        )
        if not members:
            return []
        raw = cast(list[str | None], self.redis.hmget(self.store.k("parked", "data"), members))
        found = []
        for member, data in zip(members, raw, strict=True):
            if data:
                fields = json.loads(data)
                fields.pop("parked_at", None)
                found.append(ParkedSync(**fields, raw=data))
            else:  # data lost (should not happen): bring it back with what the member says
                instance, _, call_key = member.partition("|")
                found.append(ParkedSync(instance, call_key, 0.0, time.time(), 0, "unknown"))
        return found

    def take(self, entry: ParkedSync) -> bool:
        """Remove ``entry`` if it is still what was read (not parked again meanwhile)."""
        keys = [self.store.k("parked"), self.store.k("parked", "data")]
        return bool(self._take(keys=keys, args=[entry.member, entry.raw]))

    def remove(self, entry: ParkedSync) -> None:
        pipe = self.redis.pipeline()
        pipe.zrem(self.store.k("parked"), entry.member)
        pipe.hdel(self.store.k("parked", "data"), entry.member)
        pipe.execute()

    def count(self) -> int:
        return int(self.redis.zcard(self.store.k("parked")))

    # -- paused instances -------------------------------------------------------------------
    def pause(self, instance: str, until: float) -> None:
        ttl = max(1, int((until - time.time()) * 1000))
        self.redis.set(self.store.k("paused", instance), repr(until), px=ttl)

    def paused_until(self, instance: str) -> float | None:
        raw = self.redis.get(self.store.k("paused", instance))
        if raw is None:
            return None
        until = float(cast(str, raw))
        return until if until > time.time() else None

    def resume(self, instance: str) -> None:
        self.redis.delete(self.store.k("paused", instance))


def reconcile(
    store: StateStore,
    config: AppConfig,
    enqueue: Enqueue,
    *,
    stale_after: float,
    window: float,
    now: float | None = None,
) -> int:
    """Re-enqueue ended calls whose ledger is not synced; the number of syncs enqueued."""
    from acw_sync.sync import record_version

    now = now or time.time()
    parking = Parking(store)
    keys = cast(
        list[str], store.redis.zrangebyscore(store.k("calls"), now - window, now - stale_after)
    )
    enqueued = 0
    for call_key in keys:
        record = store.record(call_key)
        if record is None or not record.ended:
            continue
        version = record_version(record)
        team = record.agent.team if record.agent else None
        for instance in config.routes_for(
            record.provider, record.provider_account, record.line_number, team
        ):
            if instance not in config.connectors:
                continue
            ledger = store.ledger(instance, call_key)
            if ledger.state == "dead" or (
                ledger.version == version and ledger.state in ("synced", "skipped", "unresolved")
            ):
                continue
            if parking.is_parked(instance, call_key):
                continue
            since = store.pending_since(instance, call_key)
            if since is not None and now - since < stale_after:
                continue
            store.mark_pending(instance, call_key, force=True)
            enqueue(instance, call_key, now, 0)
            enqueued += 1
            log.warning(
                "reconciler: call not synced, sync re-enqueued",
                call_key=call_key,
                connector=instance,
                ledger_state=ledger.state,
            )
    return enqueued


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


class Scheduler(threading.Thread):
    """Re-enqueues parked syncs when due and runs the reconciler; one active across workers.

    Settings (environment): ``ACW_SCHEDULER_INTERVAL`` (1 s), ``ACW_RECONCILE_EVERY`` (60 s),
    ``ACW_RECONCILE_AFTER`` (600 s: how long an ended call may stay unsynced),
    ``ACW_RECONCILE_WINDOW`` (6 h: how far back the reconciler looks).
    """

    def __init__(
        self,
        store: StateStore,
        config: AppConfig,
        enqueue: Enqueue,
        republish: Callable[[CallEvent], None] | None = None,
    ) -> None:
        super().__init__(name="acw-scheduler", daemon=True)
        self.store = store
        self.config = config
        self.enqueue = enqueue
        self.republish = republish
        self.parking = Parking(store)
        self.interval = _env_float("ACW_SCHEDULER_INTERVAL", 1.0)
        self.reconcile_every = _env_float("ACW_RECONCILE_EVERY", 60.0)
        self.stale_after = _env_float("ACW_RECONCILE_AFTER", 600.0)
        self.window = _env_float("ACW_RECONCILE_WINDOW", 6 * 3600.0)
        self._stop = threading.Event()
        self._token = secrets.token_hex(8)
        self._renew = store.redis.register_script(_RENEW)
        self._last_reconcile = time.time()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # Redis down or restarting: try again next tick
                log.warning("scheduler tick failed", error=f"{type(exc).__name__}: {exc}")

    def _leader(self) -> bool:
        ttl = int(max(5.0, self.interval * 5) * 1000)
        return bool(self._renew(keys=[self.store.k("lock", "scheduler")], args=[self._token, ttl]))

    def tick(self, now: float | None = None) -> int:
        """One round: the number of syncs enqueued (0 when another worker is the scheduler)."""
        if not self._leader():
            return 0
        now = now or time.time()
        enqueued = 0
        for entry in self.parking.entries(until=now):
            # Take it first, atomically: a sync that ran meanwhile and parked the call again
            # must not lose its new entry. A crash between the take and the enqueue is
            # covered by the reconciler.
            if not self.parking.take(entry):
                continue
            self.store.mark_pending(entry.instance, entry.call_key, force=True)
            try:
                self.enqueue(entry.instance, entry.call_key, entry.first_seen, entry.attempt)
            except Exception:
                self.parking.park(
                    entry.instance, entry.call_key, now + self.interval,
                    first_seen=entry.first_seen, attempt=entry.attempt, reason=entry.reason,
                )  # fmt: skip
                raise
            enqueued += 1
            log.info(
                "parked sync re-enqueued",
                connector=entry.instance,
                call_key=entry.call_key,
                reason=entry.reason,
            )
        if now - self._last_reconcile >= self.reconcile_every:
            self._last_reconcile = now
            enqueued += self.redeliver_lost_events()
            enqueued += reconcile(
                self.store,
                self.config,
                self.enqueue,
                stale_after=self.stale_after,
                window=self.window,
                now=now,
            )
        return enqueued

    def redeliver_lost_events(self) -> int:
        """Publish again accepted events that no worker stored within ``stale_after``."""
        if self.republish is None:
            return 0
        count = 0
        for event in self.store.inbox_stale(self.stale_after):
            if event.event_id in self.store.redis.hkeys(self.store.k("events", event.call_key)):
                self.store.inbox_done(event.event_id)  # stored after all: only the entry was left
                continue
            self.republish(event)
            count += 1
            log.warning(
                "inbox: accepted event never stored, published again",
                event_id=event.event_id,
                call_key=event.call_key,
            )
        return count


def describe(entry: ParkedSync) -> dict[str, Any]:
    return {**entry.__dict__, "member": entry.member}
