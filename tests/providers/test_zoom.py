"""Zoom Phone: x-zm-signature v0 (HMAC-SHA256 over v0:{ts}:{body}) signed here with hmac."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from provider_helpers import NOW, load, request

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.merge import merge_events
from acw_sync.model import CallEvent, CallOutcome, Direction, EventType
from acw_sync.providers.zoom import ZoomConfig, ZoomProvider

SECRET = "zoom-secret-token-0123456789abcdef"
TS = int(NOW.timestamp())


def provider(**kw: Any) -> ZoomProvider:
    return ZoomProvider(ZoomConfig(secret_token=SECRET, **kw))


def signed(body: bytes, ts: int = TS, secret: str = SECRET):  # type: ignore[no-untyped-def]
    message = b"v0:" + str(ts).encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return request(
        body,
        {
            "x-zm-signature": sig,
            "x-zm-request-timestamp": str(ts),
            "content-type": "application/json",
        },
    )


def parse_all(name: str) -> list[CallEvent]:
    p = provider()
    events: list[CallEvent] = []
    for payload in load(name):
        req = signed(json.dumps(payload).encode())
        assert p.handshake(req, NOW) is None
        p.verify(req, NOW)
        events.extend(p.parse(req))
    return events


BODY = json.dumps(load("zoom_inbound_queue_answered.json")[0]).encode()


def test_valid_signature() -> None:
    provider().verify(signed(BODY), NOW)


def test_tampered_body_rejected() -> None:
    req = signed(BODY)
    forged = request(BODY.replace(b"+14155550100", b"+19995550000"), dict(req.headers))
    with pytest.raises(SignatureInvalid, match="does not match"):
        provider().verify(forged, NOW)


def test_wrong_secret_rejected() -> None:
    with pytest.raises(SignatureInvalid) as err:
        provider().verify(signed(BODY, secret="another-secret-token-0123456789ab"), NOW)
    assert SECRET not in str(err.value) and "14155550100" not in str(err.value)


def test_stale_and_future_timestamps_rejected() -> None:
    with pytest.raises(SignatureInvalid, match="too old"):
        provider().verify(signed(BODY, ts=TS - 301), NOW)
    with pytest.raises(SignatureInvalid, match="too new"):
        provider().verify(signed(BODY, ts=TS + 301), NOW)
    provider(tolerance=600).verify(signed(BODY, ts=TS - 301), NOW)


def test_missing_headers_rejected() -> None:
    with pytest.raises(SignatureInvalid, match="missing"):
        provider().verify(request(BODY), NOW)


def test_url_validation_answered_only_when_signed() -> None:
    body = json.dumps(
        {
            "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
            "event_ts": 1654503849680,
            "event": "endpoint.url_validation",
        }
    ).encode()
    answer = provider().handshake(signed(body), NOW)
    assert answer is not None and answer.status == 200
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert json.loads(answer.body) == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": expected,
    }
    # unsigned: refusing stops anyone from using us as an HMAC oracle for forged events
    with pytest.raises(SignatureInvalid):
        provider().handshake(request(body), NOW)


def test_queue_call_answered_by_one_member() -> None:
    events = parse_all("zoom_inbound_queue_answered.json")
    bob_missed = [e for e in events if e.raw["event"] == "phone.callee_missed"]
    assert [e.type for e in bob_missed] == [EventType.UPDATED]
    record = merge_events(events)
    assert record.call_id == "7006926284340112376"
    assert record.direction is Direction.INBOUND
    assert record.customer_number == "+14155550100"
    assert record.line_number == "+14155550199"
    # Bob's missed leg arrives after Alice answered; the agent who answered wins
    assert record.agent is not None and (record.agent.id, record.agent.name) == (
        "z8yCw1AbRt2",
        "Alice Martin",
    )
    assert record.outcome is CallOutcome.COMPLETED
    assert record.talk_time == 112
    assert record.duration == 119
    assert record.recording_url == "https://zoom.us/v2/phone/recording/download/e0b1c2d3a4f5"
    assert record.ended


def test_direct_missed_call_with_voicemail_and_transcript() -> None:
    record = merge_events(parse_all("zoom_inbound_voicemail.json"))
    assert record.outcome is CallOutcome.VOICEMAIL
    assert record.customer_number == "+442071838750"
    assert record.line_number == "+14155550199"
    assert record.recording_url == "https://zoom.us/v2/phone/voice_mails/download/vm-8891"
    assert record.transcript[0].text.startswith("Hi, it's Sam")
    assert record.ended


def test_outbound_and_internal_calls() -> None:
    payload = {
        "event": "phone.caller_connected",
        "event_ts": 1773165600000,
        "payload": {
            "account_id": "a",
            "object": {
                "call_id": "1",
                "caller": {
                    "phone_number": "+14155550199",
                    "user_id": "u1",
                    "extension_type": "user",
                    "name": "Alice",
                },
                "callee": {"phone_number": "02071838750"},
                "ringing_start_time": "2026-03-10T18:00:00Z",
                "connected_start_time": "2026-03-10T18:00:05Z",
            },
        },
    }
    [event] = ZoomProvider(ZoomConfig(secret_token=SECRET, default_region="GB")).parse(
        signed(json.dumps(payload).encode())
    )
    assert (event.type, event.direction) == (EventType.ANSWERED, Direction.OUTBOUND)
    assert event.customer_number == "+442071838750"  # national number read with region GB
    payload["payload"]["object"]["callee"] = {
        "phone_number": "1010",
        "user_id": "u2",
        "extension_type": "user",
    }  # type: ignore[index]
    [event] = provider().parse(signed(json.dumps(payload).encode()))
    assert event.direction is Direction.INTERNAL and event.customer_number is None


def test_unused_events_ignored_and_bad_payload_invalid() -> None:
    sms = {
        "event": "phone.sms_received",
        "event_ts": 1,
        "payload": {"account_id": "a", "object": {}},
    }
    assert provider().parse(signed(json.dumps(sms).encode())) == []
    bad = {
        "event": "phone.recording_completed",
        "event_ts": 1,
        "payload": {"object": {"recordings": "x"}},
    }
    with pytest.raises(PayloadInvalid) as err:
        provider().parse(signed(json.dumps(bad).encode()))
    assert err.value.details[0]["field"] == "payload.object.recordings"
