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
