"""What ops look at: the figures behind ``acw-sync status``, the ``/status`` page and the
scrape-time gauges, and the small records workers keep so those figures are cheap to read.

Reads the foundation's keys (calls, records, ledgers, dead letters), the Celery queue on the
broker, and the reliability layer's circuits (``{p}:circuit:{instance}``). Owns these keys,
written by the worker hooks (:mod:`acw_sync.task_signals`):

==========================================  =================================================
``{p}:ops:worker:{hostname}``               a worker's heartbeat (JSON, TTL)
``{p}:ops:workers``                         zset: worker hostnames by last beat (index)
``{p}:ops:syncs:{instance}:{minute}``       hash ok/failed: sync attempts per minute (TTL)
``{p}:ops:lasterror:{instance}``            the instance's last sync error (JSON)
``{p}:ops:unsynced``                        zset ``instance|call_key`` by first-queued time
``{p}:ops:figures:{call_key}``              the call's ACW figures were observed (TTL)
==========================================  =================================================

Nothing here writes to a CRM or to the queue.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from acw_sync.config import AppConfig
from acw_sync.logs import mask_phones, redact
from acw_sync.store import CALL_TTL, StateStore

__all__ = [
    "BrokerProbe",
    "CallRow",
    "ConnectorStatus",
    "StatusReport",
    "WorkerBeat",
    "circuit_state",
    "format_age",
    "gather_status",
    "recent_calls",
]

HEARTBEAT_TTL = 30
"""Seconds a heartbeat stays; workers beat every third of it."""
STATS_WINDOW = 15
"""Minutes of sync attempts behind the success rate."""
_STATS_TTL = 2 * 3600
_KOMBU_PRIORITY_SEP = "\x06\x16"


def format_age(seconds: float | None) -> str:
    """``42 s``, ``17 min``, ``3 h 5 min``: how old something is, for the CLI and the page."""
    s = int(seconds or 0)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _k(store: StateStore, *parts: str) -> str:
    return store.k("ops", *parts)


# -- writers (worker side) ------------------------------------------------------------------


def beat(store: StateStore, hostname: str, info: dict[str, Any]) -> None:
    """A worker is alive: its heartbeat key (gone TTL seconds after the last beat), and its
    name in the index readers walk (never a KEYS scan over a production Redis)."""
    now = time.time()
    payload = {**info, "hostname": hostname, "beat_at": now}
    pipe = store.redis.pipeline()
    pipe.set(_k(store, "worker", hostname), json.dumps(payload), ex=HEARTBEAT_TTL)
    pipe.zadd(_k(store, "workers"), {hostname: now})
    pipe.execute()


def forget_worker(store: StateStore, hostname: str) -> None:
    pipe = store.redis.pipeline()
    pipe.delete(_k(store, "worker", hostname))
    pipe.zrem(_k(store, "workers"), hostname)
    pipe.execute()


def record_attempt(store: StateStore, instance: str, ok: bool) -> None:
    """Count one sync attempt of ``instance`` in the current minute's bucket."""
    key = _k(store, "syncs", instance, str(int(time.time() // 60)))
    pipe = store.redis.pipeline()
    pipe.hincrby(key, "ok" if ok else "failed", 1)
    pipe.expire(key, _STATS_TTL)
    pipe.execute()


def record_error(
    store: StateStore, instance: str, call_key: str, reason: str, error: str, *, outcome: str
) -> None:
    entry = {
        "at": time.time(),
        "call_key": call_key,
        "reason": reason,
        "error": mask_phones(redact(error))[:500],
        "outcome": outcome,
    }
    store.redis.set(_k(store, "lasterror", instance), json.dumps(entry), ex=CALL_TTL)


def mark_unsynced(store: StateStore, instance: str, call_key: str) -> None:
    store.redis.zadd(_k(store, "unsynced"), {f"{instance}|{call_key}": time.time()}, nx=True)


def mark_done(store: StateStore, instance: str, call_key: str) -> None:
    store.redis.zrem(_k(store, "unsynced"), f"{instance}|{call_key}")


def first_figures(store: StateStore, call_key: str) -> bool:
    """True exactly once per call, across every worker (the ACW figures are observed then)."""
    return bool(store.redis.set(figures_key(store, call_key), "1", nx=True, ex=CALL_TTL))


def figures_key(store: StateStore, call_key: str) -> str:
    """The flag :func:`first_figures` sets (workers set it with the call's record instead)."""
    return _k(store, "figures", call_key)


# -- the broker -----------------------------------------------------------------------------


class BrokerProbe:
    """Reachability and queue depths of the Celery broker (Redis read directly; other
    brokers through kombu's passive queue declaration)."""

    def __init__(self, url: str, queues: tuple[str, ...] = ("acw",)) -> None:
        self.url = url
        self.queues = queues

    def read(self) -> tuple[bool, dict[str, int], int | None]:
        """(reachable, depth by queue, unacked messages or None)."""
        if self.url.startswith(("redis://", "rediss://", "unix://")):
            return self._read_redis()
        return self._read_kombu()

    def _read_redis(self) -> tuple[bool, dict[str, int], int | None]:
        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        try:
            pipe = client.pipeline(transaction=False)
            for queue in self.queues:
                pipe.llen(queue)
                for priority in (3, 6, 9):
                    pipe.llen(f"{queue}{_KOMBU_PRIORITY_SEP}{priority}")
            pipe.hlen("unacked")
            answers = cast(list[int], pipe.execute())
        except redis.RedisError:
            return False, {}, None
        finally:
            client.close()
        depths = {q: sum(answers[i * 4 : i * 4 + 4]) for i, q in enumerate(self.queues)}
        return True, depths, int(answers[-1])

    def _read_kombu(self) -> tuple[bool, dict[str, int], int | None]:
        from kombu.connection import Connection

        try:
            with Connection(self.url, connect_timeout=2) as conn:  # type: ignore[no-untyped-call]
                conn.ensure_connection(max_retries=1, timeout=2)
                channel = conn.default_channel
                depths = {
                    q: int(channel.queue_declare(q, passive=True).message_count)
                    for q in self.queues
                }
        except Exception:
            return False, {}, None
        return True, depths, None


# -- readers --------------------------------------------------------------------------------


@dataclass
class WorkerBeat:
    hostname: str
    pid: int | None
    started_at: float | None
    beat_at: float
    concurrency: int | None = None
    metrics_port: int | None = None


@dataclass
class ConnectorStatus:
    instance: str
    type: str
    attempts: int
    ok: int
    success_rate: float | None
    """Share of sync attempts in the last :data:`STATS_WINDOW` minutes that succeeded."""
    circuit: str
    last_error: dict[str, Any] | None
    dead_letters: int


@dataclass
class StatusReport:
    at: float
    broker_ok: bool
    state_ok: bool
    queues: dict[str, int]
    unacked: int | None
    workers: list[WorkerBeat]
    connectors: list[ConnectorStatus]
    dead_letters: int
    unsynced: int
    oldest_unsynced: dict[str, Any] | None
    """``{"connector", "call_key", "queued_at", "age"}`` of the oldest sync not yet done."""
    window_minutes: int = STATS_WINDOW
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["healthy"] = self.healthy
        return out

    def gauges(self) -> dict[str, Any]:
        """The figures :class:`acw_sync.metrics.StateCollector` exports."""
        return {
            "broker_ok": self.broker_ok,
            "queues": self.queues,
            "unacked": self.unacked,
            "dead_letters": self.dead_letters,
            "workers_alive": len(self.workers),
            "unsynced": self.unsynced,
            "oldest_unsynced_age": (self.oldest_unsynced or {}).get("age", 0.0),
            "circuits": {c.instance: c.circuit for c in self.connectors},
        }


def circuit_state(store: StateStore, instance: str) -> str:
    """``closed``, ``open`` or ``half_open`` from the reliability layer's circuit key;
    ``n/a`` when this build has no circuit breaker (:mod:`acw_sync.circuit` absent)."""
    state = cast(str | None, store.redis.hget(store.k("circuit", instance), "state"))
    if state:
        return state
    return "closed" if importlib.util.find_spec("acw_sync.circuit") else "n/a"


def workers(store: StateStore) -> list[WorkerBeat]:
    """Workers whose heartbeat is fresh; names whose heartbeat expired leave the index."""
    index = _k(store, "workers")
    names = cast(list[str], store.redis.zrange(index, 0, -1))
    raws = cast(list[str | None], store.redis.mget([_k(store, "worker", n) for n in names]))
    beats = []
    for name, raw in zip(names, raws if names else [], strict=False):
        if not raw:
            store.redis.zrem(index, name)
            continue
        data = json.loads(raw)
        beats.append(
            WorkerBeat(
                hostname=str(data.get("hostname")),
                pid=data.get("pid"),
                started_at=data.get("started_at"),
                beat_at=float(data.get("beat_at", 0)),
                concurrency=data.get("concurrency"),
                metrics_port=data.get("metrics_port"),
            )
        )
    return beats


def sync_stats(store: StateStore, instance: str, minutes: int = STATS_WINDOW) -> tuple[int, int]:
    """(attempts, successes) of ``instance`` over the last ``minutes``."""
    now = int(time.time() // 60)
    pipe = store.redis.pipeline(transaction=False)
    for minute in range(now - minutes + 1, now + 1):
        pipe.hmget(_k(store, "syncs", instance, str(minute)), "ok", "failed")
    ok = failed = 0
    for got_ok, got_failed in cast(list[list[str | None]], pipe.execute()):
        ok += int(got_ok or 0)
        failed += int(got_failed or 0)
    return ok + failed, ok


def _connector_status(
    store: StateStore, config: AppConfig, instance: str, dead: dict[str, int]
) -> ConnectorStatus:
    attempts, ok = sync_stats(store, instance)
    raw = cast(str | None, store.redis.get(_k(store, "lasterror", instance)))
    spec = config.connectors.get(instance)
    return ConnectorStatus(
        instance=instance,
        type=spec.type if spec else "?",
        attempts=attempts,
        ok=ok,
        success_rate=(ok / attempts) if attempts else None,
        circuit=circuit_state(store, instance),
        last_error=json.loads(raw) if raw else None,
        dead_letters=dead.get(instance, 0),
    )


def gather_status(store: StateStore, config: AppConfig, broker: BrokerProbe | None) -> StatusReport:
    """Everything on the ops screen, read in a few Redis round trips."""
    broker_ok, queues, unacked = broker.read() if broker else (False, {}, None)
    state_ok = store.ping()
    problems = [] if broker_ok else ["broker unreachable"]
    if not state_ok:
        problems.append("state Redis unreachable")
        return StatusReport(
            time.time(), broker_ok, False, queues, unacked, [], [], 0, 0, None, problems=problems
        )
    beats = workers(store)
    if not beats:
        problems.append("no worker alive")
    letters = store.dead_letters()
    dead: dict[str, int] = {}
    for letter in letters:
        dead[str(letter.get("connector"))] = dead.get(str(letter.get("connector")), 0) + 1
    connectors = [_connector_status(store, config, name, dead) for name in config.connectors]
    for status in connectors:
        if status.circuit == "open":
            problems.append(f"circuit open for {status.instance}")
    unsynced_key = _k(store, "unsynced")
    unsynced = int(store.redis.zcard(unsynced_key))
    oldest = None
    first = cast(list[tuple[str, float]], store.redis.zrange(unsynced_key, 0, 0, withscores=True))
    if first:
        member, queued_at = first[0]
        instance, _, call_key = member.partition("|")
        oldest = {
            "connector": instance,
            "call_key": call_key,
            "queued_at": queued_at,
            "age": max(0.0, time.time() - queued_at),
        }
    return StatusReport(
        at=time.time(),
        broker_ok=broker_ok,
        state_ok=True,
        queues=queues,
        unacked=unacked,
        workers=beats,
        connectors=connectors,
        dead_letters=len(letters),
        unsynced=unsynced,
        oldest_unsynced=oldest,
        problems=problems,
    )


@dataclass
class CallRow:
    """One recent call and its sync state in each connector instance it concerns."""

    call_key: str
    provider: str
    direction: str | None
    customer_number: str | None
    agent: str | None
    outcome: str | None
    ended_at: float | None
    last_event_at: float | None
    syncs: dict[str, dict[str, Any]]
    """instance -> {state, activity_url, activity_id, tasks: [{rule, id, url}], error}"""


def _sync_cell(
    store: StateStore, instance: str, call_key: str, queued: bool, mask: Callable[[str], str]
) -> dict[str, Any]:
    ledger = store.ledger(instance, call_key)
    state = ledger.state or ("queued" if queued else ("writing" if ledger.activity else "-"))
    return {
        "state": state,
        "activity_id": ledger.activity.id if ledger.activity else None,
        "activity_url": ledger.activity.url if ledger.activity else None,
        "customer_url": ledger.customer.url if ledger.customer else None,
        "tasks": [
            {"rule": rule, "id": ref.id, "url": ref.url}
            for rule, ref in sorted(ledger.tasks.items())
        ],
        "error": mask(redact(ledger.error)) if ledger.error else None,
        "synced_at": ledger.synced_at,
    }


def recent_calls(
    store: StateStore,
    config: AppConfig,
    limit: int = 25,
    mask: Callable[[str], str] | None = None,
) -> list[CallRow]:
    """The most recent calls, newest first, with their sync state per routed instance.

    ``mask`` is applied to phone numbers (the page masks them; pass None to show them).
    """
    pending = {
        cast(str, m) for m in store.redis.zrange(_k(store, "unsynced"), 0, -1)
    }  # small: only syncs not yet done
    rows = []
    for key in store.recent_calls(limit):
        record = store.record(key)
        if record is None:
            continue
        team = record.agent.team if record.agent else None
        instances = config.routes_for(
            record.provider, record.provider_account, record.line_number, team
        )
        number = record.customer_number
        rows.append(
            CallRow(
                call_key=key,
                provider=record.provider,
                direction=record.direction.value if record.direction else None,
                customer_number=(mask(number) if mask and number else number),
                agent=(record.agent.name or record.agent.email or record.agent.id)
                if record.agent
                else None,
                outcome=record.outcome.value if record.outcome else None,
                ended_at=record.ended_at.timestamp() if record.ended_at else None,
                last_event_at=record.last_event_at.timestamp() if record.last_event_at else None,
                syncs={
                    name: _sync_cell(store, name, key, f"{name}|{key}" in pending, mask or str)
                    for name in instances
                }
                if record.ended
                else {},
            )
        )
    return rows
