"""Golden tests: every class of config error gives its message (file, line, key, fix).

Each ``tests/data/config/NAME.yaml`` has its expected ``acw-sync config check`` output in
``NAME.expected``. Regenerate after a deliberate wording change with
``ACW_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_config_errors.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from acw_sync.config import load_config
from acw_sync.errors import ConfigError

DATA = Path(__file__).parent / "data" / "config"
CASES = sorted(p.stem for p in DATA.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_config_error_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    with pytest.raises(ConfigError) as info:
        load_config(f"{name}.yaml")
    got = str(info.value) + "\n"
    expected = DATA / f"{name}.expected"
    if os.environ.get("ACW_UPDATE_GOLDEN"):
        expected.write_text(got)
    assert got == expected.read_text()
    for line in got.splitlines():
        assert line.startswith(f"{name}.yaml"), line  # every message names the file


def test_secrets_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    for name in CASES:
        with pytest.raises(ConfigError) as info:
            load_config(f"{name}.yaml")
        assert "never-printed" not in str(info.value)


def test_every_error_has_a_line_and_a_key() -> None:
    for name in CASES:
        if name in ("not_a_mapping",):
            continue
        text = (DATA / f"{name}.expected").read_text()
        for line in text.splitlines():
            where = line.split(": ", 1)[0]
            assert where.count(":") == 1 and where.rsplit(":", 1)[1].isdigit(), line


def test_analyzer_section_is_checked_by_the_analyzer_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook: when ``acw_sync.analyzer`` defines AnalyzerSettings, it validates ``analyzer``."""
    import sys
    import types

    from pydantic import BaseModel, ConfigDict, Field

    class AnalyzerSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        summary_budget: int = Field(default=400, ge=80)
        timezone: str = "UTC"

    fake = types.ModuleType("acw_sync.analyzer")
    fake.AnalyzerSettings = AnalyzerSettings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "acw_sync.analyzer", fake)
    path = tmp_path / "acw-sync.yaml"
    path.write_text("analyzer:\n  summary_budget: 3\n  sumary: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).splitlines() == [
        f"{path}:2: analyzer.summary_budget: input should be greater than or equal to 80 "
        "(change the value)",
        f'{path}:3: analyzer.sumary: unknown key (did you mean "summary_budget"? allowed here: '
        "summary_budget, timezone)",
    ]
    path.write_text("calendar: {timezone: Europe/Paris}\nanalyzer: {summary_budget: 200}\n")
    settings = load_config(path).analyzer_settings()
    assert settings.summary_budget == 200 and settings.timezone == "Europe/Paris"


MALFORMED = [
    "connectors: [a, b]",
    "rules: {a: 1}",
    "calendar: 5",
    "routes: [1]",
    "routes: [{connectors: 5}]",
    "routes: [{match: 5, connectors: [a]}]",
    "1: 2",
    "connectors:\n  x: 5",
    "connectors:\n  x: {type: 5}",
    "connectors:\n  x: {type: sandbox, options: 5}",
    "connectors:\n  x: {type: sandbox, rules: 5}",
    "connectors:\n  x: {type: sandbox, mapping: [a]}",
    "rules: [5]",
    "rules: [{id: a, when: 5, then: [{create_task: 5}]}]",
    "rules: [{id: a, when: {any: 5}, then: []}]",
    "rules: [{id: a, when: {tags: [{x: 1}]}, then: [{set_disposition: a}]}]",
    "rules: [{id: a, when: {duration: {ge: [1]}}, then: [{set_disposition: a}]}]",
    "rules: [{id: a, when: {outcome: missed}, then: [{create_task: {subject: a, owner: 5}}]}]",
    "providers: [generic]",
    "providers:\n  generic: 5",
    "calendar: {hours: {mon: 5}}",
    "calendar: {holidays: 5}",
    "analyzer: 5",
    "followups: {default_rules: maybe}",
    "? [a]\n: b",
    "connectors: *x",
    "&a [1]",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_configs_are_config_errors_never_crashes(text: str, tmp_path: Path) -> None:
    path = tmp_path / "acw-sync.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
