"""Twilio: signatures computed by the official twilio-python RequestValidator (and by hand)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest
from provider_helpers import NOW, load, request
from twilio.request_validator import RequestValidator

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.merge import merge_events
from acw_sync.model import CallOutcome, Direction, EventType
from acw_sync.providers.twilio import TwilioConfig, TwilioProvider

TOKEN = "12345678901234567890123456789012"
URL = "https://acw.example.com/webhooks/twilio"


def provider(**kw: object) -> TwilioProvider:
    return TwilioProvider(TwilioConfig(auth_token=TOKEN, **kw))  # type: ignore[arg-type]


def signed(params: dict[str, str], *, url: str = URL, token: str = TOKEN):  # type: ignore[no-untyped-def]
    signature = RequestValidator(token).compute_signature(url, params)
    return request(
        urlencode(params).encode(),
        {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        url=URL,
    )


def test_valid_signature_is_accepted() -> None:
    params = load("twilio_inbound_answered.json")[0]
    provider().verify(signed(params), NOW)


def test_tampered_body_is_rejected() -> None:
    params = load("twilio_inbound_answered.json")[0]
    good = signed(params)
    tampered = dict(params, From="+19995550000")
    bad = request(urlencode(tampered).encode(), dict(good.headers), url=URL)
    with pytest.raises(SignatureInvalid, match="does not match"):
        provider().verify(bad, NOW)


def test_wrong_token_is_rejected_and_reason_leaks_nothing() -> None:
    params = load("twilio_inbound_answered.json")[0]
    with pytest.raises(SignatureInvalid) as err:
        provider().verify(signed(params, token="0" * 32), NOW)
    assert TOKEN not in str(err.value)
    assert "CA1111" not in str(err.value)


def test_missing_signature_is_rejected() -> None:
    with pytest.raises(SignatureInvalid, match="missing"):
        provider().verify(request(b"CallSid=CA1", url=URL), NOW)


def test_url_must_be_the_public_one() -> None:
    """Behind a TLS-terminating proxy the app sees http://; the signature is over https://."""
    params = load("twilio_inbound_answered.json")[0]
    sig = RequestValidator(TOKEN).compute_signature(URL, params)
    internal = request(
        urlencode(params).encode(),
        {"X-Twilio-Signature": sig},
        url="http://10.0.0.5:8000/webhooks/twilio",
    )
    with pytest.raises(SignatureInvalid):
        provider().verify(internal, NOW)


@pytest.mark.parametrize(
    ("signed_url", "request_url"),
    [
        ("https://acw.example.com:443/webhooks/twilio", URL),
        (URL, "https://acw.example.com:443/webhooks/twilio"),
    ],
)
def test_port_quirk_both_forms_accepted(signed_url: str, request_url: str) -> None:
    params = load("twilio_inbound_answered.json")[0]
    sig = RequestValidator(TOKEN).compute_signature(signed_url, params)
    provider().verify(
        request(urlencode(params).encode(), {"X-Twilio-Signature": sig}, url=request_url), NOW
    )


def test_repeated_parameters_are_signed_sorted() -> None:
    pairs = [
        ("CallSid", "CA1"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
    ]
    # Twilio's documented string: URL + each name (sorted) + each of its values (sorted).
    signed_string = (
        URL + "CallSidCA1" + "StatusCallbackEventanswered" + "StatusCallbackEventringing"
    )
    sig = base64.b64encode(hmac.new(TOKEN.encode(), signed_string.encode(), hashlib.sha1).digest())
    provider().verify(
        request(urlencode(pairs).encode(), {"X-Twilio-Signature": sig.decode()}, url=URL), NOW
    )


def test_json_body_with_body_sha256() -> None:
    body = json.dumps({"CallSid": "CA9", "CallStatus": "completed"}).encode()
    url = URL + "?bodySHA256=" + hashlib.sha256(body).hexdigest()
    validator = RequestValidator(TOKEN)
    sig = validator.compute_signature(url, {})
    assert validator.validate(url, body.decode(), sig)  # the reference agrees
    provider().verify(request(body, {"X-Twilio-Signature": sig}, url=url), NOW)
    tampered = body.replace(b"completed", b"busy")
    with pytest.raises(SignatureInvalid, match="bodySHA256"):
        provider().verify(request(tampered, {"X-Twilio-Signature": sig}, url=url), NOW)


def test_shared_key_hmac_sha256() -> None:
    params = {"CallSid": "CA1", "CallStatus": "ringing"}
    sig = RequestValidator("shared-secret").compute_signature(URL, params, "HMAC_SHA256")
    headers = {
        "X-Twilio-Signature": sig,
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
    }
    req = request(urlencode(params).encode(), headers, url=URL)
    provider(shared_key="shared-secret").verify(req, NOW)
    with pytest.raises(SignatureInvalid, match="none is configured"):
        provider().verify(req, NOW)


def parse_all(name: str) -> list:  # type: ignore[type-arg]
    p = provider()
    events = []
    for params in load(name):
        req = signed(params)
        p.verify(req, NOW)
        events.extend(p.parse(req))
    return events


def test_inbound_answered_lifecycle() -> None:
    events = parse_all("twilio_inbound_answered.json")
    assert {e.call_id for e in events} == {"CA11111111111111111111111111111111"}
    record = merge_events(events)
    assert record.direction is Direction.INBOUND
    assert record.customer_number == "+14155550100"
    assert record.line_number == "+14155550199"
    assert record.agent is not None and record.agent.id == "alice"
    assert record.outcome is CallOutcome.COMPLETED
    assert record.talk_time == 95
    assert record.duration == 106
    assert record.recording_url is not None and record.recording_url.endswith(
        "RE33333333333333333333333333333333"
    )
    assert record.ended
    assert (
        record.answered_at is not None
        and record.answered_at.isoformat() == "2026-03-10T18:00:10+00:00"
    )
    assert all(e.raw for e in events)


def test_inbound_unanswered_goes_to_voicemail_with_transcript() -> None:
    events = parse_all("twilio_inbound_voicemail.json")
    child = [e for e in events if e.raw.get("ParentCallSid")]
    assert [e.type for e in child] == [EventType.UPDATED]  # a missed leg does not end the call
    record = merge_events(events)
    assert record.outcome is CallOutcome.VOICEMAIL
    assert record.customer_number == "+14155550142"  # national format read with region US
    assert record.transcript[0].text.startswith("Hi, this is Dana")
    assert record.recording_url is not None and "RE666" in record.recording_url


def test_outbound_busy() -> None:
    record = merge_events(parse_all("twilio_outbound_busy.json"))
    assert record.direction is Direction.OUTBOUND
    assert record.customer_number == "+442071838750"
    assert record.line_number == "+14155550199"
    assert record.outcome is CallOutcome.BUSY
    assert record.ended


def test_outbound_answered_by_machine_is_voicemail() -> None:
    base = {
        "CallSid": "CAm",
        "Direction": "outbound-api",
        "From": "+14155550199",
        "To": "+14155550123",
    }
    events = []
    for i, extra in enumerate(
        [
            {"CallStatus": "in-progress", "AnsweredBy": "machine_end_beep"},
            {"CallStatus": "completed", "AnsweredBy": "machine_end_beep", "CallDuration": "31"},
        ]
    ):
        params = {
            **base,
            **extra,
            "SequenceNumber": str(i),
            "Timestamp": f"Tue, 10 Mar 2026 16:00:0{i} +0000",
        }
        events.extend(provider().parse(signed(params)))
    assert merge_events(events).outcome is CallOutcome.VOICEMAIL


def test_voice_sdk_outbound_call_is_outbound_with_the_agent() -> None:
    root = {
        "CallSid": "CAr",
        "CallStatus": "completed",
        "Direction": "inbound",
        "From": "client:carol",
        "To": "+14155550123",
        "CallDuration": "40",
        "Timestamp": "Tue, 10 Mar 2026 16:00:40 +0000",
        "SequenceNumber": "2",
    }
    child = {
        "CallSid": "CAc",
        "ParentCallSid": "CAr",
        "CallStatus": "in-progress",
        "Direction": "outbound-dial",
        "From": "+14155550199",
        "To": "+14155550123",
        "Timestamp": "Tue, 10 Mar 2026 16:00:05 +0000",
        "SequenceNumber": "1",
    }
    events = provider().parse(signed(root)) + provider().parse(signed(child))
    record = merge_events(events)
    assert record.direction is Direction.OUTBOUND
    assert record.customer_number == "+14155550123"
    assert record.agent is not None and record.agent.id == "carol"
    assert record.outcome is CallOutcome.COMPLETED


def test_redelivery_has_the_same_event_id() -> None:
    params = load("twilio_inbound_answered.json")[3]
    a = provider().parse(signed(params))
    b = provider().parse(signed(params))
    assert [e.event_id for e in a] == [e.event_id for e in b]


def test_in_progress_recording_is_ignored_and_garbage_is_invalid() -> None:
    rec = dict(load("twilio_inbound_answered.json")[6], RecordingStatus="in-progress")
    assert provider().parse(signed(rec)) == []
    with pytest.raises(PayloadInvalid):
        provider().parse(signed({"Foo": "bar"}))
    with pytest.raises(PayloadInvalid) as err:
        provider().parse(signed({"CallSid": "CA1", "CallStatus": "ringing", "SequenceNumber": "x"}))
    assert err.value.details[0]["field"] == "SequenceNumber"
