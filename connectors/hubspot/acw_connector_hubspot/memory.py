"""What this process wrote, remembered: HubSpot's search index lags writes by up to a minute.

A bounded, thread-safe map (oldest entries dropped first). It is a shortcut and a guard within
one process; across processes the core's ledger and Redis memory, then a search, take over.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["Memory"]

K = TypeVar("K")
V = TypeVar("V")


class Memory(Generic[K, V]):
    """A bounded map, oldest entries dropped first."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)
