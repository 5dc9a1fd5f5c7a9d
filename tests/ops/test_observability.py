"""Ops can see everything, with real processes: one call followed through the logs by its id,
metrics scraped from the server and from a prefork worker, ``acw-sync status``, and the
``/status`` page in a real headless chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.helpers import SECRET, generic_body
from tests.ops.stack import ADMIN_TOKEN, Stack, make_stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = "+14155550177"


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("ops"), redis_url)
    stack.start("server")
    stack.start("worker")
    try:
        stack.wait(stack.server_ready, 30, "the server")
        stack.wait(stack.worker_ready, 30, "the worker's heartbeat")
        t0 = datetime.now(UTC) - timedelta(minutes=4)
        started = generic_body(
            "ops-call-1", "started", direction="inbound", customer_number=PHONE,
            started_at=t0.isoformat(), agent={"email": "ana@example.com", "team": "billing"},
        )  # fmt: skip
        ended = generic_body(
            "ops-call-1", "missed", ended_at=(t0 + timedelta(seconds=30)).isoformat(),
        )  # fmt: skip
        assert stack.send(started, "ops-msg-1").status_code == 202
        assert stack.send(ended, "ops-msg-2").status_code == 202
        assert (  # a forged webhook: counted as rejected for its signature
            requests.post(
                f"{stack.url}/webhooks/generic",
                data=b"{}",
                headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
                timeout=5,
            ).status_code
            == 401
        )
        stack.wait(
            lambda: stack.redis.hget("acw:ledger:crm:generic:ops-call-1", "state") == "synced",
            30,
            "the call to be synced",
        )
        yield stack
    finally:
        stack.stop_all()
        stack.redis.flushdb()


def _grep(stack: Stack, needle: str) -> list[dict[str, object]]:
    lines = stack.log_lines("server") + stack.log_lines("worker")
    return [line for line in lines if needle in json.dumps(line)]


def test_one_call_is_followed_through_the_logs_by_its_id(stack: Stack) -> None:
    story = _grep(stack, "ops-call-1")
    events = [str(line["event"]) for line in story]
    for expected in (
        "webhook accepted",
        "event merged",
        "sync queued",
        "call activity written",
        "follow-up task written",
        "sync finished",
    ):
        assert expected in events, f"no {expected!r} line for the call in {events}"
    # Every worker line about the call carries its key, provider and (for syncs) connector
    # and attempt: the task's context is bound, Celery's own lines included.
    worker_lines = [line for line in story if line.get("logger") != "acw_sync.server"]
    assert worker_lines and all(
        line.get("call_key") == "generic:ops-call-1" for line in worker_lines
    )
    assert all(line.get("provider") == "generic" for line in worker_lines)
    synced = next(line for line in story if line["event"] == "sync finished")
    assert synced["connector"] == "crm" and synced["attempt"] == 1 and synced["outcome"] == "synced"
    assert synced["activity_id"]  # the CRM object id is in the story
    received = [e for e in events if e.startswith("Task acw.") and e.endswith("received")]
    assert len(received) >= 3  # two events and one sync, logged before any task context
    celery_lines = [
        line for line in worker_lines if str(line.get("logger", "")).startswith("celery")
    ]
    assert celery_lines, "Celery's own task lines go through the same formatter with the context"
    merged = next(line for line in story if line["event"] == "event merged")
    assert merged["event_id"] in {"ops-msg-1", "ops-msg-2"}


def test_logs_mask_phones_and_never_carry_the_secret(stack: Stack) -> None:
    everything = stack.logs("server") + stack.logs("worker")
    assert PHONE not in everything
    assert SECRET not in everything and SECRET.removeprefix("whsec_") not in everything


def test_server_metrics(stack: Stack) -> None:
    text = requests.get(f"{stack.url}/metrics", timeout=5).text
    assert 'acw_webhooks_received_total{provider="generic"}' in text
    assert 'acw_webhooks_accepted_total{kind="new",provider="generic"}' in text
    assert re.search(
        r'acw_webhooks_rejected_total\{provider="generic",reason="signature"\} 1', text
    )
    assert "acw_ingest_latency_seconds_bucket" in text
    assert re.search(r"^acw_queue_depth\{queue=\"acw\"\} \d", text, re.M)
    assert re.search(r"^acw_workers_alive 1\.0$", text, re.M)
    assert re.search(r"^acw_broker_up 1\.0$", text, re.M)


def test_worker_metrics_aggregate_the_pool_processes(stack: Stack) -> None:
    def synced_count() -> float:
        text = requests.get(f"http://127.0.0.1:{stack.worker_metrics_port}/metrics", timeout=5).text
        match = re.search(r'acw_syncs_total\{connector="crm",result="synced"\} (\S+)', text)
        return float(match.group(1)) if match else 0.0

    stack.wait(lambda: synced_count() >= 1, 10, "the worker's sync counter")
    text = requests.get(f"http://127.0.0.1:{stack.worker_metrics_port}/metrics", timeout=5).text
    assert re.search(
        r'acw_crm_requests_total\{connector="crm",operation="upsert_call"\} [1-9]', text
    )
    assert 'acw_followups_created_total{connector="crm",rule="callback-missed"} 1.0' in text
    assert 'acw_call_end_to_crm_seconds_count{connector="crm"}' in text
    assert re.search(r'acw_events_processed_total\{provider="generic",result="queued"\}', text)


def test_status_command(stack: Stack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "acw_sync", "status", "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["broker_ok"] and report["state_ok"] and report["healthy"]
    assert len(report["workers"]) == 1 and report["workers"][0]["metrics_port"]
    [crm] = report["connectors"]
    assert crm["instance"] == "crm" and crm["success_rate"] == 1.0 and crm["attempts"] >= 1
    assert crm["circuit"] in {"n/a", "closed"}
    assert report["dead_letters"] == 0 and "acw" in report["queues"]
    screen = subprocess.run(
        [sys.executable, "-m", "acw_sync", "status"],
        env={**stack.env, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert screen.returncode == 0 and "all good" in screen.stdout and "crm" in screen.stdout


@pytest.mark.browser
def test_status_page_in_a_real_browser(stack: Stack) -> None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("no chromium binary (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page()
            refused = page.goto(f"{stack.url}/status?token=wrong-token")
            assert refused is not None and refused.status == 401
            assert "Unauthorized" in page.content()
            bare = page.goto(f"{stack.url}/status")
            assert bare is not None and bare.status == 401

            loaded = page.goto(f"{stack.url}/status?token={ADMIN_TOKEN}")
            assert loaded is not None and loaded.status == 200
            assert page.url == f"{stack.url}/status"  # the token left the address bar
            assert page.title().startswith("acw-sync status")
            row = page.locator('tr[data-call="generic:ops-call-1"]')
            assert row.count() == 1
            cell = row.locator('td.sync[data-connector="crm"]')
            assert "synced" in cell.inner_text()
            link = cell.locator("a.activity")
            assert link.get_attribute("href", timeout=2000).startswith(
                "http://crm.example.test/activities/"
            )
            assert cell.locator("a.task").count() == 1  # the missed call's call-back task
            assert "***0177" in row.inner_text() and PHONE not in page.content()
            assert page.locator("#tile-workers b").inner_text() == "1"
            assert "All good." in page.locator("#problems").inner_text()
            # The page refreshes itself with the cookie the token set.
            page.wait_for_load_state()
            assert page.locator('meta[http-equiv="refresh"]').count() == 1
            again = page.reload()
            assert again is not None and again.status == 200
        finally:
            browser.close()
