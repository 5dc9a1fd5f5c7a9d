"""Every entry point declared in pyproject.toml loads, so a typo fails CI."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from acw_sync.connector import Connector
from acw_sync.provider import Provider

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
GROUPS = {"acw_sync.connectors": Connector, "acw_sync.providers": Provider}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_declared_entry_points_are_installed_and_load(group: str) -> None:
    declared = PYPROJECT["project"]["entry-points"][group]
    installed = {ep.name: ep for ep in entry_points(group=group)}
    assert set(declared) <= set(installed), "reinstall: pip install -e ."
    for name, target in declared.items():
        assert installed[name].value == target
        loaded = installed[name].load()
        assert issubclass(loaded, GROUPS[group])
        assert getattr(loaded, "type_name", getattr(loaded, "name", None)) == name


def test_console_script_is_declared() -> None:
    assert PYPROJECT["project"]["scripts"]["acw-sync"] == "acw_sync.cli:main"
    from acw_sync.cli import main

    assert {"serve", "worker", "demo", "sandbox", "config", "connectors"} <= set(main.commands)
