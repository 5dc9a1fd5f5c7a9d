"""RingCentral: Validation-Token handshake and the verification token on every notification."""

from __future__ import annotations

import json
from typing import Any

import pytest
from provider_helpers import NOW, load, request

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.merge import merge_events
from acw_sync.model import CallEvent, CallOutcome, Direction, EventType
from acw_sync.providers.ringcentral import RingCentralConfig, RingCentralProvider

TOKEN = "rc-verification-token-0123456789"


def provider() -> RingCentralProvider:
    return RingCentralProvider(RingCentralConfig(verification_token=TOKEN))  # type: ignore[arg-type]


def delivery(payload: dict[str, Any], header: str = "Verification-Token", token: str = TOKEN):  # type: ignore[no-untyped-def]
    return request(
        json.dumps(payload).encode(),
        {
            header: token,
            "Content-Type": "application/json; charset=UTF-8",
            "User-Agent": "RingCentral-Webhook/8.3",
        },
    )


def parse_all(name: str) -> list[CallEvent]:
    p = provider()
    events: list[CallEvent] = []
    for payload in load(name):
        req = delivery(payload)
        assert p.handshake(req, NOW) is None
        p.verify(req, NOW)
        events.extend(p.parse(req))
    return events


def test_validation_handshake_echoes_the_header() -> None:
    req = request(b"", {"Validation-Token": "abc-123-def"})
    answer = provider().handshake(req, NOW)
    assert answer is not None
    assert answer.status == 200
    assert answer.headers["Validation-Token"] == "abc-123-def"
    assert len(answer.body) + len("Validation-Token: abc-123-def") <= 1024


def test_verification_token_in_either_header() -> None:
    payload = load("ringcentral_inbound_answered.json")[0]
    provider().verify(delivery(payload, "Verification-Token"), NOW)
    provider().verify(delivery(payload, "Validation-Token"), NOW)
    # a notification carrying the token in Validation-Token is not mistaken for a handshake
    assert provider().handshake(delivery(payload, "Validation-Token"), NOW) is None


def test_wrong_or_missing_token_rejected() -> None:
    payload = load("ringcentral_inbound_answered.json")[0]
    with pytest.raises(SignatureInvalid, match="does not match") as err:
        provider().verify(delivery(payload, token="nope" * 8), NOW)
    assert TOKEN not in str(err.value)
    with pytest.raises(SignatureInvalid, match="missing"):
        provider().verify(request(json.dumps(payload).encode()), NOW)


def test_delivery_id_is_the_uuid() -> None:
    assert (
        provider().delivery_id(delivery(load("ringcentral_inbound_answered.json")[2]))
        == "8f1e0a9c-0003"
    )


def test_answered_lifecycle_in_any_order() -> None:
    events = parse_all("ringcentral_inbound_answered.json")
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6]
    record = merge_events(reversed(events))
    assert record.call_id == "s-a0d7b1c2d3e4f5"
    assert record.direction is Direction.INBOUND
    assert record.customer_number == "+14155550100"
    assert record.line_number == "+14155550199"
    assert record.agent is not None and (record.agent.id, record.agent.name) == (
        "2253168021",
        "Alice Martin",
    )
    assert record.outcome is CallOutcome.COMPLETED
    assert record.talk_time == 112  # first Answered 18:00:08 -> Disconnected 18:02:00
    assert record.duration == 119.9
    assert record.ended


def test_abandoned_call() -> None:
    record = merge_events(parse_all("ringcentral_inbound_abandoned.json"))
    assert record.outcome is CallOutcome.ABANDONED
    assert record.ended


def test_ring_group_leg_picked_up_elsewhere_does_not_end_the_call() -> None:
    payload = load("ringcentral_inbound_answered.json")[5]
    payload["body"]["parties"][0]["status"]["reason"] = "Pickup"
    [event] = provider().parse(delivery(payload))
    assert event.type is EventType.TRANSFERRED
    assert event.outcome is None


def test_other_events_ignored_and_bad_bodies_invalid() -> None:
    presence = {"uuid": "u", "event": "/restapi/v1.0/account/~/extension/~/presence", "body": {}}
    assert provider().parse(delivery(presence)) == []
    payload = load("ringcentral_inbound_answered.json")[0]
    payload["body"]["parties"] = "nope"
    with pytest.raises(PayloadInvalid) as err:
        provider().parse(delivery(payload))
    assert err.value.details[0]["field"] == "body.parties"
    payload = load("ringcentral_inbound_answered.json")[0]
    del payload["body"]["telephonySessionId"]
    with pytest.raises(PayloadInvalid):
        provider().parse(delivery(payload))
