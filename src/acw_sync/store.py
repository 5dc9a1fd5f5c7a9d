"""Shared state in Redis: delivery dedupe, call events, the sync ledger, caches and locks.

Everything workers and servers must agree on lives here, under one key prefix, so that any
number of processes on any number of machines share it through one Redis. The broker may be a
different server (RabbitMQ); this state is always Redis.

Keys (``{p}`` is the prefix, ``acw`` by default):

=========================================  ======================================================
``{p}:dedupe:{provider}:{id}``             a delivery or event already accepted (TTL)
``{p}:events:{call_key}``                  hash event_id -> CallEvent JSON: the call's truth
``{p}:record:{call_key}``                  hash n/json: last merged record (never regresses)
``{p}:calls``                              zset call_key by last event time (recent calls)
``{p}:pending:{instance}:{call_key}``      a sync is queued for this call and instance
``{p}:ledger:{instance}:{call_key}``       hash: what was written to the CRM (ids, version)
``{p}:customers:{instance}:{phone}``       cached customer look-up (TTL)
``{p}:created:{instance}:{phone}``         a customer acw-sync created for this number
``{p}:owners:{instance}:{email}``          cached agent -> CRM owner id (TTL)
``{p}:lock:{name}``                        short mutual-exclusion locks
``{p}:dlq`` / ``{p}:dlq:index``            dead letters (hash id -> JSON, zset by time)
``{p}:inbox`` / ``{p}:inbox:index``       accepted events until a worker stored them (outbox)
``{p}:parked`` / ``{p}:parked:data``       parked syncs (zset by due time; :mod:`.parking`)
``{p}:paused:{instance}``                  an instance paused until a quota resets
``{p}:indoubt:{instance}:{call_key}``      a write got no answer: syncs of the call wait
``{p}:rate:{account}:{bucket}``            shared rate-limit buckets (:mod:`.ratelimit`)
``{p}:circuit:{instance}``                 circuit breaker state (:mod:`.circuit`)
=========================================  ======================================================
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from acw_sync.merge import merge_events
from acw_sync.model import CallEvent, CallRecord, CrmObjectRef, CustomerRef

__all__ = ["Ledger", "LockBusy", "StateStore", "ledger_fields"]

DEDUPE_TTL = 3 * 24 * 3600
"""Platforms redeliver for hours to days (Aircall 12 h, Event Streams 4 h, Stripe-style 3 d)."""
CLAIM_TTL = 600
"""How long a provisional claim (accepted, not yet on the queue) lives."""
CALL_TTL = 30 * 24 * 3600
"""How long a call's events are kept after its last event."""

# Lua shared by the scripts below. save_if_newer: the call record, unless the stored one was
# merged from more events. merged: the recent-calls index, the inbox entry done and, for an
# ended call, the "ACW figures observed" flag (1 when this call set it).
_LUA_RECORD = """
local function save_if_newer(key, n, json, ttl)
  local stored = tonumber(redis.call('HGET', key, 'n') or '-1')
  if tonumber(n) >= stored then
    redis.call('HSET', key, 'n', n, 'json', json)
    redis.call('EXPIRE', key, ttl)
    return 1
  end
  return 0
end
local function merged(recent, score, call_key, inbox, index, event_id, figures, ttl)
  redis.call('ZADD', recent, score, call_key)
  redis.call('HDEL', inbox, event_id)
  redis.call('ZREM', index, event_id)
  if figures and redis.call('SET', figures, '1', 'NX', 'EX', ttl) then
    return 1
  end
  return 0
end
"""

_SAVE_RECORD = (
    _LUA_RECORD
    + """
return save_if_newer(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
"""
)

_ADD_EVENT = """
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {added, redis.call('HVALS', KEYS[1])}
"""

# The record (as _SAVE_RECORD), the recent-calls index, the inbox entry done, and, for an
# ended call, the "ACW figures observed" flag (KEYS[5], optional): one EVALSHA.
_SAVE_MERGED = (
    _LUA_RECORD
    + """
save_if_newer(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return merged(KEYS[2], ARGV[4], ARGV[5], KEYS[3], KEYS[4], ARGV[6], KEYS[5], ARGV[3])
"""
)

# _ADD_EVENT, and when the call's events are then exactly the ones the caller merged (its
# event is new and the count matches: stored events are never replaced), _SAVE_MERGED with
# the caller's record. Reply {added, 1, figures} when saved, else {added, 0, 0, events}.
_ADD_AND_SAVE = (
    _LUA_RECORD
    + """
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if added == 0 or redis.call('HLEN', KEYS[1]) ~= tonumber(ARGV[4]) then
  return {added, 0, 0, redis.call('HVALS', KEYS[1])}
end
save_if_newer(KEYS[2], ARGV[4], ARGV[5], ARGV[3])
return {added, 1, merged(KEYS[3], ARGV[6], ARGV[7], KEYS[4], KEYS[5], ARGV[1], KEYS[6], ARGV[3])}
"""
)

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


#: Parsed events by their stored JSON, so that merging a call's M events does not validate
#: all M again for every new event. Parsing is a pure function of the JSON, so a hit is the
#: same event; the entries are shared, and merging never mutates them.
_PARSED_MAX = 4096
_parsed: dict[str, CallEvent] = {}


def _parse_event(raw: str) -> CallEvent:
    event = _parsed.get(raw)
    if event is None:
        event = _remember_event(raw, CallEvent.model_validate_json(raw))
    return event


def _remember_event(raw: str, event: CallEvent) -> CallEvent:
    if len(_parsed) >= _PARSED_MAX:
        del _parsed[next(iter(_parsed))]  # the oldest: its call is most likely over
    _parsed[raw] = event
    return event


#: The stored events (event id -> JSON) of calls this process merged recently: a worker that
#: knows a call's other events merges before storing, and stores and saves in one round trip.
_CALLS_MAX = 2048
_calls: dict[str, dict[str, str]] = {}


def _remember_call(call_key: str, events: dict[str, str]) -> None:
    _calls.pop(call_key, None)  # re-inserted last: the oldest call is dropped first
    if len(_calls) >= _CALLS_MAX:
        del _calls[next(iter(_calls))]
    _calls[call_key] = events


class LockBusy(Exception):
    """Another process holds the lock."""


@dataclass
class Ledger:
    """What acw-sync wrote for one call into one connector instance."""

    activity: CrmObjectRef | None = None
    customer: CustomerRef | None = None
    customer_resolved: bool = False
    version: str | None = None
    tasks: dict[str, CrmObjectRef] = field(default_factory=dict)
    state: str | None = None
    """synced | unresolved | skipped | dead"""
    synced_at: float | None = None
    error: str | None = None
    attempted: bool = False
    """A CRM write of the activity was attempted (its answer may have been lost)."""
    tasks_attempted: set[str] = field(default_factory=set)
    """Rules whose follow-up task a batch tried to create (its answer may have been lost)."""

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Ledger:
        """The ledger stored in the hash ``{p}:ledger:{instance}:{call_key}``."""
        ledger = cls()
        if "activity" in raw:
            ledger.activity = CrmObjectRef.model_validate_json(raw["activity"])
        if "customer" in raw:
            ledger.customer_resolved = True
            if raw["customer"] != "null":
                ledger.customer = CustomerRef.model_validate_json(raw["customer"])
        ledger.version = raw.get("version")
        ledger.state = raw.get("state")
        ledger.error = raw.get("error")
        ledger.synced_at = float(raw["synced_at"]) if "synced_at" in raw else None
        ledger.attempted = "attempted" in raw
        for name, value in raw.items():
            if name.startswith("task:"):
                ledger.tasks[name[5:]] = CrmObjectRef.model_validate_json(value)
            elif name.startswith("task_attempted:"):
                ledger.tasks_attempted.add(name[15:])
        return ledger


def ledger_fields(values: dict[str, Any]) -> dict[str, str]:
    """Ledger hash fields for ``values``: models as JSON, None as ``null``, the rest as text."""
    mapping: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            mapping[name] = "null"
        elif hasattr(value, "model_dump_json"):
            mapping[name] = value.model_dump_json()
        else:
            mapping[name] = str(value)
    return mapping


class StateStore:
    """Typed access to acw-sync's Redis state."""

    def __init__(self, client: redis.Redis, prefix: str = "acw") -> None:
        self.redis = client
        self.prefix = prefix
        self._save_record = client.register_script(_SAVE_RECORD)
        self._add_event = client.register_script(_ADD_EVENT)
        self._save_merged = client.register_script(_SAVE_MERGED)
        self._add_and_save = client.register_script(_ADD_AND_SAVE)
        self._release = client.register_script(_RELEASE_LOCK)

    @classmethod
    def from_url(cls, url: str, prefix: str = "acw") -> StateStore:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=15,
            retry_on_timeout=True,
        )
        return cls(client, prefix)

    def k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    # -- ingest dedupe ---------------------------------------------------------------------
    def claim(self, provider: str, delivery_id: str, ttl: int = CLAIM_TTL) -> bool:
        """Claim a delivery id; False when it was accepted before.

        A claim is provisional (``0``) until :meth:`confirm` records that the event is on the
        queue. A provisional claim left by a request that failed half-way (Redis or the broker
        went away between the claim and the publish) does not turn the platform's retry into a
        "duplicate": it is claimed again. Two concurrent deliveries may then both publish,
        which ``process_event`` absorbs (events are stored by id).
        """
        key = self.k("dedupe", provider, delivery_id)
        if self.redis.set(key, "0", nx=True, ex=ttl):
            return True
        return self.redis.get(key) == "0"

    def confirm(self, provider: str, *delivery_ids: str, ttl: int = DEDUPE_TTL) -> None:
        """The events of these deliveries are on the queue: later deliveries are duplicates."""
        if delivery_ids:
            pipe = self.redis.pipeline()
            for d in delivery_ids:
                pipe.set(self.k("dedupe", provider, d), "1", ex=ttl)
            pipe.execute()

    # -- the inbox: accepted events until a worker has stored them ---------------------------
    def inbox_add(self, events: list[CallEvent]) -> None:
        """Journal accepted events before they are published (see :meth:`inbox_stale`)."""
        if not events:
            return
        now = time.time()
        pipe = self.redis.pipeline()
        for event in events:
            pipe.hset(self.k("inbox"), event.event_id, event.model_dump_json())
            pipe.zadd(self.k("inbox", "index"), {event.event_id: now})
        pipe.execute()

    def inbox_done(self, event_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.hdel(self.k("inbox"), event_id)
        pipe.zrem(self.k("inbox", "index"), event_id)
        pipe.execute()

    def inbox_stale(self, older_than: float, limit: int = 500) -> list[CallEvent]:
        """Accepted events no worker has stored after ``older_than`` seconds: their broker
        message was lost (a Redis crash, a connection reset mid-delivery). Each one returned
        is re-timed, so it comes back once per ``older_than``."""
        now = time.time()
        ids = cast(
            list[str],
            self.redis.zrangebyscore(self.k("inbox", "index"), "-inf", now - older_than, 0, limit),
        )
        if not ids:
            return []
        raw = cast(list[str | None], self.redis.hmget(self.k("inbox"), ids))
        pipe = self.redis.pipeline()
        found = []
        for event_id, data in zip(ids, raw, strict=True):
            if data is None:
                pipe.zrem(self.k("inbox", "index"), event_id)
                continue
            found.append(CallEvent.model_validate_json(data))
            pipe.zadd(self.k("inbox", "index"), {event_id: now})
        pipe.execute()
        return found

    def release(self, provider: str, *delivery_ids: str) -> None:
        if delivery_ids:
            self.redis.delete(*(self.k("dedupe", provider, d) for d in delivery_ids))

    def claim_many(self, keys: list[tuple[str, str]], ttl: int = CLAIM_TTL) -> list[bool]:
        """:meth:`claim` for many ``(provider, delivery id)`` pairs in one round trip.

        Provisional claims as :meth:`claim` makes them; a pair listed twice is claimed by its
        first occurrence only.
        """
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for provider, delivery_id in keys:
            key = self.k("dedupe", provider, delivery_id)
            pipe.set(key, "0", nx=True, ex=ttl)
            pipe.get(key)
        answers = pipe.execute()
        seen: set[tuple[str, str]] = set()
        claimed = []
        for n, pair in enumerate(keys):
            new, value = answers[2 * n], answers[2 * n + 1]
            claimed.append(pair not in seen and (bool(new) or value == "0"))
            seen.add(pair)
        return claimed

    def release_many(self, keys: list[tuple[str, str]]) -> None:
        if keys:
            self.redis.delete(*(self.k("dedupe", p, d) for p, d in keys))

    # -- events and records ----------------------------------------------------------------
    def add_event(self, event: CallEvent) -> bool:
        """Store an event of a call; False when it was stored before (a redelivery)."""
        key = self.k("events", event.call_key)
        pipe = self.redis.pipeline()
        pipe.hsetnx(key, event.event_id, event.model_dump_json())
        pipe.expire(key, CALL_TTL)
        added, _ = pipe.execute()
        return bool(added)

    def add_event_and_events(self, event: CallEvent) -> tuple[bool, list[CallEvent]]:
        """:meth:`add_event` and then :meth:`events` of its call, in one round trip (one
        script). Events parsed before (in this process) are not validated again."""
        raw = event.model_dump_json()
        _remember_event(raw, event)
        added, stored = self._add_event(
            keys=[self.k("events", event.call_key)], args=[event.event_id, raw, CALL_TTL]
        )
        return bool(added), [_parse_event(v) for v in stored]

    def events(self, call_key: str) -> list[CallEvent]:
        raw = cast(dict[str, str], self.redis.hgetall(self.k("events", call_key)))
        return [CallEvent.model_validate_json(v) for v in raw.values()]

    def save_record(self, record: CallRecord) -> bool:
        """Keep the merged record for views; a record of fewer events never replaces one of more."""
        at = record.last_event_at or record.ended_at or record.started_at
        args = (len(record.event_ids), record.model_dump_json(), CALL_TTL)
        for attempt in range(2):
            # EVALSHA straight in the pipeline: a Script in a pipeline costs a SCRIPT EXISTS
            # round trip on every execute.
            pipe = self.redis.pipeline()
            pipe.evalsha(self._save_record.sha, 1, self.k("record", record.key), *args)
            pipe.zadd(self.k("calls"), {record.key: at.timestamp() if at else time.time()})
            try:
                pipe.execute()
                break
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                # A restarted or flushed Redis: load it again (same sha, or the fixed one).
                self._save_record.sha = self.redis.script_load(_SAVE_RECORD)
        return True

    def merge_event(
        self, event: CallEvent, *, figures_key: str | None = None
    ) -> tuple[bool, CallRecord, bool]:
        """Store ``event``, merge its call and save the record (:meth:`add_event_and_events`,
        :func:`~acw_sync.merge.merge_events`, :meth:`save_merged`).

        One round trip when the call's stored events are the ones this process saw stored
        plus ``event`` (it merges them first and the script saves that record only if the
        set matches); two otherwise. Returns (``event`` was new, the record, the call's
        figures are due: ``figures_key`` was set now for an ended call).
        """
        raw = event.model_dump_json()
        _remember_event(raw, event)
        guess = {**_calls.get(event.call_key, {}), event.event_id: raw}
        record = merge_events([_parse_event(v) for v in guess.values()])
        at = record.last_event_at or record.ended_at or record.started_at
        keys = [
            self.k("events", event.call_key),
            self.k("record", record.key),
            self.k("calls"),
            self.k("inbox"),
            self.k("inbox", "index"),
        ]
        if figures_key is not None and record.ended:
            keys.append(figures_key)
        args = (
            event.event_id,
            raw,
            CALL_TTL,
            len(guess),
            record.model_dump_json(),
            at.timestamp() if at else time.time(),
            record.key,
        )
        reply = self._add_and_save(keys=keys, args=args)
        added = bool(reply[0])
        if reply[1]:
            _remember_call(event.call_key, guess)
            return added, record, bool(reply[2])
        events = [_parse_event(v) for v in reply[3]]
        _remember_call(
            event.call_key, {e.event_id: v for e, v in zip(events, reply[3], strict=True)}
        )
        record = merge_events(events)
        figures = self.save_merged(
            record, event.event_id, figures_key=figures_key if record.ended else None
        )
        return added, record, figures

    def save_merged(
        self, record: CallRecord, event_id: str, *, figures_key: str | None = None
    ) -> bool:
        """After merging ``event_id`` into ``record``: :meth:`save_record`, then
        :meth:`inbox_done` for the event, in one round trip (one script).

        With ``figures_key`` (an ended call), that key is also set unless it exists; True
        when this call set it (the call's ACW figures are to be observed, once).
        """
        at = record.last_event_at or record.ended_at or record.started_at
        keys = [
            self.k("record", record.key),
            self.k("calls"),
            self.k("inbox"),
            self.k("inbox", "index"),
        ]
        if figures_key is not None:
            keys.append(figures_key)
        args = (
            len(record.event_ids),
            record.model_dump_json(),
            CALL_TTL,
            at.timestamp() if at else time.time(),
            record.key,
            event_id,
        )
        return bool(self._save_merged(keys=keys, args=args))

    def record(self, call_key: str) -> CallRecord | None:
        raw = self.redis.hget(self.k("record", call_key), "json")
        return CallRecord.model_validate_json(cast(str, raw)) if raw else None

    def recent_calls(self, limit: int = 50) -> list[str]:
        return cast(list[str], self.redis.zrevrange(self.k("calls"), 0, limit - 1))

    # -- sync coalescing --------------------------------------------------------------------
    def mark_pending(
        self, instance: str, call_key: str, ttl: int = 3600, *, force: bool = False
    ) -> bool:
        """True when no sync is queued yet for this call and instance (the caller enqueues).

        The value is the time it was set, so the reconciler can tell a stuck flag (its message
        lost) from a sync that is simply queued. ``force`` sets it whatever was there.
        """
        key = self.k("pending", instance, call_key)
        return bool(self.redis.set(key, repr(time.time()), nx=not force, ex=ttl))

    def pending_since(self, instance: str, call_key: str) -> float | None:
        raw = self.redis.get(self.k("pending", instance, call_key))
        if raw is None:
            return None
        try:
            return float(cast(str, raw))
        except ValueError:
            return 0.0

    def clear_pending(self, instance: str, call_key: str) -> None:
        self.redis.delete(self.k("pending", instance, call_key))

    # -- ledger -----------------------------------------------------------------------------
    def ledger(self, instance: str, call_key: str) -> Ledger:
        return Ledger.from_hash(
            cast(dict[str, str], self.redis.hgetall(self.k("ledger", instance, call_key)))
        )

    def ledger_set(self, instance: str, call_key: str, **values: Any) -> None:
        """Record fields of the ledger. Models are stored as JSON; None as ``null``."""
        mapping = ledger_fields(values)
        key = self.k("ledger", instance, call_key)
        # One round trip without MULTI/EXEC (a flush writes several fields per call): the TTL
        # only bounds the key's life, nothing reads the two commands as one.
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=cast(Any, mapping))
        pipe.expire(key, CALL_TTL)
        pipe.execute()

    def ledger_set_task(self, instance: str, call_key: str, rule: str, ref: CrmObjectRef) -> None:
        self.ledger_set(instance, call_key, **{f"task:{rule}": ref})

    # -- customers and owners -----------------------------------------------------------------
    def cached_customers(self, instance: str, phone: str) -> list[CustomerRef] | None:
        raw = self.redis.get(self.k("customers", instance, phone))
        if raw is None:
            return None
        return [CustomerRef.model_validate(c) for c in json.loads(cast(str, raw))]

    def cache_customers(
        self, instance: str, phone: str, found: list[CustomerRef], ttl: float
    ) -> None:
        if ttl > 0:
            payload = json.dumps([c.model_dump(mode="json") for c in found])
            self.redis.set(self.k("customers", instance, phone), payload, ex=max(1, int(ttl)))

    def created_customer(self, instance: str, phone: str) -> CustomerRef | None:
        raw = self.redis.get(self.k("created", instance, phone))
        return CustomerRef.model_validate_json(cast(str, raw)) if raw else None

    def remember_created_customer(self, instance: str, phone: str, ref: CustomerRef) -> None:
        pipe = self.redis.pipeline()
        pipe.set(self.k("created", instance, phone), ref.model_dump_json())
        pipe.delete(self.k("customers", instance, phone))
        pipe.execute()

    def cached_owner(self, instance: str, email: str) -> str | bool | None:
        """The cached owner id, ``""`` for a cached miss, False when not cached."""
        raw = self.redis.get(self.k("owners", instance, email.lower()))
        return False if raw is None else cast(str, raw)

    def cache_owner(self, instance: str, email: str, owner_id: str | None, ttl: int) -> None:
        self.redis.set(self.k("owners", instance, email.lower()), owner_id or "", ex=ttl)

    # -- locks ------------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, ttl: float = 60.0) -> Iterator[None]:
        """Hold ``name`` for at most ``ttl`` seconds, or raise LockBusy at once."""
        key, token = self.k("lock", name), secrets.token_hex(8)
        if not self.redis.set(key, token, nx=True, px=int(ttl * 1000)):
            raise LockBusy(name)
        try:
            yield
        finally:
            self._release(keys=[key], args=[token])

    # -- dead letters -------------------------------------------------------------------------
    def dead_letter(self, entry: dict[str, Any]) -> str:
        """Store a dead letter; entries with the same id replace each other (one per call)."""
        entry_id = str(entry["id"])
        pipe = self.redis.pipeline()
        pipe.hset(self.k("dlq"), entry_id, json.dumps(entry, default=str))
        pipe.zadd(self.k("dlq", "index"), {entry_id: time.time()})
        pipe.execute()
        return entry_id

    def dead_letters(self) -> list[dict[str, Any]]:
        ids = cast(list[str], self.redis.zrange(self.k("dlq", "index"), 0, -1))
        if not ids:
            return []
        raw = cast(list[str | None], self.redis.hmget(self.k("dlq"), ids))
        return [json.loads(r) for r in raw if r]

    def get_dead_letter(self, entry_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self.k("dlq"), entry_id)
        return cast(dict[str, Any], json.loads(cast(str, raw))) if raw else None

    def remove_dead_letter(self, entry_id: str) -> bool:
        pipe = self.redis.pipeline()
        pipe.hdel(self.k("dlq"), entry_id)
        pipe.zrem(self.k("dlq", "index"), entry_id)
        removed, _ = pipe.execute()
        return bool(removed)
