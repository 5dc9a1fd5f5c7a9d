"""The HubSpot connector against the conformance suite, over the HubSpot API emulator.

The connector authenticates as an OAuth app here (so that an expired access token can be
renewed), and the emulator's search index lags writes by a minute: the suite passes only if
the connector does not rely on search alone to find what it just wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from acw_connector_hubspot import HubSpotConfig, HubSpotConnector
from acw_sync.connector import Connector
from acw_sync.testing import ConnectorConformance, ConnectorHarness
from acw_sync.testing.conformance import Fault
from tests.emulators.hubspot import HubSpotEmulator

CLIENT_ID = "acw-client-id"
CLIENT_SECRET = "hs-client-secret-0f9e8d"
REFRESH_TOKEN = "hs-refresh-token-7c6b5a"


class HubSpotHarness(ConnectorHarness):
    def __init__(self, emulator: HubSpotEmulator) -> None:
        self.emulator = emulator
        emulator.add_oauth_app(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
        emulator.add_owner("ana@example.com")

    @property  # type: ignore[override]
    def secrets(self) -> list[str]:
        # The access tokens the emulator issued are secrets too.
        return [CLIENT_SECRET, REFRESH_TOKEN, *self.emulator.tokens]

    def make_connector(self) -> Connector:
        return HubSpotConnector(
            "hubspot",
            HubSpotConfig(
                client_id=CLIENT_ID,
                client_secret=SecretStr(CLIENT_SECRET),
                refresh_token=SecretStr(REFRESH_TOKEN),
                host=self.emulator.url,
                timeout=5,
            ),
        )

    def add_customer(self, phone_as_stored: str, name: str) -> str:
        return self.emulator.add_object("contacts", {"firstname": name, "phone": phone_as_stored})

    def activities(self, key: str) -> list[dict[str, Any]]:
        return self.emulator.find("calls", "hs_call_external_id", key)

    def tasks(self, key: str) -> list[dict[str, Any]]:
        return self.emulator.find("tasks", "acw_followup_key", key)

    def inject(self, fault: Fault, *, retry_after: float = 2.0) -> None:
        if fault == "rate_limit":
            self.emulator.inject("ten_secondly")
        elif fault == "expired_session":
            self.emulator.expire_access_tokens()
        else:
            self.emulator.revoke_all()


class TestHubSpotConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ConnectorHarness]:
        emulator = HubSpotEmulator(search_lag=60.0).start()
        try:
            yield HubSpotHarness(emulator)
        finally:
            emulator.stop()
