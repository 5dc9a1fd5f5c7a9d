"""The ingest server in-process, with a real Redis for dedupe and a recording publisher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from acw_sync.config import AppConfig
from acw_sync.model import CallEvent
from acw_sync.server import Ingest, create_app
from acw_sync.store import StateStore
from tests.helpers import SECRET, generic_body, signed_headers


class Recorder:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.down = False

    def __call__(self, event: CallEvent) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.events.append(event)


@pytest.fixture
def published() -> Recorder:
    return Recorder()


@pytest.fixture
def client(store: StateStore, published: Recorder) -> TestClient:
    config = AppConfig(providers={"generic": {"secret": SECRET}})
    ingest = Ingest.from_config(config, store, published, broker_ping=lambda: not published.down)
    return TestClient(create_app(ingest), raise_server_exceptions=False)


def post(client: TestClient, body: bytes, headers: dict[str, str], provider: str = "generic"):  # type: ignore[no-untyped-def]
    return client.post(f"/webhooks/{provider}", content=body, headers=headers)


def test_valid_webhook_is_enqueued_once(client: TestClient, published: Recorder) -> None:
    body = generic_body("call-1", customer_number="+14155550100")
    headers = signed_headers(body, "msg_1")
    first = post(client, body, headers)
    assert first.status_code == 202 and first.json()["accepted"] == ["msg_1"]
    again = post(client, body, signed_headers(body, "msg_1"))
    assert again.status_code == 200 and again.json()["duplicates"] == ["msg_1"]
    assert [e.event_id for e in published.events] == ["msg_1"]


def test_bad_signature_is_401_and_nothing_enqueued(client: TestClient, published: Recorder) -> None:
    body = generic_body("call-2")
    headers = signed_headers(body, "msg_2")
    headers["webhook-signature"] = "v1," + "A" * 44
    response = post(client, body, headers)
    assert response.status_code == 401 and "signature" in response.json()["error"]
    stale = signed_headers(body, "msg_2", at=datetime.now(UTC) - timedelta(minutes=10))
    assert post(client, body, stale).status_code == 401
    assert published.events == []


def test_malformed_body_is_400_with_field_errors(client: TestClient) -> None:
    body = b'{"type": "call.ended", "timestamp": "2026-03-10T10:00:00Z", "data": {"duration": -3}}'
    response = post(client, body, signed_headers(body, "msg_3"))
    assert response.status_code == 400
    fields = {d["field"] for d in response.json()["details"]}
    assert {"data.call_id", "data.duration"} <= fields


def test_oversized_body_is_413_and_unknown_provider_404(client: TestClient) -> None:
    body = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    assert post(client, body, signed_headers(body, "msg_4")).status_code == 413
    small = generic_body("c")
    assert post(client, small, signed_headers(small, "m"), provider="nope").status_code == 404


def test_broker_down_is_503_and_delivery_can_be_retried(
    client: TestClient, published: Recorder
) -> None:
    body = generic_body("call-5")
    published.down = True
    assert post(client, body, signed_headers(body, "msg_5")).status_code == 503
    assert client.get("/readyz").status_code == 503
    published.down = False
    retried = post(client, body, signed_headers(body, "msg_5"))
    assert retried.status_code == 202 and len(published.events) == 1


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/webhooks/{provider}" in doc["paths"]
    assert "GenericPayload" in doc["components"]["schemas"]
