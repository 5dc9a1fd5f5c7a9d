"""The emulator answers like Salesforce where a client can tell (raw simple-salesforce)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
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


# -- composite ---------------------------------------------------------------------------------
def _query(soql: str, ref: str) -> dict[str, str]:
    return {
        "method": "GET",
        "url": f"/services/data/v59.0/query/?{urlencode({'q': soql})}",
        "referenceId": ref,
    }


def test_composite_answers_each_subrequest_as_if_alone_as_one_api_call(
    sf_emulator: SalesforceEmulator,
) -> None:
    org = sf_emulator.org
    org.insert("Contact", {"LastName": "Kim", "Phone": "+14155550100"})
    sf = client(sf_emulator)
    used, logged = org.api_used, len(org.log)
    reply = sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": False,
            "compositeRequest": [
                _query("SELECT Id, Name FROM Contact WHERE Phone = '+14155550100'", "good"),
                _query("SELECT Id FROM Contact WHERE Nope = 'x'", "bad"),
                {
                    "method": "POST",
                    "url": "/services/data/v59.0/sobjects/Task",
                    "referenceId": "task",
                    "body": {"Subject": "Call"},
                },
                {
                    "method": "GET",
                    "url": "/services/data/v59.0/sobjects/Task/00T000000000000AAA",
                    "referenceId": "gone",
                },
            ],
        },
    )
    answers = {a["referenceId"]: a for a in reply["compositeResponse"]}
    assert [a["referenceId"] for a in reply["compositeResponse"]] == ["good", "bad", "task", "gone"]
    assert answers["good"]["httpStatusCode"] == 200
    assert [r["Name"] for r in answers["good"]["body"]["records"]] == ["Kim"]
    assert answers["bad"]["httpStatusCode"] == 400
    assert answers["bad"]["body"][0]["errorCode"] == "INVALID_FIELD"  # a list, as alone
    assert answers["task"]["httpStatusCode"] == 201 and answers["task"]["body"]["success"]
    assert answers["gone"]["httpStatusCode"] == 404
    assert len(org.find("Task")) == 1  # allOrNone false: the others' writes stay
    assert (org.api_used - used, len(org.log) - logged) == (1, 1)  # one API call in all


def test_composite_limits_25_subrequests_and_5_queries(sf_emulator: SalesforceEmulator) -> None:
    sf = client(sf_emulator)
    get = {"method": "GET", "url": "/services/data/v59.0/sobjects/Task/describe"}
    queries = [_query("SELECT Id FROM Task", f"q{n}") for n in range(5)]
    fine = [*queries, *({**get, "referenceId": f"d{n}"} for n in range(20))]
    reply = sf.restful("composite", method="POST", json={"compositeRequest": fine})
    assert {a["httpStatusCode"] for a in reply["compositeResponse"]} == {200}
    for refused, message in [
        ([*fine, {**get, "referenceId": "d99"}], "more than 25 operations"),
        ([*queries, _query("SELECT Id FROM Task", "q5")], "more than 5 query"),
    ]:
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.restful("composite", method="POST", json={"compositeRequest": refused})
        (item,) = info.value.content["compositeResponse"]  # type: ignore[attr-defined]
        assert (item["httpStatusCode"], item["referenceId"]) == (400, None)
        assert item["body"][0]["errorCode"] == "LIMIT_EXCEEDED"
        assert message in item["body"][0]["message"]


def test_long_soql_fits_a_composite_subrequest_not_a_get_url(
    sf_emulator: SalesforceEmulator,
) -> None:
    org = sf_emulator.org
    org.insert("Contact", {"LastName": "Kim", "Phone": "+14155550100"})
    sf = client(sf_emulator)
    numbers = ", ".join(f"'+1415555{n:04d}'" for n in range(1500))  # ~24,000 characters
    soql = f"SELECT Id FROM Contact WHERE Phone IN ({numbers})"
    with pytest.raises(SalesforceGeneralError) as info:
        sf.query(soql)
    assert info.value.status == 414  # type: ignore[attr-defined]
    too_long = soql.replace("Phone IN", "Phone IN ('x'," + " " * 80_000 + "'y') OR Phone IN")
    reply = sf.restful(
        "composite",
        method="POST",
        json={"compositeRequest": [_query(soql, "long"), _query(too_long, "longer")]},
    )
    long, longer = reply["compositeResponse"]
    assert long["httpStatusCode"] == 200 and long["body"]["totalSize"] == 1
    assert longer["httpStatusCode"] == 400  # over the 100,000-character SOQL limit


def test_refused_queries_fail_alone_or_inside_composite(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    org.refuse_queries(
        "'+14155550107'", "QUERY_TIMEOUT", "Your query request was running for too long."
    )
    sf = client(sf_emulator)
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT Id FROM Contact WHERE Phone = '+14155550107'")
    reply = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                _query("SELECT Id FROM Contact WHERE Phone = '+14155550107'", "a"),
                _query("SELECT Id FROM Contact WHERE Phone = '+14155550108'", "b"),
            ]
        },
    )
    a, b = reply["compositeResponse"]
    assert (a["httpStatusCode"], a["body"][0]["errorCode"]) == (400, "QUERY_TIMEOUT")
    assert b["httpStatusCode"] == 200
