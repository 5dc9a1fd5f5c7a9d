"""The admin's configuration: one YAML file, validated as a whole at start-up.

``ACW_CONFIG`` names the file (default ``./acw-sync.yaml``); with no file, the built-in default
applies: the generic provider (secret from ``ACW_GENERIC_SECRET``, or one generated into
``./.acw-sync/``) and the sandbox connector. ``${VAR}`` and ``${VAR:-default}`` are substituted
from the environment; a key ending in ``_file`` reads a secret from a file.

This module owns the shape of the config and its loading; it does not start anything.
"""

from __future__ import annotations

import os
import re
import secrets
from base64 import b64encode
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from acw_sync.errors import ConfigError

__all__ = [
    "AppConfig",
    "ConnectorInstance",
    "MatchingPolicy",
    "Route",
    "data_dir",
    "load_config",
]

DEFAULT_CONFIG_PATH = "acw-sync.yaml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatchingPolicy(_Strict):
    """How a call's number is matched to a CRM customer."""

    objects: list[str] | None = None
    """Object types to search, in priority order (connector default when unset)."""
    on_none: Literal["create", "attach_nothing", "skip"] = "attach_nothing"
    on_many: Literal["most_recent", "first", "unresolved"] = "most_recent"
    cache_ttl: float = Field(default=300, ge=0)
    """Seconds a phone-to-customer look-up is cached in Redis."""


class OwnerMapping(_Strict):
    by_email: bool = True
    table: dict[str, str] = Field(default_factory=dict)
    """Agent id or email -> CRM owner id; checked before the e-mail look-up."""
    default: str | None = None


class ConnectorInstance(_Strict):
    """One configured CRM (several of one type are allowed)."""

    type: str
    options: dict[str, Any] = Field(default_factory=dict)
    """Validated by the connector plugin's own config model."""
    mapping: dict[str, str] = Field(default_factory=dict)
    """CRM field -> template over the call record; overrides the connector's defaults."""
    matching: MatchingPolicy = Field(default_factory=MatchingPolicy)
    owners: OwnerMapping = Field(default_factory=OwnerMapping)
    max_attempts: int = Field(default=8, ge=1)
    max_age: float = Field(default=86400, gt=0)
    """Seconds after the call's end beyond which a failing sync goes to the dead-letter store."""
    batch_window: float = Field(default=0.3, ge=0, le=10)
    """Seconds the syncs of this instance are collected into batch requests (connectors that
    declare ``batch_size`` > 1); 0 syncs each call on its own. A lone call waits this long."""


class RouteMatch(_Strict):
    provider: str | None = None
    provider_account: str | None = None
    line_number: str | None = None
    team: str | None = None


class Route(_Strict):
    match: RouteMatch = Field(default_factory=RouteMatch)
    connectors: list[str]


class FollowUpDefaults(_Strict):
    """The built-in follow-up rule of the foundation: call back missed calls and voicemails."""

    callback_delay: float = Field(default=3600, ge=0)
    """Seconds after the call's end the call-back task is due."""


class ServerSettings(_Strict):
    public_base_url: str | None = None
    """The URL platforms call, for URL-bound signatures (Twilio) behind proxies."""
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)


class AppConfig(_Strict):
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    connectors: dict[str, ConnectorInstance] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    followups: FollowUpDefaults = Field(default_factory=FollowUpDefaults)
    server: ServerSettings = Field(default_factory=ServerSettings)
    source: str = Field(default="<built-in default>", exclude=True)

    def routes_for(
        self, provider: str, account: str | None, line: str | None, team: str | None
    ) -> list[str]:
        """Connector instances a call goes to: every matching route; all instances if none."""
        if not self.routes:
            return list(self.connectors)
        chosen: dict[str, None] = {}
        for route in self.routes:
            m = route.match
            if (
                (m.provider is None or m.provider == provider)
                and (m.provider_account is None or m.provider_account == account)
                and (m.line_number is None or m.line_number == line)
                and (m.team is None or m.team == team)
            ):
                for name in route.connectors:
                    chosen.setdefault(name, None)
        return list(chosen)

    def provider_secret(self, provider: str, key: str) -> str | None:
        value = self.providers.get(provider, {}).get(key)
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return value if isinstance(value, str) else None


def data_dir() -> Path:
    """Where acw-sync keeps local state (embedded Redis, sandbox CRM): ``ACW_DATA_DIR``."""
    path = Path(os.environ.get("ACW_DATA_DIR", ".acw-sync")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _substitute(value: Any, env: Mapping[str, str], where: str, problems: list[str]) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                f"{where}: environment variable {name} is not set "
                f"(set it, or write ${{{name}:-default}})"
            )
            return ""

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = _substitute(v, env, f"{where}.{k}" if where else str(k), problems)
            if isinstance(k, str) and k.endswith("_file") and isinstance(sub, str):
                try:
                    out[k[: -len("_file")]] = Path(sub).read_text().strip()
                except OSError as exc:
                    problems.append(f"{where}.{k}: cannot read secret file {sub}: {exc.strerror}")
            else:
                out[k] = sub
        return out
    if isinstance(value, list):
        return [_substitute(v, env, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return value


def default_generic_secret() -> str:
    """``ACW_GENERIC_SECRET``, or a ``whsec_`` secret generated once into the data dir."""
    env = os.environ.get("ACW_GENERIC_SECRET")
    if env:
        return env
    path = data_dir() / "generic-secret"
    if not path.exists():
        path.write_text("whsec_" + b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def default_config() -> AppConfig:
    return AppConfig(
        providers={"generic": {"secret": default_generic_secret()}},
        connectors={
            "sandbox": ConnectorInstance(
                type="sandbox",
                options={"path": str(data_dir() / "sandbox.db")},
                matching=MatchingPolicy(on_none="create"),
            )
        },
    )


def load_config(path: str | os.PathLike[str] | None = None) -> AppConfig:
    """Load and validate the config; ConfigError lists every problem with file and key."""
    explicit = path is not None or "ACW_CONFIG" in os.environ
    file = Path(path or os.environ.get("ACW_CONFIG", DEFAULT_CONFIG_PATH))
    if not file.exists():
        if explicit:
            raise ConfigError(
                "config file not found (set ACW_CONFIG to an existing file)", file=str(file)
            )
        return default_config()
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(file)) from exc
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping of keys", file=str(file))
    problems: list[str] = []
    data = _substitute(raw, os.environ, "", problems)
    if problems:
        raise ConfigError(problems, file=str(file))
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors(include_url=False)
            ],
            file=str(file),
        ) from None
    config.source = str(file)
    for name, instance in config.connectors.items():
        if instance.type == "sandbox" and "path" not in instance.options:
            instance.options["path"] = str(data_dir() / f"{name}.db")
    return config
