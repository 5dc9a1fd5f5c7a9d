"""Real acw-sync processes for the ops tests: a server and a worker on a real Redis.

Each process logs JSON to its own file under the stack's root (appended across restarts), so
a test can grep the logs exactly as ops would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from acw_connector_sandbox import SandboxStore
from tests.helpers import SECRET, signed_headers

CONFIG = """
providers:
  generic:
    secret: ${ACW_GENERIC_SECRET}
connectors:
  crm:
    type: sandbox
    options:
      path: %(db)s
      base_url: http://crm.example.test
    matching:
      on_none: create
"""

ADMIN_TOKEN = "ops-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    root: Path
    redis_url: str
    port: int
    worker_metrics_port: int
    env: dict[str, str]
    crm: SandboxStore
    redis: redis.Redis
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, name: str) -> subprocess.Popen[bytes]:
        args = {
            "server": ["serve", "--port", str(self.port)],
            "worker": [
                "worker", "-c", "2", "--metrics-port", str(self.worker_metrics_port),
            ],
        }[name]  # fmt: skip
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "acw_sync", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"{name} did not stop within {timeout} s of signal {sig}"
            ) from None

    def stop_all(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(AssertionError):
                self.stop(name, timeout=20)

    def logs(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        """The JSON lines of one process's log (anything else is skipped)."""
        out = []
        for line in self.logs(name).splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        tails = "\n".join(f"--- {n}\n{self.logs(n)[-4000:]}" for n in ("server", "worker"))
        raise AssertionError(f"timed out waiting for {what}\n{tails}")

    def server_ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def worker_ready(self) -> bool:
        return bool(self.redis.zcard("acw:ops:workers"))

    def send(self, body: bytes, msg_id: str, timeout: float = 10) -> requests.Response:
        return requests.post(
            f"{self.url}/webhooks/generic",
            data=body,
            headers=signed_headers(body, msg_id),
            timeout=timeout,
        )

    def activities(self, key: str | None = None) -> list[dict[str, Any]]:
        if key is None:
            return self.crm.query("SELECT * FROM activities")
        return self.crm.query("SELECT * FROM activities WHERE key = ?", (key,))


def make_stack(root: Path, redis_url: str, **env: str) -> Stack:
    db = root / "crm.db"
    (root / "acw-sync.yaml").write_text(CONFIG % {"db": db})
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    full_env = {
        **os.environ,
        "ACW_BROKER_URL": redis_url,
        "ACW_CONFIG": str(root / "acw-sync.yaml"),
        "ACW_DATA_DIR": str(root / "data"),
        "ACW_GENERIC_SECRET": SECRET,
        "ACW_LOG_FORMAT": "json",
        "ACW_ADMIN_TOKEN": ADMIN_TOKEN,
        **env,
    }
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return Stack(
        root=root,
        redis_url=redis_url,
        port=free_port(),
        worker_metrics_port=free_port(),
        env=full_env,
        crm=SandboxStore(db),
        redis=client,
    )
