"""The emulator answers like Salesforce where a client can tell (raw simple-salesforce)."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
)

from tests.emulators.salesforce import SalesforceEmulator, SalesforceOrg, sf_ca, sf_emulator, start

__all__ = ["sf_ca", "sf_emulator"]


def client(emu: SalesforceEmulator) -> Salesforce:
    session = requests.Session()
    session.verify = emu.ca_bundle
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    return Salesforce(
        instance_url=emu.url, session_id=emu.access_token(), session=session, object_pairs_hook=dict
    )


def error_of(exc: pytest.ExceptionInfo[Exception]) -> dict[str, object]:
    content = exc.value.content  # type: ignore[attr-defined]
    assert isinstance(content, list), "error bodies are JSON lists"
    return dict(content[0])


def test_create_defaults_picklists_and_create_only_subtype(sf_emulator: SalesforceEmulator) -> None:
    sf = client(sf_emulator)
    task = sf.Task
    created = task.create({"Subject": "Call", "TaskSubtype": "Call"})
    assert created["success"] and created["id"].startswith("00T")
    assert task.api_usage["api-usage"].total == sf_emulator.org.api_limit
    row = sf.Task.get(created["id"])
    assert (row["Status"], row["Priority"], row["IsReminderSet"]) == (
        "Not Started",
        "Normal",
        False,
    )
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Task.update(created["id"], {"TaskSubtype": "Task"})
    assert error_of(info)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Task.create({"CallType": "Sideways"})
    assert error_of(info)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Lead.create({"LastName": "x"})
    assert error_of(info)["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_upsert_status_codes(sf_ca) -> None:  # type: ignore[no-untyped-def]
    emu = start(*sf_ca, SalesforceOrg(external_id_field="Key__c", external_id_unique=False))
    try:
        sf = client(emu)
        first = sf.Task.upsert("Key__c/k1", {"Subject": "a"}, raw_response=True)
        assert first.status_code == 201 and first.json()["created"] is True
        again = sf.Task.upsert("Key__c/k1", {"Subject": "b"}, raw_response=True)
        assert again.status_code == 200 and again.json()["created"] is False
        emu.org.insert("Task", {"Subject": "twin", "Key__c": "k1"})
        with pytest.raises(SalesforceMoreThanOneRecord):
            sf.Task.upsert("Key__c/k1", {"Subject": "c"})
    finally:
        emu.stop()


def test_soql_subset_and_errors(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    org.insert("Lead", {"LastName": "A", "Company": "X", "Phone": "1", "IsConverted": False})
    org.insert("Lead", {"LastName": "B", "Company": "X", "MobilePhone": "2"})
    org.insert("Lead", {"LastName": "C", "Company": "X", "Phone": "2", "IsConverted": True})
    sf = client(sf_emulator)
    rows = sf.query(
        "SELECT Id, LastName FROM Lead WHERE IsConverted = false AND "
        "(Phone IN ('1', '2') OR MobilePhone IN ('2')) ORDER BY LastName DESC LIMIT 5"
    )["records"]
    assert [r["LastName"] for r in rows] == ["B", "A"]
    assert rows[0]["attributes"]["type"] == "Lead"
    for soql, code in [
        ("SELECT Id FROM Lead WHERE Nope = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE Description = 'x'", "INVALID_FIELD"),
        ("SELECT FROM Lead", "MALFORMED_QUERY"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
    ]:
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.query(soql)
        assert error_of(info)["errorCode"] == code


def test_collections_per_record_errors_and_all_or_none(sf_emulator: SalesforceEmulator) -> None:
    sf = client(sf_emulator)
    good = {"attributes": {"type": "Task"}, "Subject": "ok"}
    bad = {"attributes": {"type": "Task"}, "Priority": "Urgent"}
    results = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": [good, bad]}
    )
    assert results[0]["success"] and not results[1]["success"]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    rolled = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": True, "records": [good, bad]}
    )
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert len(sf_emulator.org.find("Task")) == 1
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="POST", json={"records": [good] * 201})
    assert error_of(info)["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_expired_session_is_a_401_list_body(sf_emulator: SalesforceEmulator) -> None:
    sf = client(sf_emulator)
    sf_emulator.org.inject("expired_session")
    with pytest.raises(SalesforceExpiredSession) as info:
        sf.query("SELECT Id FROM Task")
    assert error_of(info)["errorCode"] == "INVALID_SESSION_ID"


def test_query_pages_behind_next_records_url(sf_emulator: SalesforceEmulator) -> None:
    sf_emulator.org.page_size = 2
    for n in range(5):
        sf_emulator.org.insert("Account", {"Name": f"A{n}"})
    sf = client(sf_emulator)
    first = sf.query("SELECT Id FROM Account")
    assert not first["done"] and first["nextRecordsUrl"] and len(first["records"]) == 2
    assert len(sf.query_all("SELECT Id FROM Account")["records"]) == 5
