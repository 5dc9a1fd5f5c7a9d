"""Malformed input never crashes a provider: parse returns events or raises PayloadInvalid.

Fixture payloads are mutated (a leaf replaced by any JSON value, a key dropped) and fed to
``parse`` directly, as if verification had passed: the answer must be a 4xx, never a 500.
"""

from __future__ import annotations

import copy
import os
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from provider_helpers import NOW, compact, load, request

from acw_sync.errors import PayloadInvalid, WebhookRejected
from acw_sync.provider import Provider, load_provider_class

SECRET = "fuzz-secret-value-0123456789abcdef"
FIXTURES = {
    "aircall": "aircall_inbound_answered.json",
    "dialpad": "dialpad_callcenter_answered.json",
    "ringcentral": "ringcentral_inbound_answered.json",
    "zoom": "zoom_inbound_queue_answered.json",
    "vonage": "vonage_inbound_connected.json",
    "twilio": "twilio_inbound_voicemail.json",
}
KEYS = {
    "aircall": "token",
    "dialpad": "secret",
    "ringcentral": "verification_token",
    "zoom": "secret_token",
    "vonage": "signature_secret",
    "twilio": "auth_token",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, payload: Any) -> Any:
    result = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(result)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = result
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return result


def provider(name: str) -> Provider:
    cls = load_provider_class(name)
    return cls(cls.config_model.model_validate({KEYS[name]: SECRET}))


def body_for(name: str, payload: Any) -> bytes:
    if name == "dialpad":
        claims = payload if isinstance(payload, dict) else {"value": payload}
        return jwt.encode(claims, SECRET, algorithm="HS256").encode()
    if name == "twilio":
        pairs = payload.items() if isinstance(payload, dict) else []
        return urlencode([(str(k), str(v)) for k, v in pairs]).encode()
    return compact(payload)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_mutated_payloads_never_crash_parse(name: str) -> None:
    payloads = load(FIXTURES[name])
    p = provider(name)

    @settings(
        max_examples=int(os.environ.get("ACW_FUZZ_EXAMPLES", "80")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.sampled_from(payloads).flatmap(mutated))
    def check(payload: Any) -> None:
        try:
            events = p.parse(request(body_for(name, payload)))
        except PayloadInvalid:
            return
        assert isinstance(events, list)

    check()


@pytest.mark.parametrize("name", sorted(FIXTURES))
@settings(max_examples=30, deadline=None)
@given(
    body=st.binary(max_size=200),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "authorization",
                "x-zm-signature",
                "x-zm-request-timestamp",
                "x-twilio-signature",
                "verification-token",
                "validation-token",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=3,
    ),
)
def test_garbage_requests_are_rejected_not_crashed(
    name: str, body: bytes, headers: dict[str, str]
) -> None:
    p = provider(name)
    try:
        if p.handshake(request(body, headers), NOW) is not None:
            return
        p.verify(request(body, headers), NOW)
    except WebhookRejected:
        return
    # accepted only if it carries the right secret, which random text does not
    pytest.fail("a random request passed verification")


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_event_ids_do_not_depend_on_when_a_delivery_arrives(name: str) -> None:
    """A redelivery minutes later must dedupe: ids come from the payload, not our clock."""
    p = provider(name)
    for payload in load(FIXTURES[name]):
        stripped = dict(payload)
        for key in ("Timestamp", "SequenceNumber", "event_timestamp", "timestamp", "event_ts"):
            stripped.pop(key, None)  # even without the platform's own time
        for variant in (payload, stripped):
            body = body_for(name, variant)
            try:
                first = p.parse(request(body, received_at=NOW))
            except PayloadInvalid:
                continue
            later = p.parse(request(body, received_at=NOW + timedelta(minutes=7)))
            assert [e.event_id for e in first] == [e.event_id for e in later]
