"""``acw-sync demo``: the whole flow on a fresh machine, with nothing running and no config.

Starts an embedded Redis, the webhook server and a worker as separate processes, sends a few
realistic signed calls over HTTP (an answered call with notes and a late recording, a missed
call from a new number, a voicemail, an outbound call, one duplicate delivery), waits until the
sandbox CRM holds them, prints the activities and follow-up tasks, and stops what it started.
Everything lives under ``<data dir>/demo`` and is wiped at the start of each run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console

from acw_sync.cli.sandbox import render_sandbox
from acw_sync.config import data_dir
from acw_sync.embedded import EmbeddedRedis
from acw_sync.providers.generic import sign

__all__ = ["COMMANDS", "demo_calls"]

DEMO_CONFIG = """\
# Written by `acw-sync demo`.
providers:
  generic:
    secret: ${ACW_GENERIC_SECRET}
connectors:
  sandbox:
    type: sandbox
    options:
      path: %(db)s
    matching:
      on_none: create
followups:
  callback_delay: 3600
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_calls(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """(webhook id, body) pairs: four calls' lifecycles, in the generic format."""
    t0 = now - timedelta(minutes=20)
    ana = {"id": "u-ana", "email": "ana@example.com", "name": "Ana Alvarez", "team": "support"}
    ben = {"id": "u-ben", "email": "ben@example.com", "name": "Ben Okafor", "team": "sales"}

    def ev(call: str, n: int, kind: str, at: datetime, **data: Any) -> tuple[str, dict[str, Any]]:
        body = {
            "type": f"call.{kind}",
            "timestamp": at.isoformat(),
            "data": {"call_id": call, **data},
        }
        return f"msg_{call}_{n}", body

    c1, c2, c3, c4 = (f"demo-{i}-{uuid.uuid4().hex[:6]}" for i in range(1, 5))
    maria = "(415) 555-0134"
    return [
        ev(c1, 1, "started", t0, direction="inbound", customer_number=maria,
           line_number="+14155550100", agent=ana, started_at=t0.isoformat()),
        ev(c1, 2, "answered", t0 + timedelta(seconds=8), answered_at=(t0 + timedelta(seconds=8)).isoformat()),
        ev(c1, 3, "ended", t0 + timedelta(seconds=308), ended_at=(t0 + timedelta(seconds=308)).isoformat(),
           outcome="completed", duration=308, talk_time=300, wrapup_time=45,
           disposition="Refund issued",
           notes=["Customer was charged twice for invoice 1042.",
                  "Refunded the duplicate charge; she will see it in 3-5 days."],
           tags=["billing"]),
        ev(c1, 4, "recording_ready", t0 + timedelta(seconds=340),
           recording_url=f"https://recordings.example.com/{c1}.mp3"),
        ev(c2, 1, "missed", t0 + timedelta(minutes=5), direction="inbound",
           customer_number="+1 (628) 555-0199", line_number="+14155550100",
           started_at=(t0 + timedelta(minutes=5)).isoformat(),
           ended_at=(t0 + timedelta(minutes=5, seconds=25)).isoformat(), outcome="missed"),
        ev(c3, 1, "started", t0 + timedelta(minutes=9), direction="inbound",
           customer_number="+44 20 7946 0958", line_number="+14155550100",
           started_at=(t0 + timedelta(minutes=9)).isoformat()),
        ev(c3, 2, "voicemail", t0 + timedelta(minutes=10), outcome="voicemail",
           ended_at=(t0 + timedelta(minutes=10)).isoformat(),
           recording_url=f"https://recordings.example.com/{c3}-voicemail.mp3",
           transcript=[{"speaker": "customer", "text": "Hi, it's Tom from Brightside. Please call me back about the renewal quote."}]),
        ev(c4, 1, "ended", t0 + timedelta(minutes=15), direction="outbound",
           customer_number=maria, line_number="+14155550100", agent=ben,
           started_at=(t0 + timedelta(minutes=12)).isoformat(),
           answered_at=(t0 + timedelta(minutes=12, seconds=10)).isoformat(),
           ended_at=(t0 + timedelta(minutes=15)).isoformat(), outcome="completed",
           duration=180, talk_time=170, notes=["Confirmed the refund reached her account."]),
    ]  # fmt: skip


def _send(url: str, secret: str, msg_id: str, body: dict[str, Any]) -> int:
    raw = json.dumps(body).encode()
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, raw),
    }
    return requests.post(url, data=raw, headers=headers, timeout=10).status_code


@contextmanager
def _processes(env: dict[str, str], log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _spawn(
    procs: list[subprocess.Popen[bytes]], args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "acw_sync", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    procs.append(proc)
    return proc


def _wait_ready(url: str, procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise click.ClickException(f"{proc.args!r} exited early ({proc.returncode})")
        with suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise click.ClickException(f"{url} not ready after {timeout} s")


@click.command()
@click.option("--keep", is_flag=True, help="Leave Redis, the server and the worker running.")
def demo(keep: bool) -> None:
    """Run the whole flow locally and print the sandbox CRM."""
    from acw_connector_sandbox import SandboxStore

    started = time.monotonic()
    console = Console()
    root = data_dir() / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    secret = "whsec_" + b64encode(os.urandom(32)).decode()
    db = root / "sandbox.db"
    (root / "acw-sync.yaml").write_text(DEMO_CONFIG % {"db": db})

    crm = SandboxStore(db)
    crm.add_owner("005-ANA", "ana@example.com", "Ana Alvarez")
    crm.add_owner("005-BEN", "ben@example.com", "Ben Okafor")
    crm.add_customer(name="Maria Garcia", phone="(415) 555-0134", phone_e164=None)

    redis_server = EmbeddedRedis(root / "redis")
    with console.status("starting the embedded Redis"):
        broker = redis_server.start()
    port = _free_port()
    env = {
        **os.environ,
        "ACW_BROKER_URL": broker,
        "ACW_DATA_DIR": str(root),
        "ACW_CONFIG": str(root / "acw-sync.yaml"),
        "ACW_GENERIC_SECRET": secret,
        "ACW_LOG_FORMAT": "json",
    }
    env.pop("ACW_REDIS_URL", None)
    calls = demo_calls(datetime.now(UTC))
    try:
        with _processes(env, root) as procs:
            with console.status("starting the webhook server and a worker"):
                _spawn(procs, ["serve", "--port", str(port)], env, root / "server.log")
                _spawn(procs, ["worker", "-c", "2"], env, root / "worker.log")
                _wait_ready(f"http://127.0.0.1:{port}/readyz", procs, timeout=20)
            url = f"http://127.0.0.1:{port}/webhooks/generic"
            console.print(f"[bold]server[/] http://127.0.0.1:{port}   [bold]broker[/] {broker}")
            for msg_id, body in calls:
                status = _send(url, secret, msg_id, body)
                console.print(f"  sent {body['type']:<22} {body['data']['call_id']}  -> {status}")
            dup_id, dup_body = calls[2]
            status = _send(url, secret, dup_id, dup_body)
            console.print(f"  sent the same call.ended again (duplicate delivery) -> {status}")
            late_recording = calls[3][1]["data"]["recording_url"]
            _wait_for_sync(crm, console, procs, late_recording, timeout=25)
            if keep:
                console.print("--keep: leaving the processes running")
                for proc in procs:
                    proc.returncode = 0
                procs.clear()
    finally:
        if not keep:
            redis_server.stop()
    console.print()
    render_sandbox(crm.dump(), console)
    console.print(
        f"[green]demo finished in {time.monotonic() - started:.1f} s[/]; "
        f"logs in {root}/server.log and {root}/worker.log"
    )


def _wait_for_sync(
    crm: Any,
    console: Console,
    procs: list[subprocess.Popen[bytes]],
    late_recording: str,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    with console.status("waiting for the worker to sync the calls") as status:
        while True:
            data = crm.dump()
            acts, tasks = data["activities"], data["tasks"]
            recorded = any(a["recording_url"] == late_recording for a in acts)
            status.update(
                f"waiting for the worker: {len(acts)}/4 activities, {len(tasks)}/2 follow-up "
                f"tasks, late recording {'in' if recorded else 'pending'}"
            )
            if len(acts) >= 4 and len(tasks) >= 2 and recorded:
                return
            for proc in procs:
                if proc.poll() is not None:
                    raise click.ClickException(f"{proc.args!r} exited ({proc.returncode})")
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"calls not synced after {timeout} s ({len(acts)} activities, "
                    f"{len(tasks)} tasks); see the logs in {crm.path.parent}"
                )
            time.sleep(0.2)


COMMANDS = [demo]
