from __future__ import annotations

from pathlib import Path

import redis

from acw_sync.embedded import EmbeddedRedis


def test_embedded_redis_is_persistent_and_reused(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        assert server.start() == url  # a second command reuses the running server
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        client.set("kept", "1")
    finally:
        assert server.stop()
    assert server.url() is None
    url = server.start()
    try:
        assert redis.Redis.from_url(url).get("kept") == b"1"  # AOF brought it back
    finally:
        server.stop()
