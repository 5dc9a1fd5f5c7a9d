"""``acw-sync sandbox``: look into the local sandbox CRM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from acw_sync.config import load_config

__all__ = ["COMMANDS", "render_sandbox"]


def _default_path() -> str:
    config = load_config()
    for instance in config.connectors.values():
        if instance.type == "sandbox":
            return str(instance.options.get("path"))
    raise click.ClickException("no sandbox connector is configured; pass --path")


def render_sandbox(data: dict[str, list[dict[str, Any]]], console: Console) -> None:
    """The sandbox's call activities and follow-up tasks as tables."""
    customers = {str(c["id"]): c for c in data["customers"]}
    activities = Table(title="Call activities", show_lines=False)
    for col in (
        "id",
        "customer",
        "subject",
        "outcome",
        "resolution",
        "duration",
        "owner",
        "updates",
    ):
        activities.add_column(col)
    for a in data["activities"]:
        who = customers.get(str(a["customer_id"]))
        activities.add_row(
            str(a["id"]),
            f"{who['name']} ({who['object_type']})" if who else "-",
            a["subject"],
            a["outcome"] or "-",
            str(json.loads(a["fields"] or "{}").get("resolution") or "-"),
            f"{a['duration']:.0f} s" if a["duration"] is not None else "-",
            a["owner_id"] or "-",
            str(a["updates"]),
        )
    tasks = Table(title="Follow-up tasks")
    for col in ("id", "activity", "subject", "due (UTC)", "priority", "owner"):
        tasks.add_column(col)
    for t in data["tasks"]:
        tasks.add_row(
            str(t["id"]),
            str(t["activity_id"] or "-"),
            t["subject"],
            t["due_at"][:16].replace("T", " "),
            t["priority"],
            t["owner_id"] or "-",
        )
    console.print(activities)
    console.print(tasks)


@click.group()
def sandbox() -> None:
    """The local sandbox CRM."""


@sandbox.command("show")
@click.option("--path", type=click.Path(dir_okay=False), help="Sandbox database file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(path: str | None, as_json: bool) -> None:
    """Print the sandbox CRM's customers, call activities and tasks."""
    from acw_connector_sandbox import SandboxStore

    file = Path(path or _default_path())
    if not file.exists():
        raise click.ClickException(f"{file} does not exist yet: no call has been synced to it")
    data = SandboxStore(file).dump()
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render_sandbox(data, Console())


@sandbox.command("fault")
@click.argument(
    "kind", type=click.Choice(["rate_limit", "unavailable", "expired_session", "reject"])
)
@click.option("--times", default=1, show_default=True, type=int)
@click.option("--retry-after", default=2.0, show_default=True, type=float)
@click.option("--path", type=click.Path(dir_okay=False))
def fault(kind: str, times: int, retry_after: float, path: str | None) -> None:
    """Make the sandbox CRM fail its next requests (to watch retries work)."""
    from acw_connector_sandbox import SandboxStore

    SandboxStore(path or _default_path()).inject_fault(kind, times, retry_after)
    click.echo(f"the next {times} sandbox request(s) will fail with {kind}")


@sandbox.command("chaos")
@click.option("--rate", default=0.0, type=float, help="Fraction of requests that fail.")
@click.option("--retry-after", default=1.0, show_default=True, type=float)
@click.option("--down", default=0.0, type=float, help="Seconds the CRM answers 503 to all.")
@click.option("--latency", default=0.0, type=float, help="Seconds added to every request.")
@click.option("--lost-response", default=0.0, type=float, help="Writes that answer a timeout.")
@click.option("--off", is_flag=True, help="Stop misbehaving.")
@click.option("--path", type=click.Path(dir_okay=False))
def chaos(
    *,
    rate: float,
    retry_after: float,
    down: float,
    latency: float,
    lost_response: float,
    off: bool,
    path: str | None,
) -> None:
    """Make the sandbox CRM fail at random (503, 429, timeouts) or go down for a while."""
    import time

    from acw_connector_sandbox import SandboxStore

    store = SandboxStore(path or _default_path())
    if off:
        store.clear_chaos()
        click.echo("the sandbox CRM behaves again")
        return
    store.set_chaos(
        rate=rate,
        retry_after=retry_after,
        down_until=time.time() + down if down else 0,
        latency=latency,
        lost_response=lost_response,
    )
    click.echo(f"sandbox CRM chaos: {rate:.0%} failing, down {down:g} s, +{latency:g} s")


COMMANDS = [sandbox]
