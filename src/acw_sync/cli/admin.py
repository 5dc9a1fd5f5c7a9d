"""Admin commands: ``config check|show`` and ``connectors list|test``."""

from __future__ import annotations

import json

import click
from pydantic import SecretStr

from acw_sync.config import load_config
from acw_sync.connector import available_connectors
from acw_sync.errors import AcwError, ConfigError
from acw_sync.sync import ConnectorPool

__all__ = ["COMMANDS"]


@click.group()
def config() -> None:
    """Check and show the configuration."""


@config.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def config_check(path: str | None) -> None:
    """Validate the config file (ACW_CONFIG, ./acw-sync.yaml, or PATH)."""
    try:
        loaded = load_config(path)
        pool = ConnectorPool(loaded)
        for name in loaded.connectors:
            spec = pool.instance(name)
            from acw_sync.connector import load_connector_class

            load_connector_class(spec.type).config_model.model_validate(spec.options)
    except (ConfigError, ValueError) as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    click.echo(f"{loaded.source}: ok")


def _redacted(value: object) -> object:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, dict):
        return {
            k: "**********"
            if any(s in k.lower() for s in ("secret", "token", "password", "key"))
            else _redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


@config.command("show")
def config_show() -> None:
    """Print the effective configuration, secrets redacted."""
    loaded = load_config()
    click.echo(json.dumps(_redacted(loaded.model_dump(mode="python")), indent=2, default=str))


@click.group()
def connectors() -> None:
    """Installed connector plugins and configured instances."""


@connectors.command("list")
def connectors_list() -> None:
    """List installed connector plugins and the configured instances."""
    installed = available_connectors()
    click.echo("installed plugins:")
    for name, cls in sorted(installed.items()):
        click.echo(f"  {name:<12} {cls.__module__}.{cls.__qualname__}")
    click.echo("configured instances:")
    for name, spec in load_config().connectors.items():
        click.echo(f"  {name:<12} type={spec.type}")


@connectors.command("test")
@click.argument("name")
def connectors_test(name: str) -> None:
    """Check an instance's credentials and the permissions it needs."""
    pool = ConnectorPool(load_config())
    try:
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
