"""Salesforce customer look-ups through Composite: requests spent, and each subrequest's error.

The real simple-salesforce over HTTPS against the emulator; requests are counted where
Salesforce would count them (the emulator's log: one entry per HTTP request).
"""

from __future__ import annotations

import pytest

from acw_connector_salesforce import SalesforceConnector
from acw_connector_salesforce.lookup import MAX_SOQL
from acw_sync.errors import PermanentError, QuotaExhausted, RetryableError
from tests.connectors.salesforce_harness import sf_connector
from tests.emulators.salesforce import SalesforceEmulator, SalesforceOrg, sf_ca, sf_emulator

__all__ = ["sf_ca", "sf_emulator"]


def number(n: int) -> str:
    return f"+1415555{n:04d}"


def logged_in(emu: SalesforceEmulator, **kw: object) -> SalesforceConnector:
    connector = sf_connector(emu, **kw)  # type: ignore[arg-type]
    _ = connector.client.sf  # the login is not a look-up request
    return connector


def data_requests(org: SalesforceOrg, since: int) -> list[str]:
    return [f"{m} {p.split('/services/data/v59.0/')[-1]}" for m, p in org.log[since:]]


def test_200_known_numbers_are_one_request(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    ids = {number(n): org.insert("Contact", {"LastName": f"C{n}", "Phone": f"(415) 555-{n:04d}"})
           for n in range(200)}  # fmt: skip
    connector = logged_in(sf_emulator)
    before, asked = len(org.log), len(org.soql_log)
    found = connector.find_customers_many(list(ids), all_matches=False)
    assert data_requests(org, before) == ["POST composite"]
    assert {p: [c.id for c in refs] for p, refs in found.items()} == {
        p: [i] for p, i in ids.items()
    }
    # Contact (4 fields) and Lead ahead of time (2 fields), five queries under the limit.
    assert len(org.soql_log[asked:]) == 5 and all(len(s) <= MAX_SOQL for s in org.soql_log[asked:])
    assert sum(" FROM Lead " in s for s in org.soql_log[asked:]) == 2


def test_unknown_numbers_two_requests_for_three_objects(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    lead = org.insert("Lead", {"LastName": "L", "Company": "X", "MobilePhone": "415.555.0007"})
    account = org.insert("Account", {"Name": "Acme", "Phone": "+1 415-555-0008"})
    connector = logged_in(sf_emulator)
    before = len(org.log)
    found = connector.find_customers_many([number(n) for n in range(200)], all_matches=False)
    # Contact and Lead in one request (Lead asked ahead), then Account for the misses.
    assert data_requests(org, before) == ["POST composite", "POST composite"]
    assert [c.id for c in found[number(7)]] == [lead]
    assert [c.id for c in found[number(8)]] == [account]
    assert sum(bool(refs) for refs in found.values()) == 2


def test_best_candidate_ignores_lower_objects_asked_ahead(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    contact = org.insert("Contact", {"LastName": "C", "Phone": number(1)})
    org.insert("Lead", {"LastName": "L", "Company": "X", "Phone": number(1)})
    connector = logged_in(sf_emulator)
    before = len(org.log)
    best = connector.find_customers_many([number(1)], all_matches=False)
    every = connector.find_customers_many([number(1)], all_matches=True)
    assert [c.id for c in best[number(1)]] == [contact]
    assert [c.object_type for c in every[number(1)]] == ["Contact", "Lead"]
    assert data_requests(org, before) == ["POST composite", "POST composite"]


def test_find_customers_asks_three_objects_in_one_request(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    org.insert("Account", {"Name": "Acme", "Phone": number(1)})
    org.insert("Lead", {"LastName": "L", "Company": "X", "Phone": number(1)})
    org.insert("Contact", {"LastName": "C", "HomePhone": "4155550001"})
    connector = logged_in(sf_emulator)
    before = len(org.log)
    found = connector.find_customers(number(1))
    assert [c.object_type for c in found] == ["Contact", "Lead", "Account"]
    assert data_requests(org, before) == ["POST composite"]


def test_a_query_sent_ahead_may_fail_unneeded_but_never_reads_as_no_match(
    sf_emulator: SalesforceEmulator,
) -> None:
    """Field-level security hides Lead.MobilePhone: every Lead query answers INVALID_FIELD."""
    org = sf_emulator.org
    contact = org.insert("Contact", {"LastName": "C", "Phone": number(1)})
    del org.schema["Lead"]["MobilePhone"]
    connector = logged_in(sf_emulator)
    found = connector.find_customers_many([number(1)], all_matches=False)
    assert [c.id for c in found[number(1)]] == [contact]  # the Lead query was not needed
    before = len(org.log)
    with pytest.raises(PermanentError) as info:
        connector.find_customers_many([number(1), number(2)], all_matches=False)
    assert info.value.details["error_code"] == "INVALID_FIELD"
    assert "Lead" in str(info.value) and number(2) not in str(info.value)  # masked
    assert data_requests(org, before) == ["POST composite", "POST composite"]


def test_a_malformed_query_is_split_until_the_odd_number_is_alone(
    sf_emulator: SalesforceEmulator,
) -> None:
    org = sf_emulator.org
    for n in range(8):
        org.insert("Contact", {"LastName": f"C{n}", "Phone": number(n)})
    org.refuse_queries(f"'{number(5)}'")
    connector = logged_in(sf_emulator)
    before, asked = len(org.log), len(org.soql_log)
    with pytest.raises(PermanentError) as info:
        connector.find_customers_many([number(n) for n in range(8)], all_matches=False)
    assert info.value.details["error_code"] == "MALFORMED_QUERY"
    # 8 numbers, then 4 + 4, 2 + 2, 1 + 1: the last Contact query names number 5 alone.
    contacts = [q for q in org.soql_log[asked:] if " FROM Contact " in q]
    assert [sum(f"'{number(n)}'" in q for n in range(8)) for q in contacts] == [8, 4, 4, 2, 2, 1, 1]
    assert f"'{number(5)}'" in contacts[-1]
    assert len(data_requests(org, before)) == 4
    assert connector.find_customers(number(4))  # the others are found


def test_a_retryable_subrequest_error_is_retryable(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    org.refuse_queries(" FROM Contact ", "QUERY_TIMEOUT", "Your query request ran too long.")
    connector = logged_in(sf_emulator)
    with pytest.raises(RetryableError) as info:
        connector.find_customers_many([number(1)])
    assert info.value.details["error_code"] == "QUERY_TIMEOUT"


def test_whole_request_failures_keep_their_intents(sf_emulator: SalesforceEmulator) -> None:
    org = sf_emulator.org
    org.insert("Contact", {"LastName": "C", "Phone": number(1)})
    connector = logged_in(sf_emulator)
    org.inject("expired_session")
    assert connector.find_customers(number(1))  # logged in again once, asked again
    too_many = [{"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": f"r{n}"}
                for n in range(26)]  # fmt: skip
    with pytest.raises(PermanentError) as refused:
        connector.client.rest("POST", "composite", "testing", {"compositeRequest": too_many})
    assert refused.value.details["error_code"] == "LIMIT_EXCEEDED"
    org.inject("quota")
    with pytest.raises(QuotaExhausted):
        connector.find_customers_many([number(1)])


def test_long_results_are_completed_behind_next_records_url(
    sf_emulator: SalesforceEmulator,
) -> None:
    org = sf_emulator.org
    org.page_size = 2
    ids = {org.insert("Contact", {"LastName": f"C{n}", "Phone": number(1)}) for n in range(5)}
    connector = logged_in(sf_emulator)
    before = len(org.log)
    found = connector.find_customers(number(1))
    assert {c.id for c in found} == ids
    assert data_requests(org, before)[0] == "POST composite"
    assert sum(r.startswith("GET query/") for r in data_requests(org, before)) == 2
