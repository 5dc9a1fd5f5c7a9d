"""``acw-sync connectors test`` and ``config show`` for a HubSpot instance (emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from acw_sync.cli import main
from tests.emulators.hubspot import HubSpotEmulator, hs_emulator

__all__ = ["hs_emulator"]

TOKEN = "pat-na1-cli-secret-token"


def write_config(path: Path, emulator: HubSpotEmulator) -> Path:
    config = path / "acw-sync.yaml"
    config.write_text(
        "connectors:\n"
        "  hubspot:\n"
        "    type: hubspot\n"
        "    options:\n"
        "      access_token: ${HUBSPOT_TOKEN}\n"
        f"      host: {emulator.url}\n"
        "      tier: 190\n"
    )
    return config


def test_connectors_test_names_missing_scopes(
    hs_emulator: HubSpotEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hs_emulator.add_private_app_token(TOKEN, ["crm.objects.contacts.read"])
    monkeypatch.setenv("ACW_CONFIG", str(write_config(tmp_path, hs_emulator)))
    monkeypatch.setenv("HUBSPOT_TOKEN", TOKEN)
    result = CliRunner().invoke(main, ["connectors", "test", "hubspot"])
    assert "[ok  ] token" in result.output
    assert "[FAIL] scopes for contacts: missing scope(s): crm.objects.contacts.write" in (
        result.output
    )
    assert "crm.objects.owners.read" in result.output
    assert TOKEN not in result.output
    shown = CliRunner().invoke(main, ["config", "show"])
    assert shown.exit_code == 0 and TOKEN not in shown.output
