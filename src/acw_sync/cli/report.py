"""``acw-sync report``: ACW and handle-time figures per agent or team, from the state store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal, cast

import click

from acw_sync.analyzer import parse_since, render_report, report, write_chart
from acw_sync.model import CallRecord
from acw_sync.store import StateStore

__all__ = ["COMMANDS", "load_records"]


def load_records(
    store: StateStore, since_seconds: float
) -> tuple[list[CallRecord], dict[str, int]]:
    """The merged records of calls active in the period, and follow-ups created per call."""
    keys = cast(
        list[str],
        store.redis.zrangebyscore(store.k("calls"), time.time() - since_seconds, "+inf"),
    )
    records: list[CallRecord] = []
    followups: dict[str, int] = {}
    for key in keys:
        record = store.record(key)
        if record is None:
            continue
        records.append(record)
        created = 0
        for ledger_key in store.redis.scan_iter(match=store.k("ledger", "*", key), count=100):
            fields = cast(list[str], store.redis.hkeys(ledger_key))
            created = max(created, sum(1 for f in fields if f.startswith("task:")))
        followups[key] = created
    return records, followups


@click.command("report")
@click.option("--since", "since", default="7d", show_default=True, help="Period: 24h, 7d, 2w...")
@click.option("--by", type=click.Choice(["agent", "team"]), default="agent", show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--chart", type=click.Path(dir_okay=False), help="Also write a chart (.html or .svg)."
)
def report_command(since: str, by: str, fmt: str, chart: str | None) -> None:
    """Calls handled, average ACW, AHT, missed-call rate and follow-ups, per agent or team."""
    from acw_sync.runtime import get_runtime

    try:
        period = parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    records, followups = load_records(get_runtime().store, period.total_seconds())
    rows = report(
        records,
        period,
        by=cast(Literal["agent", "team"], by),
        followups=followups,
    )
    click.echo(render_report(rows, cast(Literal["table", "csv", "json"], fmt)))
    if chart:
        path = write_chart(rows, Path(chart), title=f"Handle time by {by}, last {since}")
        click.echo(f"chart written to {path}", err=True)


COMMANDS = [report_command]
