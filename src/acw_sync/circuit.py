"""Circuit breakers per connector instance, with their state in Redis shared by every worker.

::

    closed ──(failure_threshold consecutive transient failures)──▶ open
    open ──(reset_timeout elapsed: one worker takes the probe lease)──▶ half-open
    half-open ──(the probe succeeds)──▶ closed
    half-open ──(the probe fails)──▶ open (the timer starts again)

While a circuit is open (or half-open with another worker probing) nothing is sent to that
CRM: :meth:`CircuitBreaker.allow` answers the time at which to try again, and the caller parks
the work until then. Each transition is one atomic Lua call, so N workers do not let N times
the threshold through, and one instance's circuit never slows another's.

This module owns the ``{p}:circuit:*`` keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import redis

__all__ = ["CircuitBreaker", "CircuitSettings"]


@dataclass(frozen=True)
class CircuitSettings:
    failure_threshold: int = 5
    """Consecutive transient failures (5xx, timeouts, connection errors) that open the circuit."""
    reset_timeout: float = 30.0
    """Seconds an open circuit waits before one probe request is let through."""
    probe_timeout: float = 30.0
    """Seconds a probe may take before another worker may probe instead."""


# KEYS: circuit.  ARGV: reset_ms, probe_ms.
# Returns {allowed (0/1), retry_at_ms, state}.
_ALLOW = """
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local c = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probe_until')
local state = c[1] or 'closed'
if state == 'closed' then return {1, 0, state} end
local opened = tonumber(c[2] or '0')
local probe_until = tonumber(c[3] or '0')
if state == 'open' then
  local reopen = opened + tonumber(ARGV[1])
  if now < reopen then return {0, reopen, state} end
elseif now < probe_until then
  return {0, probe_until, state}
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', tostring(now + tonumber(ARGV[2])))
return {1, 0, 'half_open'}
"""

# KEYS: circuit.  ARGV: threshold.  Returns the new state.
_FAILURE = """
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'open' then return state end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if state == 'half_open' or failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'failures', 0)
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  return 'open'
end
return state
"""

# KEYS: circuit.  Returns the previous state.
_SUCCESS = """
local c = redis.call('HMGET', KEYS[1], 'state', 'failures')
local state = c[1] or 'closed'
if state ~= 'closed' or (c[2] and c[2] ~= '0') then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
end
return state
"""


class CircuitBreaker:
    """Redis-held circuits, one per connector instance."""

    def __init__(self, client: redis.Redis, prefix: str = "acw") -> None:
        self.redis = client
        self.prefix = prefix
        self._allow = client.register_script(_ALLOW)
        self._failure = client.register_script(_FAILURE)
        self._success = client.register_script(_SUCCESS)

    def _key(self, instance: str) -> str:
        return f"{self.prefix}:circuit:{instance}"

    def allow(self, instance: str, settings: CircuitSettings) -> float | None:
        """None when a request may go now; else the Unix time at which to try again."""
        allowed, retry_at, _ = cast(
            list[int | str],
            self._allow(
                keys=[self._key(instance)],
                args=[int(settings.reset_timeout * 1000), int(settings.probe_timeout * 1000)],
            ),
        )
        return None if int(allowed) else int(retry_at) / 1000.0

    def blocked_until(self, instance: str, settings: CircuitSettings) -> float | None:
        """Like :meth:`allow` without taking the probe lease: when sending would be refused."""
        raw = cast(
            list[str | None],
            self.redis.hmget(self._key(instance), "state", "opened_at", "probe_until"),
        )
        state, opened, probe_until = raw[0] or "closed", raw[1], raw[2]
        now = time.time()
        if state == "open" and opened is not None:
            reopen = float(opened) / 1000.0 + settings.reset_timeout
            return reopen if now < reopen else None
        if state == "half_open" and probe_until is not None:
            until = float(probe_until) / 1000.0
            return until if now < until else None
        return None

    def record_failure(self, instance: str, settings: CircuitSettings) -> str:
        """A transient failure; the state after it (``open`` when it tripped the circuit)."""
        return str(self._failure(keys=[self._key(instance)], args=[settings.failure_threshold]))

    def record_success(self, instance: str) -> str:
        """A request succeeded; the state before it (``half_open`` means the probe closed it)."""
        return str(self._success(keys=[self._key(instance)]))

    def state(self, instance: str) -> str:
        return cast(str | None, self.redis.hget(self._key(instance), "state")) or "closed"

    def times_opened(self, instance: str) -> int:
        return int(cast(str | None, self.redis.hget(self._key(instance), "opened")) or 0)
