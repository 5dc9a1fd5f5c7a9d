from __future__ import annotations

from pathlib import Path

import pytest

from acw_sync.config import load_config
from acw_sync.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acw-sync.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_the_builtin_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert list(config.connectors) == ["sandbox"]
    assert config.provider_secret(
        "generic",
        "secret",
    ).startswith("whsec_")  # type: ignore[union-attr]
    assert load_config().provider_secret("generic", "secret") == config.provider_secret(
        "generic", "secret"
    )


def test_env_substitution_and_secret_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    monkeypatch.setenv("GEN_SECRET", "whsec_abc")
    path = write(
        tmp_path,
        f"""
providers:
  generic: {{secret: "${{GEN_SECRET}}"}}
connectors:
  crm:
    type: sandbox
    options: {{path: "${{CRM_DB:-{tmp_path}/crm.db}}", api_token_file: "{tmp_path}/token"}}
""",
    )
    config = load_config(path)
    assert config.provider_secret("generic", "secret") == "whsec_abc"
    assert config.connectors["crm"].options == {
        "path": f"{tmp_path}/crm.db",
        "api_token": "s3cret-token",
    }


def test_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "connectors:\n  crm:\n    type: sandbox\n    colour: blue\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "connectors.crm.colour" in str(info.value)
    with pytest.raises(ConfigError, match="MISSING_VAR is not set"):
        load_config(write(tmp_path, "providers:\n  generic: {secret: '${MISSING_VAR}'}\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
