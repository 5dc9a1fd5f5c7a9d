"""``acw-sync map --dry-run``: golden output per connector type, and the CLI around it.

``tests/data/dryrun/<type>.expected`` is the output for each connector type; a type that is not
installed is skipped (its golden file was produced against its branch). After a deliberate
change, regenerate with ``ACW_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from acw_sync.cli import main
from acw_sync.cli.mapping import dry_run, read_events
from acw_sync.config import load_config
from acw_sync.connector import available_connectors

DATA = Path(__file__).parent / "data" / "dryrun"
EVENTS = ("missed", "voicemail", "promised")

#: Per connector type: the CRM's own names for the subject and a lead-status field.
FIELD_NAMES: dict[str, tuple[str, str]] = {
    "sandbox": ("subject", "lead_status"),
    "salesforce": ("Subject", "Status"),
    "hubspot": ("hs_call_title", "hs_lead_status"),
}

#: Options that make each connector type constructible without a CRM (nothing is called).
OPTIONS: dict[str, dict[str, Any]] = {
    "sandbox": {},
    "salesforce": {
        "auth": "token",
        "instance_url": "https://acme.my.salesforce.com",
        "access_token": "00D-dry-run-token",
    },
    "hubspot": {"access_token": "pat-dry-run-token", "portal_id": 1234},
}


def write_config(tmp_path: Path, kind: str) -> Path:
    data = yaml.safe_load((DATA / "acw-sync.yaml").read_text())
    options = dict(OPTIONS[kind])
    if kind == "sandbox":
        options["path"] = str(tmp_path / "sandbox.db")
    subject, status = FIELD_NAMES[kind]
    crm = data["connectors"]["crm"]
    crm.update(type=kind, options=options)
    crm["mapping"] = {subject: crm["mapping"].pop("subject")}
    data["rules"][0]["then"][0]["update_customer"] = {status: "Working"}
    path = tmp_path / "acw-sync.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_dry_run_golden(kind: str, tmp_path: Path) -> None:
    if kind not in available_connectors():
        pytest.skip(f"the {kind} connector is not installed on this branch")
    config = load_config(write_config(tmp_path, kind))
    got = ""
    for name in EVENTS:
        events, analysis = read_events((DATA / f"{name}.json").read_text())
        # the analyzer's output is its own golden; here the file's analysis or none
        got += f"# {name}.json\n" + dry_run(config, events, analysis=analysis, analyze=False)
    got = got.replace(str(tmp_path), "<tmp>")
    expected = DATA / f"{kind}.expected"
    if os.environ.get("ACW_UPDATE_GOLDEN"):
        expected.write_text(got)
    assert got == expected.read_text()
    if kind == "sandbox":  # nothing was written: the sandbox CRM is still empty
        from acw_connector_sandbox import SandboxStore

        dump = SandboxStore(tmp_path / "sandbox.db").dump()
        assert all(rows == [] for rows in dump.values())


def test_map_cli(tmp_path: Path) -> None:
    path = write_config(tmp_path, "sandbox")
    runner = CliRunner()
    result = runner.invoke(
        main, ["map", "--dry-run", str(DATA / "missed.json"), "--config", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert (
        "create task (rule callback-missed), due 2026-03-09 13:59 UTC = Mon 09 Mar 09:59"
        in result.output
    )
    assert "by phone ***0199" in result.output and "+16285550199" in result.output
    refused = runner.invoke(main, ["map", str(DATA / "missed.json"), "--config", str(path)])
    assert refused.exit_code == 2 and "--dry-run" in refused.output
    unknown = runner.invoke(
        main,
        ["map", "--dry-run", str(DATA / "missed.json"), "--config", str(path), "--connector", "x"],
    )
    assert unknown.exit_code == 1 and "no connector instance 'x'" in unknown.output


def test_config_check_and_show_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEN_SECRET", "whsec_c2VjcmV0LXRoYXQtbXVzdC1ub3Qtc2hvdw==")
    path = tmp_path / "acw-sync.yaml"
    path.write_text(
        "providers:\n  generic: {secret: '${GEN_SECRET}'}\n"
        "connectors:\n  crm:\n    type: sandbox\n"
        f"    options: {{path: {tmp_path}/crm.db, api_token: tok-must-not-show}}\n"
    )
    runner = CliRunner()
    ok = runner.invoke(main, ["config", "check", str(path)])
    assert ok.exit_code == 0 and ": ok (1 connector instance(s)" in ok.output
    shown = runner.invoke(main, ["config", "show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "must-not-show" not in shown.output and "c2VjcmV0" not in shown.output
    assert "api_token: '**********'" in shown.output and "id: callback-missed" in shown.output
    path.write_text("connectors:\n  crm:\n    typ: sandbox\n")
    bad = runner.invoke(main, ["config", "check", str(path)])
    assert bad.exit_code == 1
    assert f"{path}:3: connectors.crm.typ: unknown key" in bad.output
    assert "connectors.crm.type: required key is missing" in bad.output
    assert "2 problems found" in bad.output
    monkeypatch.setenv("ACW_CONFIG", str(path))
    listed = runner.invoke(main, ["connectors", "list"])
    assert listed.exit_code == 1 and "unknown key" in listed.output


def test_the_example_config_passes_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ACW_GENERIC_SECRET", "whsec_ZXhhbXBsZQ==")
    monkeypatch.setenv("ACW_SANDBOX_DB", str(tmp_path / "sandbox.db"))
    monkeypatch.setenv("ACW_ESCALATIONS_DB", str(tmp_path / "escalations.db"))
    example = Path(__file__).parent.parent / "examples" / "acw-sync.yaml"
    result = CliRunner().invoke(main, ["config", "check", str(example)])
    assert result.exit_code == 0, result.output
    config = load_config(example)
    assert config.routes_for("generic", None, None, "support") == ["sandbox", "escalations"]


def test_serve_and_worker_refuse_to_start_on_a_bad_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "acw-sync.yaml"
    path.write_text("connectors:\n  crm: {type: sandbox, max_attempts: 0}\n")
    monkeypatch.setenv("ACW_CONFIG", str(path))
    for command in ("serve", "worker"):
        result = CliRunner().invoke(main, [command])
        assert result.exit_code == 1
        assert f"{path}:2: connectors.crm.max_attempts: input should be greater" in result.output


def test_the_example_crm_blocks_are_valid_when_uncommented(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Salesforce and HubSpot blocks commented out in the example pass too, once enabled."""
    for kind in ("salesforce", "hubspot"):
        if kind not in available_connectors():
            pytest.skip(f"the {kind} connector is not installed on this branch")
    monkeypatch.setenv("ACW_GENERIC_SECRET", "whsec_ZXhhbXBsZQ==")
    monkeypatch.setenv("SF_INSTANCE_URL", "https://acme.my.salesforce.com")
    monkeypatch.setenv("SF_CLIENT_ID", "3MVG-example")
    monkeypatch.setenv("SF_CLIENT_SECRET", "example-secret")
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-example")
    example = (Path(__file__).parent.parent / "examples" / "acw-sync.yaml").read_text()
    head, rest = example.split("# A Salesforce org", 1)
    block, tail = rest.split("\nroutes:", 1)
    block = "\n".join(line[1:] if line.startswith("#  ") else line for line in block.splitlines())
    enabled = f"{head}# A Salesforce org{block}\nroutes:{tail}"
    path = tmp_path / "acw-sync.yaml"
    path.write_text(enabled.replace("./.acw-sync/", f"{tmp_path}/"))
    config = load_config(path)
    assert {"salesforce-eu", "hubspot"} <= set(config.connectors)


def test_docs_show_the_example_file_verbatim() -> None:
    root = Path(__file__).parent.parent
    example = (root / "examples" / "acw-sync.yaml").read_text()
    assert example in (root / "README.md").read_text()


def test_the_worked_example_in_the_docs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The due times the README computes by hand are the ones the engine computes."""
    monkeypatch.setenv("ACW_GENERIC_SECRET", "whsec_ZXhhbXBsZQ==")
    monkeypatch.setenv("ACW_SANDBOX_DB", str(tmp_path / "sandbox.db"))
    monkeypatch.setenv("ACW_ESCALATIONS_DB", str(tmp_path / "escalations.db"))
    config = load_config(Path(__file__).parent.parent / "examples" / "acw-sync.yaml")
    events, _ = read_events((DATA / "missed.json").read_text())
    missed = dry_run(config, events, analyze=False)
    assert "due 2026-03-09 13:29 UTC = Mon 09 Mar 09:29 America/New_York" in missed
    events, analysis = read_events((DATA / "promised.json").read_text())
    promised = dry_run(config, events, analysis=analysis)
    for line in (
        "upsert activity (key generic:c-1001)",
        "create task (rule callback-promised), due 2026-03-12 19:00 UTC",
        "create task (rule escalate-unhappy), due 2026-03-10 20:07 UTC",
        "create task (rule vip-complaint), due 2026-03-10 21:00 UTC",
        "-> escalations (sandbox)",
        "    lead_status: At risk",
        "    owner_id: 005-LEAD",
        "    owner_id: 00G-VIP-QUEUE",
    ):
        assert line in promised, line
    assert "followup-unresolved-long" not in promised


def test_dry_run_uses_the_offline_analyzer_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types
    from datetime import UTC, datetime

    from pydantic import BaseModel

    from acw_sync.model import ActionItem, Analysis, CallRecord

    class AnalyzerSettings(BaseModel):
        timezone: str = "UTC"

    class AnalysisContext:
        @classmethod
        def from_settings(cls, settings: AnalyzerSettings) -> AnalysisContext:
            assert settings.timezone == "America/New_York"  # the calendar's
            return cls()

    class OfflineAnalyzer:
        def analyze(self, call: CallRecord, ctx: AnalysisContext) -> Analysis:
            due = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
            return Analysis(action_items=[ActionItem(text="call back", due_at=due)])

    fake = types.ModuleType("acw_sync.analyzer")
    for item in (AnalyzerSettings, AnalysisContext, OfflineAnalyzer):
        setattr(fake, item.__name__, item)
    monkeypatch.setitem(sys.modules, "acw_sync.analyzer", fake)
    config = load_config(write_config(tmp_path, "sandbox"))
    events, _ = read_events((DATA / "missed.json").read_text())
    out = dry_run(config, events)
    assert "rules fired: callback-missed, callback-promised" in out
    assert "rules fired: callback-missed\n" in dry_run(config, events, analyze=False)
