"""Admin commands: ``config check|show`` and ``connectors list|test``."""

from __future__ import annotations

import json
from typing import Any

import click
import yaml
from pydantic import BaseModel, SecretStr

from acw_sync.config import AppConfig, load_config
from acw_sync.connector import available_connectors
from acw_sync.errors import AcwError, ConfigError
from acw_sync.provider import available_providers
from acw_sync.rules import effective_rules
from acw_sync.sync import ConnectorPool

__all__ = ["COMMANDS"]


@click.group()
def config() -> None:
    """Check and show the configuration."""


def config_or_exit(path: str | None = None) -> AppConfig:
    """The validated config, or every problem on stderr and exit status 1."""
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        count = len(exc.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        raise SystemExit(1) from None


@config.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def config_check(path: str | None) -> None:
    """Validate the config file (PATH, else ACW_CONFIG, else ./acw-sync.yaml).

    Prints every problem as FILE:LINE: key: what is wrong (how to fix it); exit status 1.
    """
    loaded = config_or_exit(path)
    rules = effective_rules(loaded)
    calendar = loaded.calendar.timezone if loaded.calendar else "always open (UTC)"
    click.echo(
        f"{loaded.source}: ok ({len(loaded.connectors)} connector instance(s), "
        f"{len(loaded.routes) or 'no'} route(s), {len(rules)} rule(s), calendar: {calendar})"
    )


REDACTED = "**********"
_SECRET_WORDS = ("secret", "token", "password", "key", "credential")


def _redacted(value: object, secret_keys: frozenset[str] = frozenset()) -> object:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, dict):
        return {
            k: REDACTED
            if (k in secret_keys or any(s in str(k).lower() for s in _SECRET_WORDS))
            and v is not None
            else _redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields a plugin's config model declares as secrets (``SecretStr``)."""
    return frozenset(
        name for name, field in model.model_fields.items() if "SecretStr" in str(field.annotation)
    )


def effective_config(loaded: AppConfig) -> dict[str, Any]:
    """The config as the workers use it (built-in rules included), secrets redacted."""
    data = loaded.model_dump(mode="python")
    data["rules"] = [
        r.model_dump(mode="python", exclude_defaults=True) for r in effective_rules(loaded)
    ]
    installed = available_connectors()
    for name, spec in loaded.connectors.items():
        plugin = installed.get(spec.type)
        keys = _secret_fields(plugin.config_model) if plugin else frozenset()
        data["connectors"][name]["options"] = _redacted(spec.options, keys)
    providers = available_providers()
    for name, settings in loaded.providers.items():
        provider = providers.get(name)
        keys = _secret_fields(provider.config_model) if provider else frozenset()
        data["providers"][name] = _redacted(settings, keys)
    redacted = _redacted(data)
    assert isinstance(redacted, dict)
    return json.loads(json.dumps(redacted, default=str))  # type: ignore[no-any-return]


@config.command("show")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def config_show(path: str | None) -> None:
    """Print the effective configuration (built-in rules included), secrets redacted."""
    loaded = config_or_exit(path)
    click.echo(f"# {loaded.source}, secrets redacted")
    click.echo(
        yaml.safe_dump(effective_config(loaded), sort_keys=False, allow_unicode=True, width=120)
    )


@click.group()
def connectors() -> None:
    """Installed connector plugins and configured instances."""


@connectors.command("list")
def connectors_list() -> None:
    """List installed connector plugins and the configured instances."""
    installed = available_connectors()
    click.echo("installed plugins:")
    for name, cls in sorted(installed.items()):
        caps = cls.capabilities
        can = [
            label
            for label, ok in (
                ("create customers", caps.create_customer),
                ("update customers", caps.update_customer),
                ("owner look-up", caps.owner_lookup),
                ("external ids", caps.external_ids),
            )
            if ok
        ]
        click.echo(
            f"  {name:<12} {cls.__module__}.{cls.__qualname__}  ({', '.join(can) or 'basic'})"
        )
    click.echo("configured instances:")
    loaded = config_or_exit()
    for name, spec in loaded.connectors.items():
        mark = "" if spec.type in installed else "  (type not installed)"
        click.echo(f"  {name:<12} type={spec.type}{mark}")


@connectors.command("test")
@click.argument("name")
def connectors_test(name: str) -> None:
    """Check an instance's credentials and the permissions it needs."""
    try:
        pool = ConnectorPool(load_config())
        checks = pool.get(name).check()
    except AcwError as exc:
        click.echo(f"{name}: {exc}", err=True)
        raise SystemExit(1) from None
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"[{mark}] {check.name}: {check.detail}")
    if not all(c.ok for c in checks):
        raise SystemExit(1)


COMMANDS = [config, connectors]
