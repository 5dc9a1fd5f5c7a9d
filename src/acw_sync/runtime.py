"""Process-wide wiring: the config, the Redis state store and the connector pool.

Each process (server, worker child) builds these once, on first use. The state Redis is
``ACW_REDIS_URL``, else the broker when the broker is Redis (``ACW_BROKER_URL`` or the
embedded server).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from acw_sync.config import AppConfig, load_config
from acw_sync.embedded import broker_url
from acw_sync.errors import ConfigError
from acw_sync.logs import register_config_secrets
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool

__all__ = ["Runtime", "get_runtime", "reset_runtime", "state_url"]


@dataclass
class Runtime:
    config: AppConfig
    store: StateStore
    pool: ConnectorPool


_lock = threading.Lock()
_runtime: Runtime | None = None


def state_url() -> str:
    url = os.environ.get("ACW_REDIS_URL")
    if url:
        return url
    broker = broker_url()
    if broker.startswith(("redis://", "rediss://", "unix://")):
        return broker
    raise ConfigError(
        "ACW_BROKER_URL is not Redis, so ACW_REDIS_URL must name the Redis that holds "
        "acw-sync's state (ledger, call records, rate limits, dead letters)"
    )


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            config = load_config()
            register_config_secrets(config)  # never in a log line, whatever logs them
            store = StateStore.from_url(state_url())
            _runtime = Runtime(config=config, store=store, pool=ConnectorPool(config))
        return _runtime


def reset_runtime() -> None:
    """Forget the wiring (after a fork, or in tests after changing the environment)."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.pool.close()
        _runtime = None
