"""Each platform's call lifecycle over HTTP into the real ingest server, with real signatures.

The server runs in-process (Starlette TestClient) on a real Redis for dedupe; the published
events are merged as the worker would merge them. Signatures are computed here, at the current
time, with the platforms' documented algorithms.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from provider_helpers import compact, load
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from acw_sync.config import AppConfig
from acw_sync.merge import merge_events
from acw_sync.model import CallEvent, CallOutcome, CallRecord, Direction
from acw_sync.server import Ingest, create_app
from acw_sync.store import StateStore

PUBLIC = "https://acw.example.com"
S = {
    "twilio": "twilio-auth-token-0123456789abcdef",
    "aircall": "aircall-webhook-token-0123456789ab",
    "dialpad": "dialpad-webhook-secret-0123456789ab",
    "ringcentral": "ringcentral-verification-0123456789",
    "zoom": "zoom-secret-token-0123456789abcdef",
    "vonage": "vonage-signature-secret-0123456789ab",
}
CONFIG = {
    "twilio": {"auth_token": S["twilio"]},
    "aircall": {"token": S["aircall"]},
    "dialpad": {"secret": S["dialpad"]},
    "ringcentral": {"verification_token": S["ringcentral"]},
    "zoom": {"secret_token": S["zoom"]},
    "vonage": {"signature_secret": S["vonage"]},
}

Request = tuple[bytes, dict[str, str]]


class Published(list[CallEvent]):
    def __call__(self, event: CallEvent) -> None:
        self.append(event)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def client(store: StateStore, published: Published) -> TestClient:
    config = AppConfig(providers=CONFIG, server={"public_base_url": PUBLIC})  # type: ignore[arg-type]
    ingest = Ingest.from_config(config, store, published, broker_ping=lambda: True)
    return TestClient(create_app(ingest), raise_server_exceptions=False)


def twilio(params: dict[str, str]) -> Request:
    sig = RequestValidator(S["twilio"]).compute_signature(PUBLIC + "/webhooks/twilio", params)
    return urlencode(params).encode(), {
        "X-Twilio-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def aircall(payload: dict[str, Any]) -> Request:
    return compact({**payload, "token": S["aircall"]}), {"Content-Type": "application/json"}


def dialpad(payload: dict[str, Any]) -> Request:
    return jwt.encode(payload, S["dialpad"], algorithm="HS256").encode(), {
        "Content-Type": "application/jwt"
    }


def ringcentral(payload: dict[str, Any]) -> Request:
    return compact(payload), {
        "Verification-Token": S["ringcentral"],
        "Content-Type": "application/json",
    }


def zoom(payload: dict[str, Any]) -> Request:
    body, ts = compact(payload), str(int(time.time()))
    mac = hmac.new(S["zoom"].encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return body, {"x-zm-signature": f"v0={mac}", "x-zm-request-timestamp": ts}


def vonage(payload: dict[str, Any]) -> Request:
    body = compact(payload)
    claims = {
        "iat": int(time.time()),
        "jti": hashlib.md5(body).hexdigest(),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": "abcd1234",
    }
    token = jwt.encode(claims, S["vonage"], algorithm="HS256")
    return body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


SIGNERS: dict[str, Callable[[Any], Request]] = {
    "twilio": twilio,
    "aircall": aircall,
    "dialpad": dialpad,
    "ringcentral": ringcentral,
    "zoom": zoom,
    "vonage": vonage,
}

LIFECYCLES = {
    "twilio": "twilio_inbound_answered.json",
    "aircall": "aircall_inbound_answered.json",
    "dialpad": "dialpad_callcenter_answered.json",
    "ringcentral": "ringcentral_inbound_answered.json",
    "zoom": "zoom_inbound_queue_answered.json",
    "vonage": "vonage_inbound_connected.json",
}

EXPECTED: dict[str, dict[str, Any]] = {
    "twilio": {
        "customer": "+14155550100",
        "agent": "alice",
        "talk": 95,
        "recording": "RE33333333333333333333333333333333",
    },
    "aircall": {
        "customer": "+14155550100",
        "agent": "alice@example.com",
        "talk": 112,
        "recording": "812345.mp3",
        "notes": 1,
    },
    "dialpad": {
        "customer": "+14155550100",
        "agent": "alice@example.com",
        "talk": 95,
        "recording": "/r/88",
        "notes": 1,
    },
    "ringcentral": {
        "customer": "+14155550100",
        "agent": "Alice Martin",
        "talk": 112,
        "recording": None,
    },
    "zoom": {
        "customer": "+14155550100",
        "agent": "Alice Martin",
        "talk": 112,
        "recording": "e0b1c2d3a4f5",
    },
    "vonage": {
        "customer": "+441234567890",
        "agent": None,
        "talk": 111,
        "recording": "0123456789ab",
    },
}


def send(client: TestClient, name: str, payloads: list[Any]) -> list[int]:
    codes = []
    for payload in payloads:
        body, headers = SIGNERS[name](payload)
        codes.append(client.post(f"/webhooks/{name}", content=body, headers=headers).status_code)
    return codes


def agent_label(record: CallRecord) -> str | None:
    if record.agent is None:
        return None
    return record.agent.email or record.agent.name or record.agent.id


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
def test_lifecycle_over_http_merges_into_one_call(
    client: TestClient, published: Published, name: str
) -> None:
    payloads = load(LIFECYCLES[name])
    assert set(send(client, name, payloads)) == {202}
    # every delivery again: all duplicates, nothing new on the queue
    count = len(published)
    assert set(send(client, name, payloads)) == {200}
    assert len(published) == count
    events = [e for e in published if e.provider == name]
    assert len({e.call_key for e in events}) == 1
    record = merge_events(events)
    want = EXPECTED[name]
    assert record.direction is Direction.INBOUND
    assert record.customer_number == want["customer"]
    assert record.outcome is CallOutcome.COMPLETED
    assert record.talk_time == want["talk"]
    assert agent_label(record) == want["agent"]
    if want["recording"]:
        assert record.recording_url is not None and want["recording"] in record.recording_url
    assert len(record.notes) == want.get("notes", 0)
    assert record.ended


def test_handshakes_over_http(client: TestClient) -> None:
    rc = client.post("/webhooks/ringcentral", content=b"", headers={"Validation-Token": "tok-42"})
    assert rc.status_code == 200 and rc.headers["validation-token"] == "tok-42"
    body, headers = zoom(
        {"event": "endpoint.url_validation", "event_ts": 1, "payload": {"plainToken": "abc"}}
    )
    answer = client.post("/webhooks/zoom", content=body, headers=headers)
    assert answer.status_code == 200
    assert (
        answer.json()["encryptedToken"]
        == hmac.new(S["zoom"].encode(), b"abc", hashlib.sha256).hexdigest()
    )


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
def test_tampered_body_is_401_and_nothing_enqueued(
    client: TestClient, published: Published, name: str
) -> None:
    body, headers = SIGNERS[name](load(LIFECYCLES[name])[0])
    if name == "aircall":
        body = body.replace(S["aircall"].encode(), b"guessed-token")
    elif name == "ringcentral":
        headers["Verification-Token"] = "guessed-token"
    elif name == "dialpad":
        body = body[:-3] + (b"AAA" if body[-3:] != b"AAA" else b"BBB")
    else:
        body = body.replace(b"14155550", b"19995550").replace(b"441234567890", b"449999999999")
    response = client.post(f"/webhooks/{name}", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert published == []
    for secret in S.values():
        assert secret not in response.text
