"""The generic provider's Standard Webhooks verification, signed by the reference library."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.provider import WebhookRequest
from acw_sync.providers.generic import GenericConfig, GenericProvider
from tests.helpers import SECRET, generic_body, signed_headers

NOW = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest("POST", "http://x/webhooks/generic", "/webhooks/generic", headers, body)


def provider(secret: str = SECRET) -> GenericProvider:
    return GenericProvider(GenericConfig(secret=SecretStr(secret)))


def test_valid_signature_parses_canonical_event() -> None:
    body = generic_body("c-9", "ended", customer_number="(415) 555-0100", notes=["hi"], duration=30)
    req = request(body, signed_headers(body, "msg_1", at=NOW))
    provider().verify(req, NOW)
    [event] = provider().parse(req)
    assert event.event_id == "msg_1" and event.call_key == "generic:c-9"
    assert event.customer_number == "+14155550100" and event.duration == 30
    assert event.raw["data"]["call_id"] == "c-9"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b, h: (b + b" ", h), "no matching"),
        (lambda b, h: (b, {**h, "webhook-id": "msg_other"}), "no matching"),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}), "missing"),
        (lambda b, h: (b, {**h, "webhook-signature": "v1,not-base64!!"}), "no matching"),
        (lambda b, h: (b, {**h, "webhook-timestamp": "soon"}), "not an integer"),
    ],
)
def test_tampering_is_rejected(mutate: object, reason: str) -> None:
    body = generic_body("c-1")
    b, h = mutate(body, signed_headers(body, "msg_1", at=NOW))  # type: ignore[operator]
    with pytest.raises(SignatureInvalid, match=reason):
        provider().verify(request(b, h), NOW)


def test_wrong_secret_and_stale_or_future_timestamps_are_rejected() -> None:
    body = generic_body("c-1")
    other = "whsec_" + "b3RoZXIgc2VjcmV0IG90aGVyIHNlY3JldA=="
    with pytest.raises(SignatureInvalid):
        provider().verify(request(body, signed_headers(body, "m", secret=other, at=NOW)), NOW)
    stale = signed_headers(body, "m", at=NOW - timedelta(minutes=6))
    with pytest.raises(SignatureInvalid, match="too old"):
        provider().verify(request(body, stale), NOW)
    future = signed_headers(body, "m", at=NOW + timedelta(minutes=6))
    with pytest.raises(SignatureInvalid, match="too new"):
        provider().verify(request(body, future), NOW)
    within = signed_headers(body, "m", at=NOW - timedelta(minutes=4))
    provider().verify(request(body, within), NOW)


def test_secret_rotation_accepts_either_key() -> None:
    new = "whsec_" + "bmV3IHNlY3JldCBuZXcgc2VjcmV0IG5ldyBzZWNyZXQ="
    body = generic_body("c-1")
    rotated = provider(f"{new} {SECRET}")
    rotated.verify(request(body, signed_headers(body, "m", at=NOW)), NOW)
    rotated.verify(request(body, signed_headers(body, "m", secret=new, at=NOW)), NOW)


def test_malformed_bodies_list_field_errors() -> None:
    for body in (b"{not json", b'{"type": "call.ended"}', generic_body("c", "exploded")):
        with pytest.raises(PayloadInvalid) as info:
            provider().parse(request(body, {}))
        assert info.value.reason
    with pytest.raises(PayloadInvalid) as info:
        provider().parse(request(generic_body("c", started_at="2026-03-10T14:00:00"), {}))
    assert any("started_at" in d["field"] for d in info.value.details)
