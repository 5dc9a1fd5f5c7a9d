"""Dialpad: events arrive as HS256 JWTs signed with the webhook secret (PyJWT as the signer)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from provider_helpers import NOW, load, request

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.merge import merge_events
from acw_sync.model import CallEvent, CallOutcome, Direction, EventType
from acw_sync.providers.dialpad import DialpadConfig, DialpadProvider

SECRET = "dialpad-webhook-secret-0123456789"


def provider() -> DialpadProvider:
    return DialpadProvider(DialpadConfig(secret=SECRET))  # type: ignore[arg-type]


def signed(payload: dict[str, Any], secret: str = SECRET) -> bytes:
    return jwt.encode(payload, secret, algorithm="HS256").encode()


def parse_all(name: str) -> list[CallEvent]:
    p = provider()
    events: list[CallEvent] = []
    for payload in load(name):
        req = request(signed(payload), {"Content-Type": "application/jwt"})
        p.verify(req, NOW)
        events.extend(p.parse(req))
    return events


def test_signed_jwt_accepted() -> None:
    provider().verify(request(signed(load("dialpad_callcenter_answered.json")[0])), NOW)


def test_tampered_payload_rejected() -> None:
    token = signed(load("dialpad_callcenter_answered.json")[0]).decode()
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["external_number"] = "+19995550000"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(SignatureInvalid, match="does not match"):
        provider().verify(request(f"{header}.{forged}.{sig}".encode()), NOW)


def test_wrong_secret_rejected_without_leaking() -> None:
    with pytest.raises(SignatureInvalid) as err:
        provider().verify(
            request(signed({"state": "ringing"}, secret="wrong-secret-wrong-secret-wrong-secret")),
            NOW,
        )
    assert SECRET not in str(err.value)


def test_unsigned_json_and_none_algorithm_rejected() -> None:
    with pytest.raises(SignatureInvalid, match="not a signed JWT"):
        provider().verify(request(json.dumps({"state": "ringing"}).encode()), NOW)
    unsigned = jwt.encode({"state": "ringing"}, None, algorithm="none").encode()  # type: ignore[arg-type]
    with pytest.raises(SignatureInvalid):
        provider().verify(request(unsigned), NOW)


def test_expired_token_rejected() -> None:
    token = signed({"state": "ringing", "exp": int(time.time()) - 3600})
    with pytest.raises(SignatureInvalid, match="expired"):
        provider().verify(request(token), NOW)


def test_call_center_lifecycle() -> None:
    events = parse_all("dialpad_callcenter_answered.json")
    assert {e.call_id for e in events} == {"5001"}
    bob_hangup = [e for e in events if e.raw["call_id"] == 5002 and e.raw["state"] == "hangup"]
    assert [e.type for e in bob_hangup] == [EventType.UPDATED]  # one unanswered ring is not the end
    record = merge_events(events)
    assert record.direction is Direction.INBOUND
    assert record.customer_number == "+14155550100"
    assert record.line_number == "+14155550199"
    assert record.agent is not None
    assert (record.agent.email, record.agent.name) == ("alice@example.com", "Alice Martin")
    assert record.outcome is CallOutcome.COMPLETED
    assert record.talk_time == 95
    assert record.duration == 106
    assert record.recording_url == "https://dialpad.com/r/88"
    assert record.transcript and "refund" in record.transcript[0].text
    assert [n.text for n in record.notes] == [
        "Customer asked for a refund of the March invoice; agent promised a callback."
    ]
    assert record.tags == ["vip"]
    assert record.ended


def test_missed_call() -> None:
    record = merge_events(parse_all("dialpad_inbound_missed.json"))
    assert record.outcome is CallOutcome.MISSED
    assert record.customer_number == "+442071838750"
    assert record.ended


def test_malformed_payload_is_invalid() -> None:
    with pytest.raises(PayloadInvalid) as err:
        provider().parse(request(signed({"state": "ringing"})))
    assert err.value.details[0]["field"] == "call_id"
    with pytest.raises(PayloadInvalid) as err:
        provider().parse(request(signed({"state": "hangup", "call_id": 1, "date_ended": "soon"})))
    assert err.value.details[0]["field"] == "date_ended"
