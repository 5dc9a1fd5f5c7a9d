"""HubSpot specifics, through hubspot-api-client against the emulator on loopback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import SecretStr

from acw_connector_hubspot import CallWrite, HubSpotConfig, HubSpotConnector, TaskWrite
from acw_connector_hubspot.limits import WindowLimiter
from acw_connector_hubspot.mapping import DEFAULT_DISPOSITIONS
from acw_sync.errors import (
    CredentialsInvalid,
    PermanentError,
    QuotaExhausted,
    RateLimited,
    RetryableError,
)
from acw_sync.model import Agent, CallOutcome, CustomerRef, TaskType
from acw_sync.phone import stored_formats
from acw_sync.testing import sample_call
from acw_sync.testing.conformance import sample_followup
from tests.emulators.hubspot import HubSpotEmulator, hs_emulator

__all__ = ["hs_emulator"]  # the fixture, re-exported for pytest

TOKEN = "pat-na1-emulated-secret-token"
NUMBER = "+14155550123"


def make(emulator: HubSpotEmulator, **options: Any) -> HubSpotConnector:
    if "access_token" not in options and "refresh_token" not in options:
        emulator.add_private_app_token(TOKEN)
        options["access_token"] = SecretStr(TOKEN)
    options.setdefault("host", emulator.url)
    options.setdefault("timeout", 5)
    return HubSpotConnector("hs", HubSpotConfig(**options))


def call_props(emulator: HubSpotEmulator, key: str) -> dict[str, str]:
    [row] = emulator.find("calls", "hs_call_external_id", key)
    return dict(row["properties"])


def test_public_surface_is_pinned() -> None:
    import acw_connector_hubspot

    assert sorted(acw_connector_hubspot.__all__) == [
        "CallWrite",
        "HubSpotClient",
        "HubSpotConfig",
        "HubSpotConnector",
        "RateLimitStatus",
        "RateLimiter",
        "TaskWrite",
        "WindowLimiter",
    ]
    for name in acw_connector_hubspot.__all__:
        assert getattr(acw_connector_hubspot, name) is not None


def test_config_errors_do_not_echo_secrets() -> None:
    with pytest.raises(ValueError) as info:
        HubSpotConfig(
            access_token=SecretStr(TOKEN),
            client_id="cid",
            client_secret=SecretStr("csecret-123456"),
            refresh_token=SecretStr("rtoken-123456"),
        )
    assert "not both" in str(info.value)
    for secret in (TOKEN[:10], "csecret", "rtoken"):
        assert secret not in str(info.value)
    with pytest.raises(ValueError, match="extra"):
        HubSpotConfig.model_validate({"access_token": TOKEN, "colour": "blue"})


# -- finding the customer ------------------------------------------------------------------
@pytest.mark.parametrize("stored", [*stored_formats(NUMBER), "+1 (415) 555-0123"])
def test_finds_contact_in_each_stored_format(hs_emulator: HubSpotEmulator, stored: str) -> None:
    connector = make(hs_emulator)
    contact = hs_emulator.add_object("contacts", {"firstname": "Ana", "phone": stored})
    hs_emulator.add_object("contacts", {"firstname": "Other", "phone": "+14155550124"})
    assert [c.id for c in connector.find_customers(NUMBER)] == [contact]


def test_finds_by_mobile_and_ranks_phone_first(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    mobile = hs_emulator.add_object("contacts", {"firstname": "M", "mobilephone": "4155550123"})
    phone = hs_emulator.add_object("contacts", {"firstname": "P", "phone": NUMBER})
    found = connector.find_customers(NUMBER)
    assert [c.id for c in found] == [phone, mobile]
    assert found[0].object_type == "contact" and found[0].name == "P"


def test_same_digits_in_another_country_are_not_a_match(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    hs_emulator.add_object("contacts", {"firstname": "UK", "phone": "+44 4155 550123"})
    assert connector.find_customers(NUMBER) == []


def test_company_phone_fallback(hs_emulator: HubSpotEmulator) -> None:
    company = hs_emulator.add_object("companies", {"name": "Acme", "phone": "(415) 555-0123"})
    assert make(hs_emulator).find_customers(NUMBER) == []
    found = make(hs_emulator, company_fallback=True).find_customers(NUMBER)
    assert [(c.object_type, c.id) for c in found] == [("company", company)]


def test_created_contact_is_remembered_despite_search_lag(hs_emulator: HubSpotEmulator) -> None:
    hs_emulator.search_lag = 60.0
    connector = make(hs_emulator)
    first = sample_call("lag-1", number="+14155550999")
    created = connector.create_customer(first, key="hs:+14155550999")
    assert created.created_by_acw
    # A second call from the same new number, seconds later: search cannot see the contact yet.
    assert [c.id for c in connector.find_customers("+14155550999")] == [created.id]
    again = connector.create_customer(sample_call("lag-2", number="+14155550999"), key="other")
    assert again.id == created.id
    assert len(hs_emulator.find("contacts", "phone", "+14155550999")) == 1


def test_created_contact_is_not_a_marketing_contact(
    hs_emulator: HubSpotEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    connector = make(hs_emulator)
    created = connector.create_customer(sample_call("mk", number="+14155550888"), key="k1")
    [row] = hs_emulator.find("contacts", "hs_object_id", created.id)
    assert row["properties"]["hs_marketable_status"] == "false"
    assert row["properties"]["phone"] == "+14155550888"
    hs_emulator.marketing_contacts_for_apps = True
    caplog.set_level(logging.WARNING)
    connector.create_customer(sample_call("mk2", number="+14155550887"), key="k2")
    assert "marketing contact" in caplog.text


def test_update_customer_writes_contact_properties(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    contact = hs_emulator.add_object("contacts", {"firstname": "Ana", "phone": NUMBER})
    ref = CustomerRef(object_type="contact", id=contact)
    connector.update_customer(ref, {"hs_lead_status": "CONNECTED", "jobtitle": "CFO"})
    [row] = hs_emulator.find("contacts", "hs_object_id", contact)
    assert row["properties"]["hs_lead_status"] == "CONNECTED"
    with pytest.raises(PermanentError) as info:
        connector.update_customer(ref, {"no_such_property": "x"})
    assert "does not exist" in (info.value.crm_message or "")


# -- the call ------------------------------------------------------------------------------------
def test_call_properties_and_inline_associations(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    owner = hs_emulator.add_owner("ana@example.com", user_id=123)
    company = hs_emulator.add_object("companies", {"name": "Acme"})
    contact = hs_emulator.add_object("contacts", {"firstname": "C", "phone": NUMBER})
    customer = CustomerRef(object_type="contact", id=contact, account_id=company)
    call = sample_call("props", number=NUMBER, recording="https://rec.example.com/a.mp3")
    owner_id = connector.find_owner(Agent(email="ANA@example.com"))
    assert owner_id == owner and owner_id != "123"  # the owner id, not the user id
    ref = connector.upsert_call(
        call, key=call.key, customer=customer, owner_id=owner_id, existing=None, fields={}
    )
    props = call_props(hs_emulator, call.key)
    assert props["hs_call_duration"] == "125000"
    assert props["hs_call_direction"] == "INBOUND"
    assert props["hs_call_status"] == "COMPLETED"
    assert props["hs_call_disposition"] == DEFAULT_DISPOSITIONS["Connected"]
    assert props["hs_call_from_number"] == NUMBER
    assert props["hs_call_to_number"] == "+14155550199"
    assert props["hs_call_recording_url"] == "https://rec.example.com/a.mp3"
    assert props["hubspot_owner_id"] == owner
    assert props["hs_timestamp"] == "2026-03-10T14:00:00.000Z"
    assert "<strong>Notes</strong>" in props["hs_call_body"]
    assert hs_emulator.associations_of("calls", ref.id, "contacts") == {contact: {194}}
    assert hs_emulator.associations_of("calls", ref.id, "companies") == {company: {182}}
    # The association went inline in the create: no separate association request.
    assert hs_emulator.count("PUT", "/crm/v4/") == 0


def test_deal_associations_where_configured(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator, associate_deals=True)
    contact = hs_emulator.add_object("contacts", {"firstname": "C", "phone": NUMBER})
    deal = hs_emulator.add_object("deals", {"dealname": "Renewal"})
    hs_emulator._associate("contacts", contact, "deals", deal, 4)
    call = sample_call("deal")
    ref = connector.upsert_call(
        call,
        key=call.key,
        customer=CustomerRef(object_type="contact", id=contact),
        owner_id=None,
        existing=None,
        fields={},
    )
    assert hs_emulator.associations_of("calls", ref.id, "deals") == {deal: {206}}


def test_customer_known_later_is_associated_once(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    contact = hs_emulator.add_object("contacts", {"firstname": "C", "phone": NUMBER})
    customer = CustomerRef(object_type="contact", id=contact)
    call = sample_call("late-customer")
    ref = connector.upsert_call(
        call, key=call.key, customer=None, owner_id=None, existing=None, fields={}
    )
    for _ in range(2):
        connector.upsert_call(
            call, key=call.key, customer=customer, owner_id=None, existing=ref, fields={}
        )
    assert hs_emulator.associations_of("calls", ref.id, "contacts") == {contact: {194}}
    assert hs_emulator.count("PUT", "/crm/v4/objects/calls/") == 1


def test_http_recording_is_not_sent(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    call = sample_call("http-rec", recording="http://insecure.example.com/a.mp3")
    connector.upsert_call(
        call, key=call.key, customer=None, owner_id=None, existing=None, fields={}
    )
    props = call_props(hs_emulator, call.key)
    assert "hs_call_recording_url" not in props
    assert "insecure.example.com" in props["hs_call_body"]  # still linked in the notes


@pytest.mark.parametrize(
    ("outcome", "disposition", "label"),
    [
        (CallOutcome.VOICEMAIL, None, "Left voicemail"),
        (CallOutcome.BUSY, None, "Busy"),
        (CallOutcome.NO_ANSWER, None, "No answer"),
        (CallOutcome.COMPLETED, "wrong number", "Wrong number"),
    ],
)
def test_disposition_guids(
    hs_emulator: HubSpotEmulator, outcome: CallOutcome, disposition: str | None, label: str
) -> None:
    connector = make(hs_emulator)
    call = sample_call(f"disp-{outcome.value}").model_copy(
        update={"outcome": outcome, "disposition": disposition}
    )
    connector.upsert_call(
        call, key=call.key, customer=None, owner_id=None, existing=None, fields={}
    )
    assert call_props(hs_emulator, call.key)["hs_call_disposition"] == DEFAULT_DISPOSITIONS[label]


def test_custom_portal_outcome_is_resolved_by_label(hs_emulator: HubSpotEmulator) -> None:
    hs_emulator.dispositions["0c4a1c55-1111-4bbb-8ccc-123456789abc"] = "Callback scheduled"
    connector = make(hs_emulator)
    call = sample_call("disp-custom").model_copy(update={"disposition": "Callback Scheduled"})
    connector.upsert_call(
        call, key=call.key, customer=None, owner_id=None, existing=None, fields={}
    )
    props = call_props(hs_emulator, call.key)
    assert props["hs_call_disposition"] == "0c4a1c55-1111-4bbb-8ccc-123456789abc"


def test_later_data_updates_the_same_call_found_by_external_id(
    hs_emulator: HubSpotEmulator,
) -> None:
    call = sample_call("later")
    first = make(hs_emulator).upsert_call(
        call, key=call.key, customer=None, owner_id=None, existing=None, fields={}
    )
    # Another worker (no memory, no ledger entry) once the search index has caught up.
    other = make(hs_emulator)
    later = sample_call("later", recording="https://rec.example.com/later.mp3")
    ref = other.upsert_call(
        later, key=later.key, customer=None, owner_id=None, existing=None, fields={}
    )
    assert (ref.id, ref.created) == (first.id, False)
    assert len(hs_emulator.find("calls", "hs_call_external_id", call.key)) == 1
    assert call_props(hs_emulator, call.key)["hs_call_recording_url"].endswith("later.mp3")


def test_admin_fields_override_and_bad_values_are_permanent(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    call = sample_call("fields")
    connector.upsert_call(
        call,
        key=call.key,
        customer=None,
        owner_id=None,
        existing=None,
        fields={"hs_call_title": "Support call"},
    )
    assert call_props(hs_emulator, call.key)["hs_call_title"] == "Support call"
    bad = sample_call("bad-enum")
    with pytest.raises(PermanentError) as info:
        connector.upsert_call(
            bad,
            key=bad.key,
            customer=None,
            owner_id=None,
            existing=None,
            fields={"hs_call_status": "SHOUTING"},
        )
    assert info.value.status == 400 and "SHOUTING" in (info.value.crm_message or "")


def test_emulator_requires_hs_timestamp_and_valid_association_ids(
    hs_emulator: HubSpotEmulator,
) -> None:
    connector = make(hs_emulator)
    contact = hs_emulator.add_object("contacts", {"firstname": "C"})
    with pytest.raises(PermanentError, match="rejected"):
        connector.client.create("calls", {"hs_call_title": "x"})
    with pytest.raises(PermanentError):
        connector.client.create("calls", {"hs_timestamp": "2026-03-10T14:00:00Z"}, [(contact, 204)])


def test_every_sub_package_error_is_translated(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    contact = hs_emulator.add_object("contacts", {"firstname": "C"})
    call = connector.client.create("calls", {"hs_timestamp": "2026-03-10T14:00:00Z"})
    with pytest.raises(PermanentError):  # crm.associations.v4: a task->contact id on a call
        connector.client.associate("calls", call["id"], "contacts", contact, 204)
    with pytest.raises(PermanentError):  # crm.objects: no such object
        connector.client.update("calls", "999999", {"hs_call_title": "x"})
    assert connector.client.property_exists("tasks", "nope") is False  # crm.properties 404
    hs_emulator.inject("server_error", status=502)
    with pytest.raises(RetryableError):  # crm.owners
        connector.find_owner(Agent(email="a@example.com"))


def test_search_filter_limits_are_enforced(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    group = [{"propertyName": "phone", "operator": "EQ", "value": "1"}]
    with pytest.raises(PermanentError):
        connector.client.search("contacts", [group] * 6, ["phone"])
    with pytest.raises(PermanentError):
        connector.client.search("contacts", [group * 7], ["phone"])
    with pytest.raises(PermanentError):
        connector.client.search("contacts", [group * 6, group * 6, group * 6, group], ["phone"])
    assert connector.client.search("contacts", [group * 6] * 3, ["phone"]) == []


# -- follow-up tasks -----------------------------------------------------------------------------
def test_task_properties_and_association(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    owner = hs_emulator.add_owner("bo@example.com")
    contact = hs_emulator.add_object("contacts", {"firstname": "C", "phone": NUMBER})
    call = sample_call("task")
    task = sample_followup(call).model_copy(
        update={"type": TaskType.EMAIL, "reminder_at": sample_followup(call).due_at}
    )
    ref = connector.create_task(
        task,
        customer=CustomerRef(object_type="contact", id=contact),
        activity=None,
        owner_id=owner,
        existing=None,
    )
    [row] = hs_emulator.find("tasks", "acw_followup_key", task.key)
    props = row["properties"]
    assert props["hs_task_priority"] == "HIGH"
    assert props["hs_task_type"] == "EMAIL"
    assert props["hs_task_status"] == "NOT_STARTED"
    assert props["hs_timestamp"] == "2026-03-11T10:00:00.000Z"
    assert props["hs_task_reminders"] == str(int(task.due_at.timestamp() * 1000))
    assert props["hubspot_owner_id"] == owner
    assert hs_emulator.associations_of("tasks", ref.id, "contacts") == {contact: {204}}
    # Another worker, ledger lost: found by the key property, not created again.
    again = make(hs_emulator).create_task(
        task, customer=None, activity=None, owner_id=None, existing=None
    )
    assert (again.id, again.created) == (ref.id, False)


def test_create_right_after_an_empty_lookup_does_not_search_again(
    hs_emulator: HubSpotEmulator,
) -> None:
    connector = make(hs_emulator)
    call = sample_call("spare", number="+14155550777")
    assert connector.find_customers("+14155550777") == []
    connector.create_customer(call, key="hs:+14155550777")  # no second search right after
    assert hs_emulator.count("POST", "/contacts/search") == 1
    connector.upsert_call(
        call, key=call.key, customer=None, owner_id=None, existing=None, fields={}
    )
    connector.create_task(
        sample_followup(call), customer=None, activity=None, owner_id=None, existing=None
    )
    assert hs_emulator.count("POST", "/calls/search") == 1
    assert hs_emulator.count("POST", "/tasks/search") == 1  # never skipped: see create_task
    again = make(hs_emulator).create_task(
        sample_followup(call), customer=None, activity=None, owner_id=None, existing=None
    )
    assert hs_emulator.count("POST", "/tasks/search") == 2 and not again.created


def test_check_names_a_missing_task_key_property(hs_emulator: HubSpotEmulator) -> None:
    hs_emulator.custom_properties["tasks"].clear()
    checks = {c.name: c for c in make(hs_emulator).check()}
    assert not checks["task key property"].ok
    assert "acw_followup_key" in checks["task key property"].detail


# -- batch ---------------------------------------------------------------------------------------
def test_batch_207_reports_the_bad_record_and_writes_the_rest(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    calls = [sample_call(f"Batch-CA{n}") for n in range(3)]  # provider ids keep their case
    items = [
        CallWrite(c, c.key, fields={"hs_call_status": "BOGUS"} if n == 1 else {})
        for n, c in enumerate(calls)
    ]
    results = connector.upsert_calls(items)
    assert isinstance(results[0], type(results[2])) and not isinstance(results[0], Exception)
    assert isinstance(results[1], PermanentError) and "BOGUS" in (results[1].crm_message or "")
    assert hs_emulator.count("POST", "/batch/create") == 1
    assert len(hs_emulator.find("calls", "hs_call_external_id", calls[1].key)) == 0
    # Again, from another worker (no memory): found by key, updated, no duplicates.
    again = make(hs_emulator).upsert_calls(items[:1] + items[2:])
    assert [getattr(r, "created", None) for r in again] == [False, False]
    for c in (calls[0], calls[2]):
        assert len(hs_emulator.find("calls", "hs_call_external_id", c.key)) == 1


def test_batch_of_sixty_reconciles_in_chunked_key_searches(hs_emulator: HubSpotEmulator) -> None:
    calls = [sample_call(f"many-{n}") for n in range(60)]
    items = [CallWrite(c, c.key) for c in calls]
    first = make(hs_emulator).upsert_calls(items)
    assert all(getattr(r, "created", False) for r in first)
    searches = hs_emulator.count("POST", "/calls/search")
    again = make(hs_emulator).upsert_calls(items)  # a worker with no memory and no ledger
    assert [getattr(r, "id", None) for r in again] == [getattr(r, "id", None) for r in first]
    assert hs_emulator.count("POST", "/calls/search") - searches == 3  # 25 + 25 + 10 keys
    assert hs_emulator.count("POST", "/calls/batch/update") == 1
    assert len(hs_emulator.objects["calls"]) == 60
    with pytest.raises(ValueError):
        make(hs_emulator).upsert_calls(items + items)  # more than 100


def test_batch_refused_whole_is_retried_record_by_record(hs_emulator: HubSpotEmulator) -> None:
    hs_emulator.batch_all_or_nothing = True
    connector = make(hs_emulator)
    calls = [sample_call(f"whole-{n}") for n in range(3)]
    items = [
        CallWrite(c, c.key, fields={"hs_call_status": "BOGUS"} if n == 2 else {})
        for n, c in enumerate(calls)
    ]
    results = connector.upsert_calls(items)
    assert [isinstance(r, PermanentError) for r in results] == [False, False, True]


def test_batch_tasks_once_each(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    call = sample_call("btasks")
    tasks = [TaskWrite(sample_followup(call, rule=f"r{n}")) for n in range(3)]
    first = connector.create_tasks(tasks)
    second = make(hs_emulator).create_tasks(tasks)
    assert [getattr(r, "id", None) for r in first] == [getattr(r, "id", None) for r in second]
    assert all(getattr(r, "created", True) is False for r in second)
    assert len(hs_emulator.objects["tasks"]) == 3


# -- auth, limits and errors ---------------------------------------------------------------------
def test_oauth_token_is_refreshed_before_it_expires(hs_emulator: HubSpotEmulator) -> None:
    now = [1000.0]
    hs_emulator.add_oauth_app("cid", "csecret", "rtoken")
    connector = HubSpotConnector(
        "hs",
        HubSpotConfig(
            client_id="cid",
            client_secret=SecretStr("csecret"),
            refresh_token=SecretStr("rtoken"),
            host=hs_emulator.url,
            refresh_margin=300,
        ),
        clock=lambda: now[0],
    )
    connector.find_customers(NUMBER)
    assert hs_emulator.refreshes == 1
    now[0] += 1000  # well within the 1800 s lifetime: no refresh
    connector.find_customers(NUMBER)
    assert hs_emulator.refreshes == 1
    now[0] += 600  # 1600 s in: inside the 300 s margin, renewed before use
    connector.find_customers(NUMBER)
    assert hs_emulator.refreshes == 2
    assert not [entry for entry in hs_emulator.log if entry[2] == 401]


def test_private_token_401_is_credentials_invalid(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    hs_emulator.revoke_all()
    with pytest.raises(CredentialsInvalid) as info:
        connector.find_customers(NUMBER)
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value.__dict__)
    assert [c.ok for c in connector.check()] == [False]


def test_429_secondly_vs_daily(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    hs_emulator.inject("secondly")
    with pytest.raises(RateLimited) as secondly:
        connector.find_owner(Agent(email="x@example.com"))
    assert secondly.value.retry_after == 1.0
    hs_emulator.inject("secondly", retry_after=3)
    with pytest.raises(RateLimited) as told:
        connector.find_owner(Agent(email="y@example.com"))
    assert told.value.retry_after == 3.0
    hs_emulator.inject("ten_secondly")
    with pytest.raises(RateLimited) as ten:
        connector.find_owner(Agent(email="z@example.com"))
    assert ten.value.retry_after == 10.0
    hs_emulator.inject("daily")
    with pytest.raises(QuotaExhausted) as daily:
        connector.find_owner(Agent(email="w@example.com"))
    assert daily.value.retry_after is not None and 0 < daily.value.retry_after <= 86400
    sent = len(hs_emulator.log)
    with pytest.raises(QuotaExhausted):  # paused until the reset: nothing sent
        connector.find_customers(NUMBER)
    assert len(hs_emulator.log) == sent


def test_missing_scopes_are_named(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator)
    hs_emulator.set_scopes(["crm.objects.contacts.read", "crm.objects.contacts.write"])
    with pytest.raises(CredentialsInvalid) as info:
        connector.find_owner(Agent(email="ana@example.com"))
    assert "crm.objects.owners.read" in str(info.value)
    assert info.value.details["missing_scopes"] == ["crm.objects.owners.read"]
    checks = {c.name: c for c in connector.check()}
    assert checks["token"].ok and checks["scopes for contacts"].ok
    assert not checks["scopes for owners"].ok
    assert "crm.objects.owners.read" in checks["scopes for owners"].detail
    assert "crm.objects.companies.read" in checks["scopes for companies"].detail


def test_check_probes_when_scopes_cannot_be_listed(hs_emulator: HubSpotEmulator) -> None:
    hs_emulator.token_info_available = False
    connector = make(hs_emulator)
    hs_emulator.set_scopes(["crm.objects.contacts.read", "crm.objects.contacts.write"])
    checks = {c.name: c for c in connector.check()}
    assert checks["token"].ok and checks["read access to contacts"].ok
    assert checks["read access to calls"].ok and checks["read access to tasks"].ok
    assert not checks["read access to owners"].ok
    assert "crm.objects.owners.read" in checks["read access to owners"].detail


def test_check_passes_with_a_private_app_token(hs_emulator: HubSpotEmulator) -> None:
    checks = make(hs_emulator).check()
    assert checks and all(c.ok for c in checks), checks


def test_5xx_and_timeouts_are_retryable(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator, timeout=0.3)
    hs_emulator.inject("server_error", status=503)
    with pytest.raises(RetryableError) as info:
        connector.find_customers(NUMBER)
    assert info.value.status == 503
    hs_emulator.inject("slow", delay=0.6)
    with pytest.raises(RetryableError):
        connector.find_customers(NUMBER)


def test_rate_limit_headers_are_exposed(hs_emulator: HubSpotEmulator) -> None:
    connector = make(hs_emulator, tier=190)
    hs_emulator.tier = 190
    connector.find_owner(Agent(email="ana@example.com"))
    status = connector.rate_limit_status
    assert status.max == 190 and status.interval_ms == 10000
    assert status.remaining is not None and status.remaining < 190
    assert status.daily == 250_000


def test_burst_limit_is_respected_in_process(hs_emulator: HubSpotEmulator) -> None:
    hs_emulator.tier = 5
    connector = make(hs_emulator, tier=100)
    connector.use_rate_limiter(WindowLimiter({"burst": (5, 10.0)}, max_wait=0))
    for n in range(5):
        connector.find_owner(Agent(email=f"a{n}@example.com"))
    with pytest.raises(RateLimited) as info:  # our budget, before HubSpot says 429
        connector.find_owner(Agent(email="a9@example.com"))
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 10
    assert not [entry for entry in hs_emulator.log if entry[2] == 429]


def test_sustained_load_stays_under_the_burst_limit(hs_emulator: HubSpotEmulator) -> None:
    # A 1-second window for speed: 10 requests per window on the server, 9 in our budget.
    hs_emulator.tier, hs_emulator.burst_window = 10, 1.0
    connector = make(hs_emulator)
    connector.use_rate_limiter(WindowLimiter({"burst": (9, 1.0)}, max_wait=2))
    for n in range(30):
        connector.find_owner(Agent(email=f"load{n}@example.com"))
    assert [entry for entry in hs_emulator.log if entry[2] == 429] == []
    assert hs_emulator.count("GET", "/crm/v3/owners/") == 30


def test_limiter_hook_sees_search_and_burst_buckets(hs_emulator: HubSpotEmulator) -> None:
    seen: list[str] = []

    class Recorder:
        def acquire(self, bucket: str) -> None:
            seen.append(bucket)

    connector = make(hs_emulator)
    connector.use_rate_limiter(Recorder())
    connector.find_customers(NUMBER)
    connector.find_owner(Agent(email="ana@example.com"))
    assert seen == ["search", "burst"]


def test_window_limiter_waits_then_refuses() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = WindowLimiter({"burst": (2, 10.0)}, max_wait=5, clock=lambda: now[0], sleep=sleep)
    limiter.acquire("burst")
    now[0] = 6.0
    limiter.acquire("burst")
    limiter.acquire("burst")  # waits until the first leaves the window
    assert slept == [4.0]
    with pytest.raises(RateLimited):
        limiter.acquire("burst")  # would wait 6 s > max_wait


def test_no_bodies_or_tokens_in_debug_logs(
    hs_emulator: HubSpotEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connector = make(hs_emulator)
    hs_emulator.add_object("contacts", {"firstname": "Zelda", "phone": NUMBER})
    call = sample_call("logs", notes=("Secret-ish customer note",))
    connector.find_customers(NUMBER)
    connector.upsert_call(
        call, key=call.key, customer=None, owner_id=None, existing=None, fields={}
    )
    connector.check()
    assert "Zelda" not in caplog.text
    assert "Secret-ish customer note" not in caplog.text
    assert TOKEN not in caplog.text
