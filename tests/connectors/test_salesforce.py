"""The Salesforce connector passes the conformance suite against the HTTPS emulator."""

from __future__ import annotations

import pytest

from acw_sync.testing import ConnectorConformance, ConnectorHarness
from tests.connectors.salesforce_harness import SalesforceHarness
from tests.emulators.salesforce import SalesforceEmulator, sf_ca, sf_emulator

__all__ = ["sf_ca", "sf_emulator"]


class TestSalesforceConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self, sf_emulator: SalesforceEmulator) -> ConnectorHarness:
        return SalesforceHarness(sf_emulator)


class TestSalesforcePasswordLoginConformance(ConnectorConformance):
    """The same contract through SOAP login (username, password, security token)."""

    @pytest.fixture
    def harness(self, sf_emulator: SalesforceEmulator) -> ConnectorHarness:
        return SalesforceHarness(sf_emulator, auth="password")


class TestSalesforceExternalIdConformance(ConnectorConformance):
    """The same contract when calls are upserted on an External ID field."""

    @pytest.fixture
    def sf_emulator(self, sf_ca):  # type: ignore[no-untyped-def]
        from tests.emulators.salesforce import SalesforceOrg, start

        emu = start(*sf_ca, SalesforceOrg(external_id_field="Acw_Call_Key__c"))
        yield emu
        emu.stop()

    @pytest.fixture
    def harness(self, sf_emulator: SalesforceEmulator) -> ConnectorHarness:
        return SalesforceHarness(sf_emulator, external_id_field="Acw_Call_Key__c")
