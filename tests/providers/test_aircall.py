"""Aircall: the webhook token in the body is the only authentication Aircall offers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from provider_helpers import NOW, load, request

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.merge import merge_events
from acw_sync.model import CallEvent, CallOutcome, Direction, EventType
from acw_sync.providers.aircall import AircallConfig, AircallProvider

TOKEN = "cebcaac65f3e4d7a9b1c2d3e4f5a6b7c"


def provider() -> AircallProvider:
    return AircallProvider(AircallConfig(token=TOKEN))  # type: ignore[arg-type]


def body(payload: dict[str, Any], token: str = TOKEN) -> bytes:
    return json.dumps({**payload, "token": token}).encode()


def parse_all(name: str) -> list[CallEvent]:
    p = provider()
    events: list[CallEvent] = []
    for payload in load(name):
        req = request(body(payload), {"Content-Type": "application/json"})
        p.verify(req, NOW)
        events.extend(p.parse(req))
    return events


def test_token_accepted_wrong_or_missing_token_rejected() -> None:
    payload = load("aircall_inbound_answered.json")[0]
    provider().verify(request(body(payload)), NOW)
    with pytest.raises(SignatureInvalid, match="does not match") as err:
        provider().verify(request(body(payload, token="x" * 32)), NOW)
    assert TOKEN not in str(err.value)
    no_token = {k: v for k, v in payload.items() if k != "token"}
    with pytest.raises(SignatureInvalid, match="missing"):
        provider().verify(request(json.dumps(no_token).encode()), NOW)
    with pytest.raises(SignatureInvalid):
        provider().verify(request(b"not json"), NOW)


def test_several_tokens_for_several_webhooks() -> None:
    p = AircallProvider(AircallConfig(token=f"other {TOKEN}"))  # type: ignore[arg-type]
    p.verify(request(body(load("aircall_inbound_answered.json")[0])), NOW)


def test_full_inbound_lifecycle() -> None:
    events = parse_all("aircall_inbound_answered.json")
    types = [e.type for e in events]
    assert types[0] is EventType.STARTED and EventType.NOTE_ADDED in types
    record = merge_events(events)
    assert record.call_id == "812345"
    assert record.direction is Direction.INBOUND
    assert record.customer_number == "+14155550100"
    assert record.line_number == "+14155550199"
    assert record.agent is not None
    assert (record.agent.id, record.agent.email, record.agent.name, record.agent.team) == (
        "123",
        "alice@example.com",
        "Alice Martin",
        "Tier 1",
    )
    assert record.outcome is CallOutcome.COMPLETED
    assert record.duration == 120  # call.ended's final figure beats call.hungup's 112
    assert record.talk_time == 112  # answered_at -> ended_at
    assert [n.text for n in record.notes] == ["Customer wants a refund for the March invoice."]
    assert record.notes[0].id == "555" and record.notes[0].author == "alice@example.com"
    assert record.tags == ["billing"]  # "refund" was untagged
    assert record.recording_url == "https://aircall-recordings.example/812345.mp3"
    assert record.ended


def test_hungup_then_ended_in_any_order_gives_final_duration() -> None:
    events = parse_all("aircall_inbound_answered.json")
    assert merge_events(reversed(events)).duration == 120


def test_voicemail() -> None:
    record = merge_events(parse_all("aircall_inbound_voicemail.json"))
    assert record.outcome is CallOutcome.VOICEMAIL
    assert record.customer_number == "+442071838750"
    assert record.recording_url == "https://aircall-voicemails.example/812399.mp3"
    assert record.agent is None


def test_missed_reasons() -> None:
    payload = load("aircall_inbound_voicemail.json")[2]
    payload["data"].update(voicemail=None, missed_call_reason="short_abandoned")
    [event] = provider().parse(request(body(payload)))
    assert event.outcome is CallOutcome.ABANDONED
    payload["data"].update(missed_call_reason="out_of_opening_hours")
    [event] = provider().parse(request(body(payload)))
    assert event.outcome is CallOutcome.MISSED
    payload["data"].update(direction="outbound", missed_call_reason=None)
    [event] = provider().parse(request(body(payload)))
    assert event.outcome is CallOutcome.NO_ANSWER
    assert event.customer_number == "+442071838750"  # raw_digits is the other party


def test_other_resources_are_ignored_and_bad_bodies_are_invalid() -> None:
    user_event = {"resource": "user", "event": "user.connected", "timestamp": 1, "data": {"id": 1}}
    assert provider().parse(request(body(user_event))) == []
    payload = load("aircall_inbound_answered.json")[0]
    payload["data"]["id"] = None
    with pytest.raises(PayloadInvalid) as err:
        provider().parse(request(body(payload)))
    assert err.value.details[0]["field"] == "data.id"
    payload = load("aircall_inbound_answered.json")[0]
    payload["data"]["started_at"] = "yesterday"
    with pytest.raises(PayloadInvalid) as err:
        provider().parse(request(body(payload)))
    assert err.value.details[0]["field"] == "data.started_at"
