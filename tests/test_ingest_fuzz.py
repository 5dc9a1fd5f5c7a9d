"""Bad input at the ingest server: generated from the served OpenAPI document (schemathesis),
signed so that it reaches the parser, and unsigned; plus a corpus of malformed payloads.

Whatever comes in: no 5xx, no crash, and every rejection is a 4xx with a reason.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.testclient import TestClient

from acw_sync import server as server_module
from acw_sync.config import AppConfig
from acw_sync.model import CallEvent
from acw_sync.openapi import openapi_document
from acw_sync.server import Ingest, check_json_depth, create_app
from acw_sync.store import StateStore
from tests.helpers import SECRET, asgi_post_scope, generic_body, signed_headers

schema = schemathesis.openapi.from_dict(openapi_document(["generic"]))
_ids = itertools.count()


@pytest.fixture
def client(store: StateStore) -> Iterator[TestClient]:
    published: list[CallEvent] = []
    config = AppConfig(providers={"generic": {"secret": SECRET}})
    ingest = Ingest.from_config(config, store, published.append, broker_ping=lambda: True)
    # raise_server_exceptions: an exception escaping the app fails the test (a crash).
    with TestClient(create_app(ingest), raise_server_exceptions=True) as c:
        yield c


def _encode(case: Any) -> tuple[bytes, str]:
    media = case.media_type or "application/json"
    if case.body is None or isinstance(case.body, schemathesis.core.NotSet):
        return b"", media
    if isinstance(case.body, bytes):
        return case.body, media
    if "json" in media:
        return json.dumps(case.body, default=str).encode(), media
    if isinstance(case.body, dict):
        from urllib.parse import urlencode

        return urlencode({k: str(v) for k, v in case.body.items()}).encode(), media
    return str(case.body).encode(), media


def _check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), (
            response.status_code,
            response.text,
        )
        assert response.json().get("error"), response.text


def _send(client: TestClient, case: Any, *, sign: bool) -> Any:
    path = case.formatted_path
    if case.method.upper() == "GET":
        return client.get(path)
    body, media = _encode(case)
    headers = {"content-type": media}
    if sign:
        msg_id = f"fuzz-{next(_ids)}"
        try:
            headers.update(signed_headers(body, msg_id))
        except UnicodeDecodeError:  # the reference signer wants text: sign the raw bytes
            headers.update(_sign_bytes(body, msg_id))
        headers["content-type"] = media
    return client.post(path, content=body, headers=headers)


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_generated_requests_signed(case: Any, client: TestClient) -> None:
    _check(_send(client, case, sign=True))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_generated_requests_unsigned(case: Any, client: TestClient) -> None:
    response = _send(client, case, sign=False)
    _check(response)
    if case.method.upper() == "POST":
        assert response.status_code in (400, 401, 404, 405, 413), response.text


def _deep(n: int) -> bytes:
    return b'{"type": "call.ended", "data": ' + b"[" * n + b"]" * n + b"}"


MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b"   \n",
    "truncated": b'{"type": "call.ended", "data": {"call_id": "x"',
    "null": b"null",
    "array": b"[]",
    "string": b'"call.ended"',
    "number": b"42",
    "nan": b'{"type": "call.ended", "data": {"call_id": "x", "duration": NaN}}',
    "huge number": b'{"type": "call.ended", "data": {"call_id": "x", "duration": 1e999999}}',
    "huge int": b'{"type": "call.ended", "data": {"call_id": "x", "duration": '
    + b"9" * 5000
    + b"}}",
    "deep nesting": _deep(5000),
    "deep nesting in a string is fine": b'{"type": "x", "note": "' + b"[" * 5000 + b'"}',
    "invalid utf-8": b'{"type": "call.ended", "data": {"call_id": "\xff\xfe"}}',
    "utf-8 bom": b'\xef\xbb\xbf{"type": "call.ended", "data": {"call_id": "x"}}',
    "lone surrogate": b'{"type": "call.ended", "data": {"call_id": "\\ud800"}}',
    "no data": b'{"type": "call.ended"}',
    "data not object": b'{"type": "call.ended", "data": "x"}',
    "call_id object": b'{"type": "call.ended", "data": {"call_id": {"a": 1}}}',
    "call_id empty": b'{"type": "call.ended", "data": {"call_id": ""}}',
    "unknown type": b'{"type": "call.exploded", "data": {"call_id": "x"}}',
    "type not string": b'{"type": ["call.ended"], "data": {"call_id": "x"}}',
    "bad timestamp": b'{"type": "call.ended", "timestamp": "yesterday", "data": {"call_id": "x"}}',
    "naive timestamp": b'{"type": "call.ended", "data": {"call_id": "x", '
    b'"ended_at": "2026-01-01T10:00:00"}}',
    "year 0": b'{"type": "call.ended", "data": {"call_id": "x", "ended_at": "0000-01-01T00:00:00Z"}}',
    "bad phone": b'{"type": "call.ended", "data": {"call_id": "x", "customer_number": "call me"}}',
    "phone object": b'{"type": "call.ended", "data": {"call_id": "x", "customer_number": {}}}',
    "negative duration": b'{"type": "call.ended", "data": {"call_id": "x", "duration": -5}}',
    "bad outcome": b'{"type": "call.ended", "data": {"call_id": "x", "outcome": "exploded"}}',
    "agent string": b'{"type": "call.ended", "data": {"call_id": "x", "agent": "ana"}}',
    "notes not list": b'{"type": "call.ended", "data": {"call_id": "x", "notes": 5}}',
    "transcript garbage": b'{"type": "call.ended", "data": {"call_id": "x", "transcript": [1, null]}}',
    "duplicate keys": b'{"type": "call.ended", "type": "call.started", "data": {"call_id": "x"}}',
    "form encoded": b"type=call.ended&data=x",
    "xml": b"<call><id>1</id></call>",
    "nul bytes": b'{"type": "call.ended\x00", "data": {"call_id": "x\x00"}}',
    "long string": b'{"type": "call.ended", "data": {"call_id": "' + b"x" * 200_000 + b'"}}',
    "too large": b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}',
}


@pytest.mark.parametrize("name", list(MALFORMED))
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_malformed_payloads_are_4xx_with_a_reason(
    name: str, signed: bool, client: TestClient
) -> None:
    body = MALFORMED[name]
    headers = {"content-type": "application/json"}
    if signed:
        try:
            headers = signed_headers(body, f"bad-{next(_ids)}")
        except UnicodeDecodeError:  # the reference signer wants text: sign the raw bytes
            headers = _sign_bytes(body, f"bad-{next(_ids)}")
    response = client.post("/webhooks/generic", content=body, headers=headers)
    assert response.status_code < 500, response.text
    if name == "deep nesting in a string is fine" and signed:
        assert response.status_code in (200, 202, 400)
    elif response.status_code >= 400:
        assert 400 <= response.status_code < 500 and response.json()["error"]
    if name == "too large":
        assert response.status_code == 413
    if name == "deep nesting":
        assert response.status_code == 400 and "nested" in response.json()["error"]


def _sign_bytes(body: bytes, msg_id: str) -> dict[str, str]:
    import base64
    import hashlib
    import hmac
    import time

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    ts = str(int(time.time()))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def test_valid_call_still_accepted_among_the_fuzz(client: TestClient) -> None:
    body = generic_body("fuzz-ok", customer_number="+14155550100")
    response = client.post("/webhooks/generic", content=body, headers=signed_headers(body, "ok"))
    assert response.status_code == 202


def test_json_depth_scanner_skips_strings_and_escapes() -> None:
    check_json_depth(b'{"a": "[[[[\\"[[[[", "b\\\\": [[1]]}', limit=3)
    check_json_depth(b"[" * 32 + b"]" * 32)
    with pytest.raises(Exception, match="nested deeper"):
        check_json_depth(b"[" * 33 + b"]" * 33)
    check_json_depth(b"[" * 100, limit=200)
    check_json_depth(b"not json at all [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[")


def test_slow_body_is_408(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that stops sending its body gets 408 after the body timeout."""
    monkeypatch.setattr(server_module, "BODY_TIMEOUT", 0.3)
    config = AppConfig(providers={"generic": {"secret": SECRET}})
    app = create_app(Ingest.from_config(config, store, lambda e: None, lambda: True))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b'{"type":', "more_body": True}
        await anyio.sleep(3600)
        raise AssertionError("unreachable")

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = asgi_post_scope("/webhooks/generic", [(b"content-type", b"application/json")])

    async def main() -> None:
        with anyio.fail_after(5):
            await app(scope, receive, send)

    anyio.run(main)
    assert messages[0]["status"] == 408
