"""The pure parts of `acw-sync dlq` and `acw-sync sandbox chaos`."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from acw_connector_sandbox import SandboxStore
from acw_sync.cli import main
from acw_sync.cli.dlq import parse_age, select


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("45s", 45), ("30m", 1800), ("2h", 7200), ("1.5d", 129600)]
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_parse_age_refuses_nonsense() -> None:
    with pytest.raises(click.BadParameter, match="not an age"):
        parse_age("yesterday")


def test_select_filters_by_connector_reason_and_age() -> None:
    now = 10_000.0
    entries = [
        {"id": "a", "connector": "sf", "reason": "rejected", "last_failed_at": now - 10},
        {"id": "b", "connector": "hs", "reason": "credentials", "last_failed_at": now - 7200},
        {"id": "c", "connector": "sf", "reason": "credentials", "last_failed_at": now - 600},
    ]
    ids = lambda **kw: [e["id"] for e in select(entries, now=now, **kw)]  # noqa: E731
    assert ids() == ["a", "b", "c"]
    assert ids(connector="sf") == ["a", "c"]
    assert ids(reason="credentials") == ["b", "c"]
    assert ids(older_than=300) == ["b", "c"]
    assert ids(newer_than=3600) == ["a", "c"]
    assert ids(connector="sf", reason="credentials", older_than=60) == ["c"]


def test_replay_and_purge_need_a_selection() -> None:
    runner = CliRunner()
    for command in ("replay", "purge"):
        result = runner.invoke(main, ["dlq", command])
        assert result.exit_code == 2 and "--all" in result.output


def test_sandbox_chaos_command(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    runner = CliRunner()
    result = runner.invoke(
        main, ["sandbox", "chaos", "--rate", "0.3", "--down", "60", "--path", str(db)]
    )
    assert result.exit_code == 0, result.output
    chaos = SandboxStore(db).chaos()
    assert chaos["rate"] == 0.3 and chaos["down_until"] > 0
    assert runner.invoke(main, ["sandbox", "chaos", "--off", "--path", str(db)]).exit_code == 0
    assert SandboxStore(db).chaos() == {}
