"""Done when: a call lands as one Task on the right Contact or Lead, owned by the agent, with its
follow-up Tasks, through sync_call, the real simple-salesforce and the HTTPS emulator."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from acw_sync.cli import main
from acw_sync.config import AppConfig, ConnectorInstance, MatchingPolicy
from acw_sync.model import CallEvent, CallOutcome, EventType
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool, sync_call
from tests.connectors.salesforce_harness import public
from tests.emulators.salesforce import SalesforceEmulator, sf_ca, sf_emulator
from tests.test_sync import T0, add_call

__all__ = ["sf_ca", "sf_emulator"]


def pool_for(emu: SalesforceEmulator, **matching: object) -> ConnectorPool:
    org = emu.org
    options = {
        "auth": "client_credentials",
        "login_url": emu.url,
        "client_id": org.client_id,
        "client_secret": org.client_secret,
        "ca_bundle": emu.ca_bundle,
    }
    instance = ConnectorInstance(
        type="salesforce",
        options=options,
        matching=MatchingPolicy(**matching),  # type: ignore[arg-type]
    )
    return ConnectorPool(AppConfig(connectors={"sf": instance}))


def test_missed_call_lands_once_on_the_contact_with_its_callback(
    store: StateStore, sf_emulator: SalesforceEmulator
) -> None:
    org = sf_emulator.org
    contact = org.insert("Contact", {"LastName": "Kim", "Phone": "(415) 555-0100"})
    agent = org.insert("User", {"Username": "ana@example.com", "Email": "ana@example.com"})
    pool = pool_for(sf_emulator)
    key = add_call(store, "m1", "+14155550100", CallOutcome.MISSED)
    result = sync_call(store, pool, "sf", key)
    assert result.status == "synced" and result.customer_id == contact
    assert sync_call(store, pool, "sf", key).status == "unchanged"
    store.add_event(
        CallEvent(
            event_id="m1-vm",
            provider="generic",
            call_id="m1",
            type=EventType.RECORDING_READY,
            occurred_at=T0 + timedelta(minutes=3),
            recording_url="https://rec.example.com/m1.mp3",
        )
    )
    assert sync_call(store, pool, "sf", key).status == "synced"
    rows = [public(r) for r in org.records["Task"].values()]
    calls = [r for r in rows if r["TaskSubtype"] == "Call"]
    followups = [r for r in rows if r["TaskSubtype"] == "Task"]
    assert len(calls) == 1 and len(followups) == 1
    (call,) = calls
    assert (call["WhoId"], call["OwnerId"], call["CallObject"]) == (contact, agent, key)
    assert "https://rec.example.com/m1.mp3" in str(call["Description"])
    assert followups[0]["Status"] == "Not Started" and followups[0]["OwnerId"] == agent
    assert followups[0]["CallObject"] == f"{key}#callback-missed"


def test_unknown_numbers_make_one_lead(store: StateStore, sf_emulator: SalesforceEmulator) -> None:
    pool = pool_for(sf_emulator, on_none="create", cache_ttl=0)
    keys = [add_call(store, f"u{i}", "+14155550142", CallOutcome.COMPLETED) for i in range(2)]
    for key in keys:
        assert sync_call(store, ConnectorPool(pool.config), "sf", key).status == "synced"
    (lead,) = sf_emulator.org.find("Lead")
    whos = {r["WhoId"] for r in sf_emulator.org.find("Task", TaskSubtype="Call")}
    assert whos == {lead["Id"]}


def test_connectors_test_cli_from_yaml_with_env_secret(
    sf_emulator: SalesforceEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = sf_emulator.org
    org.permissions["Lead"]["createable"] = False
    config = tmp_path / "acw-sync.yaml"
    config.write_text(
        f"""
connectors:
  salesforce:
    type: salesforce
    options:
      auth: client_credentials
      login_url: {sf_emulator.url}
      client_id: {org.client_id}
      client_secret: ${{SF_CLIENT_SECRET}}
      ca_bundle: {sf_emulator.ca_bundle}
      external_id_field: Acw_Call_Key__c
"""
    )
    monkeypatch.setenv("ACW_CONFIG", str(config))
    monkeypatch.setenv("SF_CLIENT_SECRET", org.client_secret)
    result = CliRunner().invoke(main, ["connectors", "test", "salesforce"])
    assert result.exit_code == 1, result.output
    assert "[ok  ] login" in result.output
    assert "[FAIL] Lead permissions: missing: createable" in result.output
    assert "[FAIL] external id field: Task.Acw_Call_Key__c does not exist" in result.output
    assert org.client_secret not in result.output


def test_an_unbatched_call_looks_its_customer_up_in_one_request(
    store: StateStore, sf_emulator: SalesforceEmulator
) -> None:
    """Contact, Lead and Account asked in one Composite request (was three queries)."""
    org = sf_emulator.org
    org.insert("Contact", {"LastName": "Kim", "Phone": "(415) 555-0100"})
    pool = pool_for(sf_emulator)
    key = add_call(store, "c1", "+14155550100", CallOutcome.COMPLETED)
    before = len(org.log)
    assert sync_call(store, pool, "sf", key).status == "synced"
    data = [f"{m} {p.split('/v59.0/')[-1][:40]}" for m, p in org.log[before:] if "/v59.0/" in p]
    lookups = [r for r in data if "FROM+Contact" in r or r == "POST composite"]
    assert lookups == ["POST composite"], data
