"""The ops routes in-process (real Redis, sandbox CRM): token rules, figures, metrics."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from acw_connector_sandbox import SandboxStore
from acw_sync import status
from acw_sync.config import AppConfig, ConnectorInstance, MatchingPolicy
from acw_sync.errors import RateLimited
from acw_sync.model import Agent, CallEvent, CallOutcome, Direction, EventType
from acw_sync.server import Ingest, create_app
from acw_sync.status import BrokerProbe, gather_status
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool, sync_call
from tests.helpers import SECRET, generic_body, signed_headers

TOKEN = "status-page-token-abcdef"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def config(tmp_path: Path) -> AppConfig:
    return AppConfig(
        providers={"generic": {"secret": SECRET}},
        connectors={
            "crm": ConnectorInstance(
                type="sandbox",
                options={"path": str(tmp_path / "crm.db"), "base_url": "https://crm.example.test"},
                matching=MatchingPolicy(on_none="create"),
            )
        },
    )


def make_client(store: StateStore, config: AppConfig, redis_url: str) -> TestClient:
    ingest = Ingest.from_config(config, store, lambda event: None, broker_ping=lambda: True)
    ingest.broker_url = redis_url
    return TestClient(create_app(ingest), raise_server_exceptions=False)


def add_ended_call(store: StateStore, call_id: str) -> str:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    for event in (
        CallEvent(
            event_id=f"{call_id}-s", provider="generic", call_id=call_id, type=EventType.STARTED,
            occurred_at=t0, direction=Direction.INBOUND, customer_number="+14155550142",
            started_at=t0, agent=Agent(email="ana@example.com", team="sales"),
        ),
        CallEvent(
            event_id=f"{call_id}-e", provider="generic", call_id=call_id, type=EventType.ENDED,
            occurred_at=t0 + timedelta(seconds=70), ended_at=t0 + timedelta(seconds=70),
            outcome=CallOutcome.MISSED, talk_time=0,
        ),
    ):  # fmt: skip
        store.add_event(event)
    from acw_sync.merge import merge_events

    store.save_record(merge_events(store.events(f"generic:{call_id}")))
    return f"generic:{call_id}"


def test_no_token_configured_means_no_page(
    store: StateStore, config: AppConfig, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACW_ADMIN_TOKEN", raising=False)
    client = make_client(store, config, redis_url)
    assert client.get("/status").status_code == 404
    assert client.get("/status.json", headers={"authorization": "Bearer x"}).status_code == 404


def test_token_rules(
    store: StateStore, config: AppConfig, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACW_ADMIN_TOKEN", TOKEN)
    client = make_client(store, config, redis_url)
    assert client.get("/status").status_code == 401
    assert client.get("/status", headers={"authorization": "Bearer nope"}).status_code == 401
    assert client.get("/status?token=nope").status_code == 401
    assert (
        client.get("/status.json", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    )
    redirect = client.get(f"/status?token={TOKEN}", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == "/status"
    cookie = redirect.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    page = client.get("/status")  # the client kept the cookie
    assert page.status_code == 200 and "acw-sync status" in page.text
    assert page.headers["cache-control"] == "no-store"
    client.cookies.clear()
    client.cookies.set("acw_admin", "forged")
    assert client.get("/status").status_code == 401


def test_figures_on_the_page_and_in_json(
    store: StateStore, config: AppConfig, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACW_ADMIN_TOKEN", TOKEN)
    client = make_client(store, config, redis_url)
    pool = ConnectorPool(config)
    key = add_ended_call(store, "sp-1")
    status.mark_unsynced(store, "crm", key)
    SandboxStore(Path(config.connectors["crm"].options["path"])).inject_fault(
        "rate_limit", times=1, retry_after=3
    )
    waits = sample("acw_crm_rate_limit_waits_total", connector="crm")
    with pytest.raises(RateLimited):
        sync_call(store, pool, "crm", key)
    assert sample("acw_crm_rate_limit_waits_total", connector="crm") == waits + 1
    status.record_attempt(store, "crm", ok=False)
    status.record_error(store, "crm", key, "rate_limited", "429 from +14155550142", outcome="retry")
    followups = sample("acw_followups_created_total", connector="crm", rule="callback-missed")
    assert sync_call(store, pool, "crm", key).status == "synced"
    assert (
        sample("acw_followups_created_total", connector="crm", rule="callback-missed")
        == followups + 1
    )
    status.record_attempt(store, "crm", ok=True)
    status.mark_done(store, "crm", key)
    other = add_ended_call(store, "sp-2")
    status.mark_unsynced(store, "crm", other)
    store.dead_letter({"id": f"crm|{other}", "connector": "crm", "call_key": other, "reason": "x"})
    status.beat(store, "celery@test", {"pid": 1, "started_at": time.time(), "concurrency": 2})
    store.redis.hset("acw:circuit:crm", "state", "open")

    report = client.get("/status.json", headers={"authorization": f"Bearer {TOKEN}"}).json()
    assert report["problems"] == ["circuit open for crm"] and not report["healthy"]
    [crm] = report["connectors"]
    assert crm["success_rate"] == 0.5 and crm["circuit"] == "open" and crm["dead_letters"] == 1
    assert crm["last_error"]["error"] == "429 from ***0142"
    assert report["oldest_unsynced"]["call_key"] == other and report["unsynced"] == 1
    assert len(report["workers"]) == 1 and report["dead_letters"] == 1
    calls = {c["call_key"]: c for c in report["recent_calls"]}
    synced = calls[key]["syncs"]["crm"]
    assert synced["state"] == "synced"
    assert synced["activity_url"].startswith("https://crm.example.test/activities/")
    assert calls[key]["customer_number"] == "***0142"
    assert calls[other]["syncs"]["crm"]["state"] == "queued"

    page = client.get("/status", headers={"authorization": f"Bearer {TOKEN}"}).text
    assert "+14155550142" not in page and "***0142" in page
    assert 'href="https://crm.example.test/activities/' in page
    assert "circuit open for crm" in page
    metrics = client.get("/metrics").text
    assert 'acw_circuit_state{connector="crm",state="open"} 1.0' in metrics
    assert re.search(r"^acw_dead_letters 1\.0$", metrics, re.M)
    assert re.search(r"^acw_oldest_unsynced_seconds \d", metrics, re.M)


def test_metrics_route(
    store: StateStore, config: AppConfig, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(store, config, redis_url)
    store.redis.rpush("acw", "m1", "m2", "m3")
    body = generic_body("mx-1", customer_number="+14155550100")
    assert (
        client.post(
            "/webhooks/generic", content=body, headers=signed_headers(body, "mx-1")
        ).status_code
        == 202
    )
    assert (
        client.post(
            "/webhooks/generic", content=body, headers=signed_headers(body, "mx-1")
        ).status_code
        == 200
    )
    bad = signed_headers(body, "mx-2")
    bad["webhook-signature"] = "v1," + "A" * 44
    assert client.post("/webhooks/generic", content=body, headers=bad).status_code == 401
    assert client.post("/webhooks/nosuch", content=body).status_code == 404
    text = client.get("/metrics").text
    assert re.search(r'^acw_queue_depth\{queue="acw"\} 3\.0$', text, re.M)
    assert 'acw_webhooks_accepted_total{kind="duplicate",provider="generic"}' in text
    assert 'acw_webhooks_rejected_total{provider="unknown",reason="unknown_provider"}' in text
    assert 'acw_webhooks_rejected_total{provider="generic",reason="signature"}' in text
    assert "nosuch" not in text  # unknown provider names never become labels
    monkeypatch.setenv("ACW_METRICS_TOKEN", "metrics-token-123")
    guarded = make_client(store, config, redis_url)
    assert guarded.get("/metrics").status_code == 401
    ok = guarded.get("/metrics", headers={"authorization": "Bearer metrics-token-123"})
    assert ok.status_code == 200


def test_status_survives_a_broker_that_is_down(store: StateStore, config: AppConfig) -> None:
    report = gather_status(store, config, BrokerProbe("redis://127.0.0.1:1/0"))
    assert not report.broker_ok and "broker unreachable" in report.problems
    assert json.loads(json.dumps(report.to_dict()))["connectors"][0]["circuit"] in {"n/a", "closed"}


def test_page_says_so_when_redis_is_down(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACW_ADMIN_TOKEN", TOKEN)
    dead = StateStore.from_url("redis://127.0.0.1:1/0")
    client = make_client(dead, config, "redis://127.0.0.1:1/0")
    page = client.get("/status", headers={"authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    assert "broker unreachable" in page.text and "state Redis unreachable" in page.text
    assert re.search(r"^acw_broker_up 0\.0$", client.get("/metrics").text, re.M)
