"""The ingest's delivery claims and inbox journal in Redis, for a batch, on the event loop.

:class:`DeliveryClaims` does for a whole flush of the :class:`~acw_sync.enqueue.Enqueuer` what
:meth:`StateStore.claim_many <acw_sync.store.StateStore.claim_many>` followed by
:meth:`~acw_sync.store.StateStore.inbox_add`, :meth:`~acw_sync.store.StateStore.confirm` and
:meth:`~acw_sync.store.StateStore.release_many` do, on the same keys with the same TTLs
(``{p}:dedupe:...``, ``{p}:inbox``, ``{p}:inbox:index``; see :mod:`acw_sync.store`), but:

* with ``redis.asyncio``, so that the server's event loop never waits on Redis and no worker
  thread fights the loop for the GIL (a thread that waits for the GIL after each round trip
  made the flush, and so every request of it, wait up to the 5 ms switch interval per trip);
* claim and journal in one Lua script per batch, and confirm in another: three arguments per
  event instead of four commands, a few µs of CPU per event instead of about 50.

A test pins that the store's methods and these agree (``tests/test_publish.py``).

Must not touch: any other key of the store.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aredis
import redis.asyncio.connection as aconnection

from acw_sync.store import CLAIM_TTL, DEDUPE_TTL, StateStore

__all__ = ["DeliveryClaims", "async_twin"]

# KEYS: inbox hash, inbox index, then one dedupe key per event.
# ARGV: claim TTL, now, then (event id, event JSON) per event.
# A key listed twice is claimed by its first occurrence only (as StateStore.claim_many).
_CLAIM_AND_JOURNAL = """
local claimed, seen = {}, {}
for i = 3, #KEYS do
  local key, ok = KEYS[i], false
  if not seen[key] then
    seen[key] = true
    if redis.call('SET', key, '0', 'NX', 'EX', ARGV[1]) then
      ok = true
    else
      ok = redis.call('GET', key) == '0'
    end
  end
  if ok then
    local n = 2 * (i - 3) + 3
    redis.call('HSET', KEYS[1], ARGV[n], ARGV[n + 1])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[n])
    claimed[#claimed + 1] = 1
  else
    claimed[#claimed + 1] = 0
  end
end
return claimed
"""

# KEYS: dedupe keys. ARGV: the dedupe TTL.
_CONFIRM = """
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', ARGV[1])
end
return #KEYS
"""

_COMMON = (
    "db",
    "username",
    "password",
    "credential_provider",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "retry_on_timeout",
    "health_check_interval",
    "client_name",
    "encoding",
    "encoding_errors",
    "decode_responses",
    "protocol",
)


def async_twin(client: redis.Redis) -> aredis.Redis:
    """A ``redis.asyncio`` client for the server, database and credentials of ``client``.

    Copies the connection settings a URL can carry (TCP, TLS or Unix socket); create it on
    the event loop that will use it.
    """
    pool = client.connection_pool
    kwargs: dict[str, Any] = pool.connection_kwargs
    connection_class: type[aconnection.AbstractConnection]
    names: tuple[str, ...]
    if issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
        connection_class, names = aconnection.UnixDomainSocketConnection, ("path",)
    elif issubclass(pool.connection_class, redis.SSLConnection):
        connection_class = aconnection.SSLConnection
        names = ("host", "port", *(k for k in kwargs if k.startswith("ssl_")))
    else:
        connection_class, names = aconnection.Connection, ("host", "port")
    settings = {k: kwargs[k] for k in (*names, *_COMMON) if k in kwargs}
    return aredis.Redis(
        connection_pool=aredis.ConnectionPool(connection_class=connection_class, **settings)
    )


class DeliveryClaims:
    """Claim, journal, confirm and release the deliveries of a batch (module docstring)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.redis = async_twin(store.redis)
        self._claim = self.redis.register_script(_CLAIM_AND_JOURNAL)
        self._confirm = self.redis.register_script(_CONFIRM)
        self._inbox = store.k("inbox")
        self._index = store.k("inbox", "index")

    def _key(self, provider: str, delivery_id: str) -> str:
        return self.store.k("dedupe", provider, delivery_id)

    async def claim_and_journal(
        self, keys: Sequence[tuple[str, str]], events: Sequence[tuple[str, bytes]]
    ) -> list[bool]:
        """Claim each ``(provider, delivery id)`` provisionally; journal the claimed ones.

        ``events`` are ``(event id, event JSON)``, one per key. True where the delivery was
        claimed (new, or a provisional claim left by a failed attempt), as
        :meth:`StateStore.claim_many <acw_sync.store.StateStore.claim_many>`.
        """
        if not keys:
            return []
        # Bytes where they are at hand: redis-py passes them through without re-encoding.
        args: list[Any] = [CLAIM_TTL, time.time()]
        for event_id, event_json in events:
            args += (event_id, event_json)
        answer = await self._claim(
            keys=[self._inbox, self._index, *(self._key(p, d) for p, d in keys)], args=args
        )
        return [bool(flag) for flag in answer]

    async def confirm(self, keys: Sequence[tuple[str, str]]) -> None:
        """These deliveries are on the queue: later deliveries are duplicates."""
        if keys:
            await self._confirm(keys=[self._key(p, d) for p, d in keys], args=[DEDUPE_TTL])

    async def release(self, keys: Sequence[tuple[str, str]], event_ids: Sequence[str]) -> None:
        """Undo a claim whose publish failed: the platform's retry is claimed anew, and the
        events leave the inbox (the platform retries, not our scheduler)."""
        if not keys:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(*(self._key(p, d) for p, d in keys))
        if event_ids:
            pipe.hdel(self._inbox, *event_ids)
            pipe.zrem(self._index, *event_ids)
        await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()
