"""HubSpot's request budget: the limiter seam and the rate-limit headers.

HubSpot limits each app to a burst per 10 seconds (by tier) and CRM search to 5 requests per
second per account; every answer but search's carries ``X-HubSpot-RateLimit-*`` headers. The
in-process :class:`WindowLimiter` is the default; the core plugs a limiter shared across
workers through the :class:`RateLimiter` protocol (``HubSpotConnector.use_rate_limiter``).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from acw_sync.errors import RateLimited

__all__ = ["BURST", "SEARCH", "RateLimitStatus", "RateLimiter", "WindowLimiter"]

SEARCH = "search"
BURST = "burst"


class RateLimiter(Protocol):
    """The request budget. ``acquire`` returns when one request of ``bucket`` may go out.

    Buckets: ``"burst"`` (every non-search request; the tier's per-10-second limit) and
    ``"search"`` (CRM search, 5/s per account). Raise :class:`RateLimited` rather than block
    for long. The core replaces the in-process default with one shared across workers.
    """

    def acquire(self, bucket: str) -> None: ...


class WindowLimiter:
    """A sliding-window limiter for one process: ``limits[bucket] = (requests, seconds)``."""

    def __init__(
        self,
        limits: Mapping[str, tuple[int, float]],
        *,
        max_wait: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = dict(limits)
        self.max_wait = max_wait
        self._clock, self._sleep = clock, sleep
        self._sent: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def acquire(self, bucket: str) -> None:
        if bucket not in self.limits:
            return
        count, window = self.limits[bucket]
        while True:
            with self._lock:
                now = self._clock()
                sent = self._sent[bucket]
                while sent and sent[0] <= now - window:
                    sent.popleft()
                if len(sent) < count:
                    sent.append(now)
                    return
                wait = sent[0] + window - now
            if wait > self.max_wait:
                raise RateLimited(f"HubSpot {bucket} budget spent", retry_after=wait)
            self._sleep(wait)


@dataclass
class RateLimitStatus:
    """The last ``X-HubSpot-RateLimit-*`` headers seen (search answers carry none)."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    secondly: int | None = None
    secondly_remaining: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None
    seen_at: float | None = None

    def update(self, headers: Mapping[str, str]) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        names = {
            "max": "x-hubspot-ratelimit-max",
            "remaining": "x-hubspot-ratelimit-remaining",
            "interval_ms": "x-hubspot-ratelimit-interval-milliseconds",
            "secondly": "x-hubspot-ratelimit-secondly",
            "secondly_remaining": "x-hubspot-ratelimit-secondly-remaining",
            "daily": "x-hubspot-ratelimit-daily",
            "daily_remaining": "x-hubspot-ratelimit-daily-remaining",
        }
        found = False
        for attr, header in names.items():
            value = lower.get(header)
            if value is not None and value.strip().lstrip("-").isdigit():
                setattr(self, attr, int(value))
                found = True
        if found:
            self.seen_at = time.time()
