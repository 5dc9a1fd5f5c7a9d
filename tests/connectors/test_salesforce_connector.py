"""Salesforce specifics against the HTTPS emulator, through the real simple-salesforce."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from acw_connector_salesforce import SalesforceConfig, SalesforceConnector
from acw_sync.connector import CallWrite
from acw_sync.errors import (
    AuthExpired,
    CredentialsInvalid,
    PermanentError,
    QuotaExhausted,
    RateLimited,
    RetryableError,
)
from acw_sync.model import Agent, CrmObjectRef, FollowUp, Priority
from acw_sync.testing import sample_call
from tests.connectors.salesforce_harness import public, sf_config, sf_connector
from tests.emulators.salesforce import SalesforceEmulator, SalesforceOrg, sf_ca, sf_emulator, start

__all__ = ["sf_ca", "sf_emulator"]

NUMBER = "+14155550100"


def emulator_with(ca: tuple[trustme.CA, Path], **org: object) -> Iterator[SalesforceEmulator]:
    emu = start(*ca, SalesforceOrg(**org))  # type: ignore[arg-type]
    yield emu
    emu.stop()


@pytest.fixture
def ext_emulator(sf_ca: tuple[trustme.CA, Path]) -> Iterator[SalesforceEmulator]:
    yield from emulator_with(sf_ca, external_id_field="Acw_Call_Key__c")


@pytest.fixture
def no_call_center(sf_ca: tuple[trustme.CA, Path]) -> Iterator[SalesforceEmulator]:
    yield from emulator_with(sf_ca, call_center=False)


def tasks(emu: SalesforceEmulator) -> list[dict[str, object]]:
    with emu.org.lock:
        return [public(r) for r in emu.org.records["Task"].values()]


def log_call(connector: SalesforceConnector, call_id: str = "c1", **kw: object) -> CrmObjectRef:
    call = sample_call(call_id)
    args: dict[str, object] = {"customer": None, "owner_id": None, "existing": None, "fields": {}}
    args.update(kw)
    return connector.upsert_call(call, key=call.key, **args)  # type: ignore[arg-type]


# -- authentication ------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", ["token", "client_credentials", "jwt", "password"])
def test_each_auth_flow_logs_a_call(sf_emulator: SalesforceEmulator, auth: str) -> None:
    connector = sf_connector(sf_emulator, auth)
    ref = log_call(connector)
    assert ref.created and ref.url and ref.url.startswith(sf_emulator.url)
    assert sf_emulator.org.logins == (0 if auth == "token" else 1)
    assert [t["CallObject"] for t in tasks(sf_emulator)] == ["generic:c1"]


def test_expired_session_reauthenticates_once(sf_emulator: SalesforceEmulator) -> None:
    connector = sf_connector(sf_emulator, "jwt")
    log_call(connector, "a")
    sf_emulator.org.inject("expired_session")
    log_call(connector, "b")
    assert sf_emulator.org.logins == 2
    assert len(tasks(sf_emulator)) == 2


def test_persistent_401_raises_auth_expired_without_recursion(
    sf_emulator: SalesforceEmulator,
) -> None:
    connector = sf_connector(sf_emulator, "password")
    log_call(connector, "a")
    before = len(sf_emulator.org.log)
    sf_emulator.org.inject("persistent_401", times=1000)
    with pytest.raises(AuthExpired):
        log_call(connector, "b")
    assert sf_emulator.org.logins == 2  # the first login and exactly one renewal
    assert len(sf_emulator.org.log) - before <= 4


def test_token_mode_cannot_renew_and_says_so(sf_emulator: SalesforceEmulator) -> None:
    connector = sf_connector(sf_emulator, "token")
    log_call(connector, "a")
    sf_emulator.org.inject("expired_session")
    with pytest.raises(AuthExpired, match="cannot renew"):
        log_call(connector, "b")


@pytest.mark.parametrize("auth", ["client_credentials", "jwt", "password"])
def test_bad_credentials_are_credentials_invalid_without_secrets(
    sf_emulator: SalesforceEmulator, auth: str
) -> None:
    sf_emulator.org.inject("invalid_credentials")
    config = sf_config(sf_emulator, auth)
    with pytest.raises(CredentialsInvalid) as info:
        log_call(SalesforceConnector("sf", config))
    text = f"{info.value} {info.value.crm_message}"
    for secret in config.secret_values():
        assert secret not in text
    checks = SalesforceConnector("sf", config).check()
    assert checks[0].name == "login" and not checks[0].ok


def test_config_names_missing_auth_fields_and_refuses_http() -> None:
    with pytest.raises(ValidationError, match="client_id, client_secret"):
        SalesforceConfig(auth="client_credentials")
    with pytest.raises(ValidationError, match="https"):
        SalesforceConfig(
            auth="token", instance_url="http://acme.my.salesforce.com", access_token="x"
        )
    assert (
        SalesforceConfig(auth="jwt", domain="acme.my", client_id="c", username="u", private_key="k")
    ).login_url == "https://acme.my.salesforce.com"
    config = SalesforceConfig(
        auth="token", instance_url="https://a.example", access_token="tok-SECRET-123"
    )
    assert "tok-SECRET-123" not in repr(config) + str(config.model_dump())


# -- finding the customer ------------------------------------------------------------------------
STORED = [
    "+14155550100",
    "(415) 555-0100",
    "415-555-0100",
    "415.555.0100",
    "4155550100",
    "14155550100",
    "+1 415-555-0100",
    "+1 415-555-0100",
]


@pytest.mark.parametrize("stored", STORED)
@pytest.mark.parametrize(
    ("sobject", "field"),
    [
        ("Contact", "Phone"),
        ("Contact", "MobilePhone"),
        ("Contact", "HomePhone"),
        ("Contact", "OtherPhone"),
        ("Lead", "Phone"),
        ("Lead", "MobilePhone"),
    ],
)
def test_finds_the_number_in_every_stored_format(
    sf_emulator: SalesforceEmulator, stored: str, sobject: str, field: str
) -> None:
    extra = {"Company": "Acme"} if sobject == "Lead" else {}
    record_id = sf_emulator.org.insert(sobject, {"LastName": "Kim", field: stored, **extra})
    found = sf_connector(sf_emulator).find_customers(NUMBER)
    assert [(c.object_type, c.id, c.phone) for c in found] == [(sobject, record_id, stored)]


def test_international_number_and_no_false_positive(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    uk = org.insert("Contact", {"LastName": "Ada", "Phone": "020 7946 0958"})
    org.insert("Contact", {"LastName": "Other", "Phone": "+1 415-555-0199"})
    connector = sf_connector(sf_emulator, default_region="GB")
    assert [c.id for c in connector.find_customers("+442079460958")] == [uk]
    assert connector.find_customers(NUMBER) == []


def test_lead_fallback_skips_converted_leads(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    org.insert("Lead", {"LastName": "Old", "Company": "X", "Phone": NUMBER, "IsConverted": True})
    lead = org.insert("Lead", {"LastName": "New", "Company": "X", "MobilePhone": "4155550100"})
    found = sf_connector(sf_emulator).find_customers(NUMBER)
    assert [(c.object_type, c.id) for c in found] == [("Lead", lead)]


def test_many_matches_ordered_by_priority_then_most_recently_modified(
    sf_emulator: SalesforceEmulator,
) -> None:
    org = sf_emulator.org
    account = org.insert("Account", {"Name": "Acme", "Phone": NUMBER})
    lead = org.insert("Lead", {"LastName": "L", "Company": "X", "Phone": NUMBER})
    older = org.insert(
        "Contact", {"LastName": "Older", "Phone": NUMBER}, modified="2025-01-01T00:00:00.000+0000"
    )
    newer = org.insert(
        "Contact",
        {"LastName": "Newer", "MobilePhone": "(415) 555-0100", "AccountId": account},
        modified="2026-01-01T00:00:00.000+0000",
    )
    found = sf_connector(sf_emulator).find_customers(NUMBER)
    assert [c.id for c in found] == [newer, older, lead, account]
    assert found[0].account_id == account
    leads_first = sf_connector(sf_emulator, object_priority=["Lead", "Contact"])
    assert [c.id for c in leads_first.find_customers(NUMBER)] == [lead, newer, older]


def test_call_on_a_contact_relates_its_account_and_owner(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    account = org.insert("Account", {"Name": "Acme"})
    org.insert("Contact", {"LastName": "Kim", "Phone": NUMBER, "AccountId": account})
    agent = org.insert("User", {"Username": "ana@example.com", "Email": "ana@example.com"})
    connector = sf_connector(sf_emulator)
    owner = connector.find_owner(Agent(email="Ana@Example.com"))
    assert owner == agent
    queries = len(org.log)
    assert connector.find_owner(Agent(email="ana@example.com")) == agent
    assert len(org.log) == queries  # cached in-process
    assert connector.find_owner(Agent(email="nobody@example.com")) is None
    customer = connector.find_customers(NUMBER)[0]
    log_call(connector, customer=customer, owner_id=owner)
    (task,) = tasks(sf_emulator)
    assert (task["WhoId"], task["WhatId"], task["OwnerId"]) == (customer.id, account, agent)
    assert task["TaskSubtype"] == "Call" and task["Status"] == "Completed"
    assert (task["CallType"], task["CallDurationInSeconds"]) == ("Inbound", 125)
    assert task["ActivityDate"] == "2026-03-10"
    assert "Customer asked about invoice 1042." in str(task["Description"])


def test_lead_for_unknown_number_is_created_once(sf_emulator: SalesforceEmulator) -> None:
    call = sample_call("new", number="+14155550142")
    first = sf_connector(sf_emulator)
    lead = first.create_customer(call, key="sf:+14155550142")
    assert lead.object_type == "Lead" and lead.created_by_acw
    assert first.create_customer(call, key="sf:+14155550142").id == lead.id
    # Another worker, a minute later, another call from the same number: the same Lead.
    other = sf_connector(sf_emulator)
    assert (
        other.create_customer(sample_call("new-2", number="+14155550142"), key="k2").id == lead.id
    )
    assert [c.id for c in other.find_customers("+14155550142")] == [lead.id]
    (row,) = sf_emulator.org.find("Lead")
    assert (row["Phone"], row["Company"], row["LeadSource"]) == (
        "+14155550142",
        "Unknown",
        "Phone Inquiry",
    )
    # A Lead is the Who of the call, never with a What (Salesforce refuses that pair).
    log_call(other, "lead-call", customer=lead)
    (task,) = tasks(sf_emulator)
    assert task["WhoId"] == lead.id and task.get("WhatId") is None


def test_update_customer_writes_configured_fields(sf_emulator: SalesforceEmulator) -> None:
    contact = sf_emulator.org.insert("Contact", {"LastName": "Kim", "Phone": NUMBER})
    connector = sf_connector(sf_emulator)
    customer = connector.find_customers(NUMBER)[0]
    connector.update_customer(customer, {"Last_Call__c": "2026-03-10"})
    assert sf_emulator.org.find("Contact", Id=contact)[0]["Last_Call__c"] == "2026-03-10"
    with pytest.raises(PermanentError, match="No such column"):
        connector.update_customer(customer, {"Nope__c": 1})


# -- idempotency -----------------------------------------------------------------------------------
def test_reconciles_on_call_object_when_the_ledger_lost_the_write(
    sf_emulator: SalesforceEmulator,
) -> None:
    first = log_call(sf_emulator_connector := sf_connector(sf_emulator), "lost")
    again = log_call(sf_connector(sf_emulator), "lost")  # a new process, no ledger entry
    assert again.id == first.id and not again.created
    assert len(tasks(sf_emulator)) == 1
    queries = [p for m, p in sf_emulator.org.log if "CallObject" in p]
    assert queries, "looked the call up by CallObject before creating"
    assert sf_emulator_connector.api_usage is not None


def test_upserts_on_the_external_id_field(ext_emulator: SalesforceEmulator) -> None:
    connector = sf_connector(ext_emulator, external_id_field="Acw_Call_Key__c")
    first = log_call(connector, "ext")
    later = sample_call("ext", recording="https://rec.example.com/1.mp3")
    again = connector.upsert_call(
        later, key=later.key, customer=None, owner_id=None, existing=None, fields={}
    )
    assert first.created and again.id == first.id and not again.created
    (task,) = tasks(ext_emulator)
    assert task["Acw_Call_Key__c"] == "generic:ext" and task["TaskSubtype"] == "Call"
    assert "https://rec.example.com/1.mp3" in str(task["Description"])
    paths = [p for m, p in ext_emulator.org.log if m == "PATCH"]
    assert any("/sobjects/Task/Acw_Call_Key__c/generic%3Aext" in p for p in paths)


def test_several_tasks_on_one_external_id_is_permanent(sf_ca: tuple[trustme.CA, Path]) -> None:
    for emu in emulator_with(sf_ca, external_id_field="Acw_Call_Key__c", external_id_unique=False):
        emu.org.insert("Task", {"Subject": "a", "Acw_Call_Key__c": "generic:dup"})
        emu.org.insert("Task", {"Subject": "b", "Acw_Call_Key__c": "generic:dup"})
        with pytest.raises(PermanentError, match="several records share this external id"):
            log_call(sf_connector(emu, external_id_field="Acw_Call_Key__c"), "dup")


def test_followup_task_fields_and_key(sf_emulator: SalesforceEmulator) -> None:
    contact = sf_emulator.org.insert("Contact", {"LastName": "Kim", "Phone": NUMBER})
    connector = sf_connector(sf_emulator)
    customer = connector.find_customers(NUMBER)[0]
    call = sample_call("fu")
    activity = log_call(connector, "fu", customer=customer)
    task = FollowUp(
        rule="callback",
        call_key=call.key,
        subject="Call back",
        due_at=datetime(2026, 3, 11, 10, tzinfo=UTC),
        reminder_at=datetime(2026, 3, 11, 9, tzinfo=UTC),
        priority=Priority.HIGH,
    )
    ref = connector.create_task(
        task, customer=customer, activity=activity, owner_id=None, existing=None
    )
    same = sf_connector(sf_emulator).create_task(
        task, customer=customer, activity=activity, owner_id=None, existing=None
    )
    assert same.id == ref.id and not same.created
    (row,) = [t for t in tasks(sf_emulator) if t["TaskSubtype"] == "Task"]
    assert row["Status"] == "Not Started" and row["Priority"] == "High"
    assert row["IsReminderSet"] is True
    assert row["ReminderDateTime"] == "2026-03-11T09:00:00.000+0000"
    assert (row["ActivityDate"], row["WhoId"], row["CallObject"]) == (
        "2026-03-11",
        contact,
        "generic:fu#callback",
    )


# -- orgs without call-centre fields -----------------------------------------------------------
def test_invalid_field_falls_back_to_subject_and_warns_once(
    no_call_center: SalesforceEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    connector = sf_connector(no_call_center)
    first = log_call(connector, "n1")
    again = log_call(connector, "n1", existing=first)
    log_call(connector, "n2")
    assert again.id == first.id
    rows = tasks(no_call_center)
    assert len(rows) == 2 and all("CallObject" not in r for r in rows)
    assert rows[0]["Subject"] == "Inbound call from +14155550100"
    assert rows[0]["TaskSubtype"] == "Call"
    warnings = [r for r in caplog.records if "call-centre" in r.getMessage()]
    assert len(warnings) == 1
    assert connector.check()[-2].detail.startswith("absent")


# -- errors to intents -----------------------------------------------------------------------
def test_quota_exhausted_pauses_with_retry_after_and_usage(sf_emulator: SalesforceEmulator) -> None:
    connector = sf_connector(sf_emulator, quota_retry_after=1200)
    log_call(connector, "q0")
    sf_emulator.org.inject("quota")
    with pytest.raises(QuotaExhausted) as info:
        log_call(connector, "q1")
    assert info.value.retry_after == 1200
    assert "TotalRequests" in str(info.value.crm_message)
    usage = connector.api_usage
    assert usage is not None and usage.remaining == 0


def test_concurrency_limit_is_rate_limited(sf_emulator: SalesforceEmulator) -> None:
    sf_emulator.org.inject("concurrency")
    with pytest.raises(RateLimited) as info:
        log_call(sf_connector(sf_emulator, concurrency_retry_after=7))
    assert info.value.retry_after == 7


@pytest.mark.parametrize("fault", ["lock", "unavailable"])
def test_lock_and_503_are_retryable_then_succeed(
    sf_emulator: SalesforceEmulator, fault: str
) -> None:
    connector = sf_connector(sf_emulator)
    sf_emulator.org.inject(fault)
    with pytest.raises(RetryableError) as info:
        log_call(connector)
    assert not isinstance(info.value, RateLimited | QuotaExhausted)
    assert log_call(connector).created
    assert len(tasks(sf_emulator)) == 1


def test_slow_answer_times_out_as_retryable(sf_emulator: SalesforceEmulator) -> None:
    connector = sf_connector(sf_emulator, timeout=0.3)
    log_call(connector, "warm")
    sf_emulator.org.inject("slow", delay=1.0)
    with pytest.raises(RetryableError, match="timed out"):
        log_call(connector, "slow")


def test_validation_error_is_permanent_with_salesforce_message(
    sf_emulator: SalesforceEmulator,
) -> None:
    with pytest.raises(PermanentError) as info:
        log_call(sf_connector(sf_emulator), fields={"Status": "Done-ish"})
    assert "bad value for restricted picklist field: Done-ish" in str(info.value)
    assert str(info.value.crm_message).startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")


@pytest.mark.parametrize(
    ("fault", "code"),
    [("validation", "FIELD_CUSTOM_VALIDATION_EXCEPTION"), ("duplicates", "DUPLICATES_DETECTED")],
)
def test_org_rules_are_permanent_with_their_code(
    sf_emulator: SalesforceEmulator, fault: str, code: str
) -> None:
    sf_emulator.org.inject(fault)
    with pytest.raises(PermanentError) as info:
        sf_connector(sf_emulator).create_customer(sample_call("r", number="+14155550111"), key="r")
    assert str(info.value.crm_message).startswith(code)


# -- batches -------------------------------------------------------------------------------------
def test_collections_batch_one_bad_record_does_not_fail_the_others(
    sf_emulator: SalesforceEmulator,
) -> None:
    connector = sf_connector(sf_emulator)
    calls = [sample_call(f"b{i}") for i in range(3)]
    items = [
        CallWrite(call=c, key=c.key, fields={"CallType": "Sideways"} if i == 1 else {})
        for i, c in enumerate(calls)
    ]
    results = connector.upsert_calls(items)
    assert isinstance(results[0], CrmObjectRef) and isinstance(results[2], CrmObjectRef)
    assert isinstance(results[1], PermanentError)
    assert "restricted picklist" in str(results[1])
    again = connector.upsert_calls(
        [CallWrite(call=c, key=c.key) for c in calls]  # the bad one fixed, the ledger lost
    )
    assert [r.id for r in again if isinstance(r, CrmObjectRef)][::2] == [
        results[0].id,
        results[2].id,
    ]
    assert [isinstance(r, CrmObjectRef) and r.created for r in again] == [False, True, False]
    assert len(tasks(sf_emulator)) == 3
    posts = [p for m, p in sf_emulator.org.log if p.endswith("/composite/sobjects")]
    assert len(posts) == 3  # create, then update + create: one request each, not one per call


def test_collections_batch_chunks_at_200_and_upserts_on_external_id(
    ext_emulator: SalesforceEmulator,
) -> None:
    connector = sf_connector(ext_emulator, external_id_field="Acw_Call_Key__c")
    calls = [sample_call(f"many-{i}") for i in range(205)]
    results = connector.upsert_calls([CallWrite(call=c, key=c.key) for c in calls])
    assert all(isinstance(r, CrmObjectRef) and r.created for r in results)
    again = connector.upsert_calls([CallWrite(call=c, key=c.key) for c in calls[:3]])
    assert [r.id for r in again if isinstance(r, CrmObjectRef)] == [r.id for r in results[:3]]
    assert len(tasks(ext_emulator)) == 205
    assert all(t["TaskSubtype"] == "Call" for t in tasks(ext_emulator))


def test_batch_failure_of_the_whole_request_is_each_items_error(
    sf_emulator: SalesforceEmulator,
) -> None:
    connector = sf_connector(sf_emulator)
    sf_emulator.org.inject("quota")
    results = connector.upsert_calls([CallWrite(call=sample_call("z"), key="generic:z")])
    assert isinstance(results[0], QuotaExhausted)


# -- connectors test ---------------------------------------------------------------------------
def test_check_names_each_missing_piece(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    org.permissions["Task"]["updateable"] = False
    org.permissions["Lead"]["createable"] = False
    checks = {c.name: c for c in sf_connector(sf_emulator, external_id_field="Acw__c").check()}
    assert checks["login"].ok and checks["api version"].ok
    assert not checks["Task permissions"].ok and "updateable" in checks["Task permissions"].detail
    assert not checks["Lead permissions"].ok and "createable" in checks["Lead permissions"].detail
    assert checks["Contact permissions"].ok
    assert not checks["external id field"].ok and "Acw__c" in checks["external id field"].detail
    old = {c.name: c for c in sf_connector(sf_emulator, api_version="56.0").check()}
    assert not old["api version"].ok  # the emulated org serves 57.0 to 62.0
    with pytest.raises(ValidationError, match=r"42\.0 or later"):
        sf_config(sf_emulator, api_version="41.0")


def test_check_reports_an_expired_token_as_login_failure(sf_emulator: SalesforceEmulator) -> None:
    connector = sf_connector(sf_emulator, "token")
    sf_emulator.org.inject("expired_session")
    checks = connector.check()
    assert [(c.name, c.ok) for c in checks] == [("login", False)]


def test_public_surface_is_pinned() -> None:
    import acw_connector_salesforce

    assert sorted(acw_connector_salesforce.__all__) == [
        "ApiUsage",
        "SalesforceClient",
        "SalesforceConfig",
        "SalesforceConnector",
    ]
    assert SalesforceConnector.capabilities.batch_size == 200
