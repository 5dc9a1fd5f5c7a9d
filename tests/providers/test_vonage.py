"""Vonage Voice: Authorization Bearer JWT (HS256, signature secret) with payload_hash."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import jwt
import pytest
from provider_helpers import NOW, compact, load, request

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.merge import merge_events
from acw_sync.model import CallEvent, CallOutcome, Direction, EventType
from acw_sync.providers.vonage import VonageConfig, VonageProvider

SECRET = "vonage-signature-secret-0123456789abcdef"
IAT = int(NOW.timestamp()) - 2


def provider(**kw: Any) -> VonageProvider:
    return VonageProvider(VonageConfig(signature_secret=SECRET, **kw))


def signed(
    body: bytes,
    *,
    secret: str = SECRET,
    iat: int = IAT,
    payload_hash: str | None = "auto",
    **claims: Any,
):  # type: ignore[no-untyped-def]
    token_claims: dict[str, Any] = {
        "iat": iat,
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": "abcd1234",
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        **claims,
    }
    if payload_hash == "auto":
        token_claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    elif payload_hash is not None:
        token_claims["payload_hash"] = payload_hash
    token = jwt.encode(token_claims, secret, algorithm="HS256")
    return request(body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def parse_all(name: str) -> list[CallEvent]:
    p = provider()
    events: list[CallEvent] = []
    for payload in load(name):
        req = signed(compact(payload))
        p.verify(req, NOW)
        events.extend(p.parse(req))
    return events


BODY = compact(load("vonage_inbound_connected.json")[0])


def test_valid_token_and_payload_hash() -> None:
    provider().verify(signed(BODY), NOW)
    provider(api_key="abcd1234").verify(signed(BODY), NOW)
    provider().verify(signed(BODY, payload_hash=None), NOW)  # the claim is optional


def test_tampered_body_fails_payload_hash() -> None:
    req = signed(BODY)
    forged = request(BODY.replace(b"441234567890", b"449999999999"), dict(req.headers))
    with pytest.raises(SignatureInvalid, match="payload_hash"):
        provider().verify(forged, NOW)


def test_payload_hash_of_the_compact_json_is_accepted() -> None:
    pretty = json.dumps(load("vonage_inbound_connected.json")[0], indent=2).encode()
    provider().verify(signed(pretty, payload_hash=hashlib.sha256(BODY).hexdigest()), NOW)


def test_wrong_secret_rejected() -> None:
    with pytest.raises(SignatureInvalid, match="does not match") as err:
        provider().verify(signed(BODY, secret="another-signature-secret-0123456789ab"), NOW)
    assert SECRET not in str(err.value)


def test_stale_iat_and_expired_token_rejected() -> None:
    with pytest.raises(SignatureInvalid, match="too old"):
        provider().verify(signed(BODY, iat=IAT - 600), NOW)
    provider(max_age=None).verify(signed(BODY, iat=IAT - 600), NOW)
    with pytest.raises(SignatureInvalid, match="expired"):
        provider().verify(signed(BODY, exp=1), NOW)


def test_missing_or_malformed_authorization_rejected() -> None:
    with pytest.raises(SignatureInvalid, match="missing") as err:
        provider().verify(request(BODY), NOW)
    assert err.value.status == 503  # Vonage retries an unsigned callback on 5xx, signed
    with pytest.raises(SignatureInvalid, match="not a valid"):
        provider().verify(request(BODY, {"Authorization": "Bearer not.a.jwt"}), NOW)
    with pytest.raises(SignatureInvalid, match="api_key"):
        provider(api_key="other").verify(signed(BODY), NOW)


def test_inbound_call_connected_to_an_agent() -> None:
    events = parse_all("vonage_inbound_connected.json")
    inbound_answered = [
        e for e in events if e.raw.get("status") == "answered" and e.raw["direction"] == "inbound"
    ]
    assert [e.type for e in inbound_answered] == [EventType.UPDATED]
    record = merge_events(reversed(events))
    assert record.call_id == "CON-8f5a100c-fbce-4218-8d4b-16341335bcd6"
    assert record.direction is Direction.INBOUND
    assert record.customer_number == "+441234567890"  # not the agent's mobile from the second leg
    assert record.line_number == "+442038297050"
    assert record.outcome is CallOutcome.COMPLETED
    assert record.duration == 119  # the last leg to complete carries the whole call
    assert record.talk_time == 111
    assert (
        record.recording_url
        == "https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
    )
    assert record.ended


def test_outbound_unanswered() -> None:
    record = merge_events(parse_all("vonage_outbound_unanswered.json"))
    assert record.direction is Direction.OUTBOUND
    assert record.customer_number == "+14155550123"
    assert record.outcome is CallOutcome.NO_ANSWER
    assert record.ended


def test_machine_detection_is_voicemail() -> None:
    payload = dict(
        load("vonage_outbound_unanswered.json")[1], status="machine", sub_state="beep_start"
    )
    [event] = provider().parse(signed(compact(payload)))
    assert event.outcome is CallOutcome.VOICEMAIL


def test_bad_payload() -> None:
    with pytest.raises(PayloadInvalid) as err:
        provider().parse(signed(compact({"status": "started"})))
    assert err.value.details[0]["field"] == "conversation_uuid"
    with pytest.raises(PayloadInvalid):
        provider().parse(signed(b"[1, 2]"))
