"""Each platform's signed call lifecycle, over HTTP into `acw-sync serve` and through a real
`acw-sync worker`, ends as one activity in the sandbox CRM with the right direction, numbers,
agent, duration, outcome, notes and recording.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from provider_helpers import load
from test_http import CONFIG, LIFECYCLES, PUBLIC, SIGNERS, S
from tests.test_end_to_end import Stack, _free_port, _wait

from acw_connector_sandbox import SandboxStore

YAML = """
server:
  public_base_url: %(public)s
providers:
  twilio:
    auth_token: ${E2E_TWILIO}
  aircall:
    token: ${E2E_AIRCALL}
  dialpad:
    secret: ${E2E_DIALPAD}
  ringcentral:
    verification_token: ${E2E_RINGCENTRAL}
  zoom:
    secret_token: ${E2E_ZOOM}
  vonage:
    signature_secret: ${E2E_VONAGE}
connectors:
  crm:
    type: sandbox
    options:
      path: %(db)s
    matching:
      on_none: create
"""

CALLS = {
    "twilio": ("CA11111111111111111111111111111111", "+14155550100", 106, "RE333", None, None),
    "aircall": ("812345", "+14155550100", 120, "812345.mp3", "alice@example.com", "March invoice"),
    "dialpad": ("5001", "+14155550100", 106, "/r/88", "alice@example.com", "promised a callback"),
    "ringcentral": ("s-a0d7b1c2d3e4f5", "+14155550100", 119.9, None, None, None),
    "zoom": ("7006926284340112376", "+14155550100", 119, "e0b1c2d3a4f5", None, None),
    "vonage": (
        "CON-8f5a100c-fbce-4218-8d4b-16341335bcd6",
        "+441234567890",
        119,
        "0123456789ab",
        None,
        None,
    ),
}


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert set(CONFIG) == set(CALLS)
    root = tmp_path_factory.mktemp("e2e-providers")
    db = root / "crm.db"
    (root / "acw-sync.yaml").write_text(YAML % {"db": db, "public": PUBLIC})
    crm = SandboxStore(db)
    crm.add_owner("005-alice", "alice@example.com", "Alice Martin")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    env = {
        **os.environ,
        "ACW_BROKER_URL": redis_url,
        "ACW_CONFIG": str(root / "acw-sync.yaml"),
        "ACW_DATA_DIR": str(root / "data"),
        "ACW_LOG_FORMAT": "json",
        **{f"E2E_{name.upper()}": secret for name, secret in S.items()},
    }
    port = _free_port()
    procs = []
    for name, args in (
        ("server", ["serve", "--port", str(port)]),
        ("worker", ["worker", "-c", "2"]),
    ):
        log = (root / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "acw_sync", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    stack = Stack(f"http://127.0.0.1:{port}", crm, client, procs, Path(root))

    def ready() -> bool:
        try:
            return requests.get(f"{stack.url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    _wait(ready, 30, "the server to be ready", stack)
    yield stack
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    client.flushdb()


def activity(stack: Stack, key: str) -> list[dict[str, Any]]:
    return stack.crm.query("SELECT * FROM activities WHERE key = ?", (key,))


def test_every_platform_lifecycle_becomes_one_sandbox_activity(stack: Stack) -> None:
    for name, fixture in LIFECYCLES.items():
        for payload in load(fixture):
            body, headers = SIGNERS[name](payload)
            response = requests.post(
                f"{stack.url}/webhooks/{name}", data=body, headers=headers, timeout=10
            )
            assert response.status_code == 202, (name, response.text)

    for name, (call_id, customer, duration, recording, owner_email, note) in CALLS.items():
        key = f"{name}:{call_id}"

        def synced(key: str = key, recording: str | None = recording) -> bool:
            rows = activity(stack, key)
            # late events (recording, transcript, recap) update the same activity
            return bool(rows) and (
                recording is None or recording in (rows[0]["recording_url"] or "")
            )

        _wait(synced, 30, f"the {name} activity", stack)
        [row] = activity(stack, key)
        assert row["direction"] == "inbound", name
        assert row["outcome"] == "completed", name
        assert row["duration"] == pytest.approx(duration), name
        [person] = stack.crm.query("SELECT * FROM customers WHERE id = ?", (row["customer_id"],))
        assert person["phone_e164"] == customer, name
        if owner_email:
            assert row["owner_id"] == "005-alice", name
        if note:
            assert note in row["body"], name
    # one activity per call, and nothing else
    assert len(stack.crm.query("SELECT * FROM activities")) == len(CALLS)
