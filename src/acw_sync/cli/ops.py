"""``acw-sync status``: one screen for ops; and the worker's metrics endpoint.

``status`` exits 0 when everything flows, 1 when it names a problem (broker or state Redis
unreachable, no worker alive, a circuit open), so it doubles as a check in scripts.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

__all__ = ["COMMANDS", "serve_worker_metrics"]


def serve_worker_metrics(host: str, port: int) -> str:
    """Serve this worker's metrics, aggregated over its pool processes, on ``host:port``.

    Call before :mod:`acw_sync.tasks` is imported: the pool processes write their samples
    to ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary directory unless set), which must be
    chosen before ``prometheus_client`` makes its first metric. Returns the directory.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = tempfile.mkdtemp(prefix="acw-worker-metrics-")
        atexit.register(shutil.rmtree, directory, True)
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):  # samples of an earlier run would add up
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ["ACW_WORKER_METRICS_PORT"] = str(port)
    if "prometheus_client" in sys.modules:  # imported early: switch it to multiprocess values
        from prometheus_client import values

        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    from prometheus_client import start_http_server

    from acw_sync.metrics import scrape_registry

    start_http_server(port, addr=host, registry=scrape_registry())
    return directory


def _mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[bold red]FAIL[/bold red]"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def status(as_json: bool) -> None:
    """Is everything flowing? Broker, queues, workers, connectors, dead letters."""
    from acw_sync.embedded import broker_url
    from acw_sync.runtime import get_runtime
    from acw_sync.status import BrokerProbe, format_age, gather_status

    try:
        broker = BrokerProbe(broker_url(start=False))
    except RuntimeError:
        broker = None  # no ACW_BROKER_URL and no embedded Redis running
    if broker is None and "ACW_REDIS_URL" not in os.environ:
        click.echo(
            "acw-sync status: ACW_BROKER_URL is not set and no embedded Redis runs", err=True
        )
        raise SystemExit(1)
    if broker is not None:
        os.environ.setdefault("ACW_BROKER_URL", broker.url)  # the state store's default too
    runtime = get_runtime()
    report = gather_status(runtime.store, runtime.config, broker)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        raise SystemExit(0 if report.healthy else 1)
    console = Console()
    queued = sum(report.queues.values())
    console.print(
        f"[bold]acw-sync status[/bold]  broker {_mark(report.broker_ok)}  "
        f"state {_mark(report.state_ok)}  queued [bold]{queued}[/bold]"
        + (f" ({report.unacked} in workers)" if report.unacked is not None else "")
        + f"  workers [bold]{len(report.workers)}[/bold]"
        + f"  dead letters [bold]{report.dead_letters}[/bold]"
        + f"  unsynced [bold]{report.unsynced}[/bold]"
    )
    if report.oldest_unsynced:
        oldest = report.oldest_unsynced
        console.print(
            f"oldest unsynced: {oldest['call_key']} -> {oldest['connector']}, "
            f"queued {format_age(oldest['age'])} ago"
        )
    table = Table(title=f"Connectors (last {report.window_minutes} min)")
    for column in ("instance", "type", "success", "attempts", "circuit", "dead", "last error"):
        table.add_column(column)
    for c in report.connectors:
        rate = "-" if c.success_rate is None else f"{c.success_rate:.0%}"
        error = "-"
        if c.last_error:
            error = (
                f"{format_age(time.time() - c.last_error['at'])} ago {c.last_error['reason']}: "
                f"{c.last_error['error'][:80]} ({c.last_error['call_key']})"
            )
        table.add_row(
            c.instance, c.type, rate, str(c.attempts), c.circuit, str(c.dead_letters), error
        )
    console.print(table)
    workers = Table(title="Workers")
    for column in ("hostname", "pid", "concurrency", "up", "last beat", "metrics"):
        workers.add_column(column)
    for w in report.workers:
        workers.add_row(
            w.hostname,
            str(w.pid),
            str(w.concurrency or "-"),
            format_age(time.time() - w.started_at) if w.started_at else "-",
            f"{format_age(time.time() - w.beat_at)} ago",
            f":{w.metrics_port}" if w.metrics_port else "-",
        )
    console.print(workers)
    for problem in report.problems:
        console.print(f"[bold red]problem:[/bold red] {problem}")
    if report.healthy:
        console.print("[green]all good[/green]")
    raise SystemExit(0 if report.healthy else 1)


COMMANDS = [status]
