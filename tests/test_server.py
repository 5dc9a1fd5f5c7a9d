"""The ingest server in-process, with a real Redis for dedupe and a recording publisher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from acw_sync.config import AppConfig
from acw_sync.model import CallEvent
from acw_sync.server import Ingest, create_app
from acw_sync.store import StateStore
from tests.helpers import SECRET, asgi_post_scope, generic_body, signed_headers


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


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_each_outcome_by_kind_and_reason(client: TestClient) -> None:
    before = {
        "received": _sample("acw_webhooks_received_total", provider="generic"),
        "new": _sample("acw_webhooks_accepted_total", provider="generic", kind="new"),
        "dup": _sample("acw_webhooks_accepted_total", provider="generic", kind="duplicate"),
        "sig": _sample("acw_webhooks_rejected_total", provider="generic", reason="signature"),
        "payload": _sample("acw_webhooks_rejected_total", provider="generic", reason="payload"),
        "unknown": _sample(
            "acw_webhooks_rejected_total", provider="unknown", reason="unknown_provider"
        ),
        "timed": _sample("acw_ingest_latency_seconds_count", provider="generic"),
    }
    body = generic_body("call-m", customer_number="+14155550100")
    assert post(client, body, signed_headers(body, "msg_m")).status_code == 202
    assert post(client, body, signed_headers(body, "msg_m")).status_code == 200
    assert post(client, body, {**signed_headers(body, "x"), "webhook-id": "y"}).status_code == 401
    bad = b'{"type": "call.ended"}'
    assert post(client, bad, signed_headers(bad, "msg_bad")).status_code == 400
    assert post(client, body, signed_headers(body, "z"), provider="nope").status_code == 404
    after = {
        "received": _sample("acw_webhooks_received_total", provider="generic"),
        "new": _sample("acw_webhooks_accepted_total", provider="generic", kind="new"),
        "dup": _sample("acw_webhooks_accepted_total", provider="generic", kind="duplicate"),
        "sig": _sample("acw_webhooks_rejected_total", provider="generic", reason="signature"),
        "payload": _sample("acw_webhooks_rejected_total", provider="generic", reason="payload"),
        "unknown": _sample(
            "acw_webhooks_rejected_total", provider="unknown", reason="unknown_provider"
        ),
        "timed": _sample("acw_ingest_latency_seconds_count", provider="generic"),
    }
    assert {k: after[k] - before[k] for k in before} == {
        "received": 4, "new": 1, "dup": 1, "sig": 1, "payload": 1, "unknown": 1, "timed": 4,
    }  # fmt: skip


def test_other_methods_get_405_and_other_paths_404_as_json(client: TestClient) -> None:
    response = client.get("/webhooks/generic")
    assert response.status_code == 405 and response.json()["error"]
    assert client.post("/webhooks/generic/extra", content=b"{}").status_code == 404
    assert client.post("/webhooks/", content=b"{}").status_code == 404


def test_an_unforeseen_error_is_a_500_without_a_trace(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acw_sync.providers.generic import GenericProvider

    def explode(self: GenericProvider, request: object) -> list[CallEvent]:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(GenericProvider, "parse", explode)
    before = _sample("acw_webhooks_rejected_total", provider="generic", reason="error")
    body = generic_body("call-e")
    response = post(client, body, signed_headers(body, "msg_e"))
    assert response.status_code == 500 and response.json() == {"error": "internal error"}
    assert "secret" not in response.text
    assert _sample("acw_webhooks_rejected_total", provider="generic", reason="error") == before + 1


def _call(app: object, scope: dict[str, object], body: bytes = b"{}") -> list[dict[str, object]]:
    import anyio

    messages: list[dict[str, object]] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, object]:
        if pending:
            return pending.pop()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    anyio.run(app, scope, receive, send)  # type: ignore[arg-type]
    return messages


@pytest.mark.parametrize(
    ("headers", "path", "query", "server", "base"),
    [
        ([(b"host", b"acw.example.com")], "/webhooks/rec", b"", ("10.0.0.1", 8000), None),
        ([(b"host", b"h:8443"), (b"host", b"other")], "/webhooks/rec", b"a=1&a=&b=%20", None, None),
        ([], "/webhooks/rec", b"x=1", ("10.0.0.1", 80), None),
        ([], "/webhooks/rec", b"", ["::1", 8000], None),
        ([(b"host", b"bad host")], "/webhooks/rec", b"", ("10.0.0.1", 8000), None),
        ([(b"host", b"in.example")], "/webhooks/rec", b"q=%3F", None, "https://pub.example/"),
    ],
)
def test_the_provider_sees_the_url_starlette_would_give_it(
    store: StateStore,
    headers: list[tuple[bytes, bytes]],
    path: str,
    query: bytes,
    server: object,
    base: str | None,
) -> None:
    from starlette.requests import Request

    from acw_sync.provider import HandshakeResponse, Provider, WebhookRequest

    seen: list[WebhookRequest] = []

    class Recording(Provider):
        name = "rec"

        def handshake(self, request: WebhookRequest, now: datetime) -> HandshakeResponse:
            seen.append(request)
            return HandshakeResponse(body=b"{}")

        def verify(self, request: WebhookRequest, now: datetime) -> None:
            raise AssertionError("not reached")

        def parse(self, request: WebhookRequest) -> list[CallEvent]:
            raise AssertionError("not reached")

    config = AppConfig(providers={}, server={"public_base_url": base})  # type: ignore[arg-type]
    ingest = Ingest(config, {"rec": Recording(Provider.config_model())}, store, print, lambda: True)
    app = create_app(ingest)
    scope: dict[str, object] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https" if base else "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": server,
    }
    for _ in range(2):  # the second from the endpoint's memo
        messages = _call(app, dict(scope))
        assert messages[0]["status"] == 200
    starlette = Request(dict(scope)).url
    expected = str(starlette) if not base else base.rstrip("/") + starlette.path
    if base and starlette.query:
        expected += "?" + starlette.query
    for request in seen:
        assert request.url == expected
        assert request.path == starlette.path
        assert request.query == tuple(Request(dict(scope)).query_params.multi_items())
        assert request.headers.get("host") == (headers[-1][1].decode() if headers else None)
    assert len(seen) == 2


def test_the_server_process_freezes_its_startup_heap() -> None:
    import gc

    from acw_sync.server import GC_THRESHOLDS, settle_garbage_collector

    thresholds = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 10_000 and gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_a_client_gone_before_its_body_ends_gets_400(store: StateStore) -> None:
    import anyio

    config = AppConfig(providers={"generic": {"secret": SECRET}})
    app = create_app(Ingest.from_config(config, store, print, broker_ping=lambda: True))
    incoming = [
        {"type": "http.disconnect"},
        {"type": "http.request", "body": b'{"type":', "more_body": True},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return incoming.pop()

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = asgi_post_scope("/webhooks/generic", [(b"host", b"h")])
    anyio.run(app, scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 400
    assert b"disconnected" in sent[1]["body"]  # type: ignore[operator]
