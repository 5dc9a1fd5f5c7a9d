"""The Redis side of a batch flush, in a few round trips instead of several per call.

A flush of 100 calls used to read and write its state call by call (lock, events, ledger,
customer cache, owner cache, three ledger writes, release: some 900 round trips). Here each
step is one pipeline over every call of the batch. The keys, values and their meaning are
exactly those of :class:`~acw_sync.store.StateStore` (``lock``, ``events``, ``ledger``,
``customers``, ``created``, ``pending``): a call synced by a batch reads the same to the single
path, and the reverse. This module owns no key of its own.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, cast

from acw_sync.model import CallEvent, CustomerRef
from acw_sync.store import CALL_TTL, Ledger, StateStore, ledger_fields

__all__ = ["LedgerWrites", "cached_customers", "lock_calls", "read_calls", "unlock_calls"]

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _lock_key(store: StateStore, instance: str, call_key: str) -> str:
    # The per-call lock of ``sync_call`` (``StateStore.lock(f"sync:{instance}:{call_key}")``).
    return store.k("lock", f"sync:{instance}:{call_key}")


def lock_calls(
    store: StateStore, instance: str, call_keys: list[str], ttl: float
) -> dict[str, str]:
    """Take each call's sync lock if free; the calls locked, with their tokens."""
    if not call_keys:
        return {}
    tokens = {key: secrets.token_hex(8) for key in call_keys}
    pipe = store.redis.pipeline(transaction=False)
    for key in call_keys:
        pipe.set(_lock_key(store, instance, key), tokens[key], nx=True, px=int(ttl * 1000))
    got = pipe.execute()
    return {key: tokens[key] for key, ok in zip(call_keys, got, strict=True) if ok}


def unlock_calls(store: StateStore, instance: str, held: dict[str, str]) -> None:
    """Release the locks of :func:`lock_calls` (each only if still ours)."""
    if not held:
        return
    pipe = store.redis.pipeline(transaction=False)
    for key, token in held.items():
        pipe.eval(_RELEASE, 1, _lock_key(store, instance, key), token)
    pipe.execute()


def ledger_from(raw: dict[str, str]) -> Ledger:
    """A ledger from its hash, as ``StateStore.ledger`` reads it."""
    return Ledger.from_hash(raw)


def read_calls(
    store: StateStore, instance: str, call_keys: list[str]
) -> dict[str, tuple[list[CallEvent], Ledger]]:
    """Each call's events and its ledger in ``instance``, in one round trip."""
    if not call_keys:
        return {}
    pipe = store.redis.pipeline(transaction=False)
    for key in call_keys:
        pipe.hgetall(store.k("events", key))
        pipe.hgetall(store.k("ledger", instance, key))
    answers = pipe.execute()
    found = {}
    for n, key in enumerate(call_keys):
        events = cast(dict[str, str], answers[2 * n])
        found[key] = (
            [CallEvent.model_validate_json(v) for v in events.values()],
            ledger_from(cast(dict[str, str], answers[2 * n + 1])),
        )
    return found


def cached_customers(
    store: StateStore, instance: str, phones: list[str]
) -> dict[str, list[CustomerRef]]:
    """The numbers whose customers are known without asking the CRM: the look-up cache, else
    the customer acw-sync created for the number (``StateStore.cached_customers`` and
    ``created_customer``, for every number in one round trip)."""
    if not phones:
        return {}
    pipe = store.redis.pipeline(transaction=False)
    for phone in phones:
        pipe.get(store.k("customers", instance, phone))
        pipe.get(store.k("created", instance, phone))
    answers = pipe.execute()
    found: dict[str, list[CustomerRef]] = {}
    for n, phone in enumerate(phones):
        cached, created = answers[2 * n], answers[2 * n + 1]
        if cached is not None:
            found[phone] = [CustomerRef.model_validate(c) for c in json.loads(cached)]
        elif created:
            found[phone] = [CustomerRef.model_validate_json(created)]
    return found


class LedgerWrites:
    """Ledger fields (and cache entries) of many calls, sent in one pipeline by :meth:`send`.

    Values are encoded as ``StateStore.ledger_set`` encodes them. Send before the next CRM
    write: the ledger must hold each answer before anything else is asked of the CRM.
    """

    def __init__(self, store: StateStore, instance: str) -> None:
        self.store = store
        self.instance = instance
        self._pipe = store.redis.pipeline(transaction=False)

    def set(self, call_key: str, **values: Any) -> None:
        mapping = ledger_fields(values)
        key = self.store.k("ledger", self.instance, call_key)
        self._pipe.hset(key, mapping=cast(Any, mapping))
        self._pipe.expire(key, CALL_TTL)

    def cache_customers(self, phone: str, found: list[CustomerRef], ttl: float) -> None:
        if ttl > 0:
            payload = json.dumps([c.model_dump(mode="json") for c in found])
            key = self.store.k("customers", self.instance, phone)
            self._pipe.set(key, payload, ex=max(1, int(ttl)))

    def finished(self, call_keys: list[str], tries_key: str) -> None:
        """The calls are synced: nothing pending, no failures to remember."""
        if call_keys:
            self._pipe.hdel(tries_key, *call_keys)
            self._pipe.delete(*(self.store.k("pending", self.instance, k) for k in call_keys))

    def send(self) -> None:
        if len(self._pipe):
            self._pipe.execute()
        self._pipe = self.store.redis.pipeline(transaction=False)
