"""The sandbox connector against the conformance suite, plus its own specifics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from acw_connector_sandbox import SandboxConfig, SandboxConnector, SandboxStore
from acw_sync.connector import Connector
from acw_sync.testing import ConnectorConformance, ConnectorHarness, sample_call
from acw_sync.testing.conformance import Fault

TOKEN = "sbx-secret-token-123"


class SandboxHarness(ConnectorHarness):
    secrets = [TOKEN]

    def __init__(self, path: Path) -> None:
        self.path = path / "crm.db"
        self.store = SandboxStore(self.path)
        self.store.set_setting("api_token", TOKEN)

    def make_connector(self) -> Connector:
        return SandboxConnector(
            "sbx", SandboxConfig(path=str(self.path), api_token=SecretStr(TOKEN))
        )

    def add_customer(self, phone_as_stored: str, name: str) -> str:
        return str(self.store.add_customer(name=name, phone=phone_as_stored, phone_e164=None))

    def activities(self, key: str) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM activities WHERE key = ?", (key,))

    def tasks(self, key: str) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM tasks WHERE key = ?", (key,))

    def inject(self, fault: Fault, *, retry_after: float = 2.0) -> None:
        if fault == "invalid_credentials":
            self.store.set_setting("api_token", "rotated-" + TOKEN[::-1])
        else:
            self.store.inject_fault(fault, retry_after=retry_after)


class TestSandboxConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> ConnectorHarness:
        return SandboxHarness(tmp_path)


def test_created_customer_is_found_by_its_number(tmp_path: Path) -> None:
    connector = SandboxConnector("sbx", SandboxConfig(path=str(tmp_path / "c.db")))
    call = sample_call("new-number", number="+442079460958")
    created = connector.create_customer(call, key="sbx:+442079460958")
    again = connector.create_customer(call, key="sbx:+442079460958")
    assert created.id == again.id and created.created_by_acw
    assert [c.id for c in connector.find_customers("+442079460958")] == [created.id]


def test_update_customer_merges_fields(tmp_path: Path) -> None:
    connector = SandboxConnector("sbx", SandboxConfig(path=str(tmp_path / "c.db")))
    customer = connector.create_customer(sample_call(), key="k")
    connector.update_customer(customer, {"lead_status": "Contacted"})
    connector.update_customer(customer, {"last_call": "2026-03-10"})
    row = connector.store.query("SELECT fields FROM customers WHERE id = ?", (int(customer.id),))
    assert '"lead_status": "Contacted"' in row[0]["fields"]
    assert '"last_call": "2026-03-10"' in row[0]["fields"]
