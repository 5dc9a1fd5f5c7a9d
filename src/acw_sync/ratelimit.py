"""The shared rate limiter: one GCRA bucket per CRM account in Redis, for every worker.

Each connector instance sends through buckets keyed by its account (the instance name unless
``rate_limit.account`` says several instances share one CRM account). A bucket allows ``limit``
requests per ``period`` seconds (GCRA, the "generic cell rate
algorithm": one key holding the theoretical arrival time, one atomic Lua call per request, no
background drip). A bucket lets a burst of a tenth of the limit through at once and spaces
the rest so that no window of ``period`` seconds ever holds more than ``limit`` requests (the
CRMs count in rolling windows). Operations may have their own bucket on top (HubSpot's search endpoint is
limited to a few requests a second separately from the account's 10-second window).

On a 429 the bucket adapts down: its rate is halved (never below 5 %) and recovers linearly to
the configured rate over ``recover`` seconds without another 429. The factor lives in Redis,
so one worker's 429 slows every worker.

This module owns the ``{p}:rate:*`` keys; it knows nothing of Celery or connectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

__all__ = ["KNOWN_LIMITS", "Rate", "RateLimiter"]


@dataclass(frozen=True)
class Rate:
    """``limit`` requests per ``period`` seconds."""

    limit: int
    period: float

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"


KNOWN_LIMITS: dict[str, dict[str, Rate]] = {
    # Private apps, Free/Starter: 100 requests per 10 s (Professional and up: 190: the
    # connector's ``tier`` option); the CRM search endpoints: about 5 requests per second.
    "hubspot": {"*": Rate(100, 10.0), "search": Rate(5, 1.0)},
    # Salesforce has no per-second limit, only the rolling 24-hour allocation
    # (REQUEST_LIMIT_EXCEEDED -> QuotaExhausted -> the instance is paused).
    "salesforce": {},
}
"""Documented defaults by connector type, used when a connector class declares none."""

#: Lowest fraction of the configured rate the adaptation goes down to.
MIN_FACTOR = 0.05

# KEYS: bucket, adapt.  ARGV: limit, period_ms, recover_ms.  Returns ms to wait (0 = granted).
_ACQUIRE = """
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, period, recover = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local factor = 1
local a = redis.call('HMGET', KEYS[2], 'f', 'at')
if a[1] then
  factor = math.min(1, tonumber(a[1]) + (now - tonumber(a[2])) / recover)
end
local rate = math.max(limit * factor, 1)
local burst = math.max(1, math.floor(rate / 10))
local interval = period / math.max(1, rate - burst)
local tau = interval * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tau then
  return math.ceil(tat - tau - now)
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now + period))
return 0
"""

# KEYS: adapt.  ARGV: recover_ms, min_factor.  Halves the current factor.
_PENALIZE = """
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local recover, floor = tonumber(ARGV[1]), tonumber(ARGV[2])
local factor = 1
local a = redis.call('HMGET', KEYS[1], 'f', 'at')
if a[1] then
  factor = math.min(1, tonumber(a[1]) + (now - tonumber(a[2])) / recover)
end
factor = math.max(floor, factor / 2)
redis.call('HSET', KEYS[1], 'f', tostring(factor), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(recover * 2))
return tostring(factor)
"""


class RateLimiter:
    """GCRA buckets in Redis shared by every process that uses the same prefix."""

    def __init__(self, client: redis.Redis, prefix: str = "acw", recover: float = 60.0) -> None:
        self.redis = client
        self.prefix = prefix
        self.recover = recover
        self._acquire = client.register_script(_ACQUIRE)
        self._penalize = client.register_script(_PENALIZE)

    def _keys(self, account: str, bucket: str) -> list[str]:
        return [
            f"{self.prefix}:rate:{account}:{bucket}",
            f"{self.prefix}:rate:{account}:{bucket}:adapt",
        ]

    def try_acquire(self, account: str, bucket: str, rate: Rate) -> float:
        """Take one request from the bucket: 0.0 when granted, else seconds to wait."""
        waited = self._acquire(
            keys=self._keys(account, bucket),
            args=[rate.limit, int(rate.period * 1000), int(self.recover * 1000)],
        )
        return int(cast(int, waited)) / 1000.0

    def penalize(self, account: str, bucket: str) -> float:
        """The CRM answered 429: halve this bucket's rate for a while. The new factor."""
        factor = self._penalize(
            keys=self._keys(account, bucket)[1:], args=[int(self.recover * 1000), MIN_FACTOR]
        )
        return float(cast(str, factor))

    def factor(self, account: str, bucket: str) -> float:
        """The bucket's current fraction of its configured rate (1.0 when not adapted)."""
        raw = cast(list[str | None], self.redis.hmget(self._keys(account, bucket)[1], "f", "at"))
        if raw[0] is None or raw[1] is None:
            return 1.0
        now = self.redis.time()
        now_ms = now[0] * 1000 + now[1] // 1000
        return min(1.0, float(raw[0]) + (now_ms - float(raw[1])) / (self.recover * 1000))
