"""The HubSpot emulator itself: the wire facts the connector relies on, checked on the wire."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputForCreate,
)

from tests.emulators.hubspot import HubSpotEmulator, hs_emulator

__all__ = ["hs_emulator"]

TOKEN = "pat-emulator-test"


def post(emulator: HubSpotEmulator, path: str, body: Any) -> requests.Response:
    return requests.post(
        emulator.url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )


@pytest.fixture
def emu(hs_emulator: HubSpotEmulator) -> HubSpotEmulator:
    hs_emulator.add_private_app_token(TOKEN)
    return hs_emulator


def test_owners_path_has_a_trailing_slash_and_ids_are_owner_ids(emu: HubSpotEmulator) -> None:
    owner = emu.add_owner("ana@example.com", user_id=77)
    client = HubSpot(access_token=TOKEN, host=emu.url)
    page = client.crm.owners.owners_api.get_page(email="ana@example.com")
    assert [(o.id, o.user_id) for o in page.results] == [(owner, 77)]
    assert ("GET", "/crm/v3/owners/", 200) in emu.log


def test_rate_limit_headers_on_writes_not_on_search(emu: HubSpotEmulator) -> None:
    created = post(emu, "/crm/v3/objects/contacts", {"properties": {"firstname": "A"}})
    assert created.status_code == 201
    assert created.headers["X-HubSpot-RateLimit-Max"] == "100"
    assert created.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert "X-HubSpot-RateLimit-Daily-Remaining" in created.headers
    found = post(emu, "/crm/v3/objects/contacts/search", {"filterGroups": []})
    assert found.status_code == 200
    assert not [h for h in found.headers if h.lower().startswith("x-hubspot-ratelimit")]


def test_429_bodies_by_policy(emu: HubSpotEmulator) -> None:
    for kind, policy in (("secondly", "SECONDLY"), ("daily", "DAILY")):
        emu.inject(kind)
        answer = post(emu, "/crm/v3/objects/contacts", {"properties": {}})
        body = answer.json()
        assert answer.status_code == 429
        assert body["policyName"] == policy and body["errorType"] == "RATE_LIMIT"
        assert body["status"] == "error" and body["correlationId"]


def test_burst_limit_answers_ten_secondly_rolling(emu: HubSpotEmulator) -> None:
    emu.tier = 3
    statuses = [
        post(emu, "/crm/v3/objects/contacts", {"properties": {}}).status_code for _ in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    assert emu.log[-1][2] == 429


def test_errors_carry_category_and_correlation_id(emu: HubSpotEmulator) -> None:
    answer = post(emu, "/crm/v3/objects/calls", {"properties": {"hs_call_direction": "SIDEWAYS"}})
    body = answer.json()
    assert answer.status_code == 400 and body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"] and "hs_timestamp" in body["message"]
    assert "SIDEWAYS" in body["message"]
    emu.set_scopes(["crm.objects.contacts.read"])
    denied = post(emu, "/crm/v3/objects/contacts", {"properties": {}})
    assert denied.status_code == 403 and denied.json()["category"] == "MISSING_SCOPES"
    unknown = requests.get(
        emu.url + "/crm/v3/objects/contacts/1", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert unknown.status_code == 401 and unknown.json()["category"] == "INVALID_AUTHENTICATION"


def test_association_type_ids_are_checked(emu: HubSpotEmulator) -> None:
    contact = emu.add_object("contacts", {"firstname": "C"})

    def create(type_id: int) -> requests.Response:
        spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
        return post(
            emu,
            "/crm/v3/objects/calls",
            {
                "properties": {"hs_timestamp": "2026-03-10T14:00:00Z"},
                "associations": [{"to": {"id": contact}, "types": [spec]}],
            },
        )

    assert create(194).status_code == 201
    assert create(204).status_code == 400  # task -> contact, not call -> contact


def test_search_lag_and_filter_limits(emu: HubSpotEmulator) -> None:
    emu.search_lag = 30
    post(emu, "/crm/v3/objects/contacts", {"properties": {"phone": "+14155550100"}})
    query = {
        "filterGroups": [
            {"filters": [{"propertyName": "phone", "operator": "EQ", "value": "+14155550100"}]}
        ]
    }
    assert post(emu, "/crm/v3/objects/contacts/search", query).json()["total"] == 0
    emu.search_lag = 0
    flt = {"propertyName": "phone", "operator": "HAS_PROPERTY"}
    too_many = {"filterGroups": [{"filters": [flt]}] * 6}
    assert post(emu, "/crm/v3/objects/contacts/search", too_many).status_code == 400


def test_batch_create_201_then_207(emu: HubSpotEmulator) -> None:
    client = HubSpot(access_token=TOKEN, host=emu.url)
    api = client.crm.objects.batch_api

    def batch(*statuses: str) -> tuple[Any, int]:
        inputs = [
            SimplePublicObjectBatchInputForCreate(
                properties={"hs_timestamp": "2026-03-10T14:00:00Z", "hs_call_status": s},
                associations=[],
                object_write_trace_id=str(n),
            )
            for n, s in enumerate(statuses)
        ]
        body = BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
        data, status, _headers = api.create_with_http_info("calls", body)
        return data, status

    data, status = batch("COMPLETED", "BUSY")
    assert status == 201 and len(data.results) == 2
    data, status = batch("COMPLETED", "NOPE")
    assert status == 207 and data.num_errors == 1
    assert data.errors[0].context == {"objectWriteTraceId": ["1"]}
    too_big = post(emu, "/crm/v3/objects/calls/batch/create", {"inputs": [{}] * 101})
    assert too_big.status_code == 400


def test_oauth_refresh_and_expiry(hs_emulator: HubSpotEmulator) -> None:
    hs_emulator.add_oauth_app("cid", "secret", "refresh")
    client = HubSpot(host=hs_emulator.url)
    answer = client.oauth.tokens_api.create(
        grant_type="refresh_token", client_id="cid", client_secret="secret", refresh_token="refresh"
    )
    assert answer.expires_in == 1800
    ok = requests.get(
        hs_emulator.url + "/crm/v3/owners/",
        headers={"Authorization": f"Bearer {answer.access_token}"},
        timeout=5,
    )
    assert ok.status_code == 200
    hs_emulator.expire_access_tokens()
    expired = requests.get(
        hs_emulator.url + "/crm/v3/owners/",
        headers={"Authorization": f"Bearer {answer.access_token}"},
        timeout=5,
    )
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
