"""``serve``, ``worker`` and ``redis``: running acw-sync's processes."""

from __future__ import annotations

import os

import click

from acw_sync.cli import ops
from acw_sync.embedded import EmbeddedRedis, broker_url
from acw_sync.logs import configure_logging, json_lines

__all__ = ["COMMANDS"]


def _broker() -> str:
    url = broker_url()
    os.environ["ACW_BROKER_URL"] = url  # children and the state store use the same server
    return url


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--log-level", default=None, help="Overrides ACW_LOG_LEVEL.")
def serve(host: str, port: int, log_level: str | None) -> None:
    """Run the webhook server (POST /webhooks/{provider})."""
    import uvicorn

    configure_logging(log_level)
    _broker()
    uvicorn.run(
        "acw_sync.server:build_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        limit_concurrency=2048,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=64 * 1024,
    )


@click.command()
@click.option("-c", "--concurrency", default=2, show_default=True, type=int)
@click.option("--log-level", default=None, help="Overrides ACW_LOG_LEVEL.")
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    envvar="ACW_WORKER_METRICS_PORT",
    help="Serve Prometheus metrics of this worker (all its processes) on this port. Off by default.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
def worker(
    concurrency: int, log_level: str | None, metrics_port: int | None, metrics_host: str
) -> None:
    """Run a worker: merge events, analyze calls, sync them to the CRMs.

    SIGTERM is a warm shutdown: the worker takes no new task, finishes the running ones
    (up to the soft shutdown timeout) and hands unfinished messages back to the queue.
    """
    configure_logging(log_level)
    if metrics_port:
        from acw_sync.cli.ops import serve_worker_metrics

        serve_worker_metrics(metrics_host, metrics_port)  # before prometheus_client is used
    from acw_sync.tasks import app, configure_broker

    configure_broker(_broker())
    app.worker_main(
        [
            *(["--quiet"] if json_lines() else []),  # no ASCII banner among the JSON lines
            "worker",
            "-Q",
            app.conf.task_default_queue,
            "-c",
            str(concurrency),
            "--pool",
            "prefork",
            "-l",
            (log_level or os.environ.get("ACW_LOG_LEVEL", "INFO")).upper(),
            "--without-gossip",
            "--without-mingle",
        ]
    )


@click.group()
def redis() -> None:
    """The embedded Redis (used when ACW_BROKER_URL is not set)."""


@redis.command("start")
def redis_start() -> None:
    """Start the embedded Redis (no-op when it runs)."""
    click.echo(EmbeddedRedis.default().start())


@redis.command("stop")
def redis_stop() -> None:
    """Stop the embedded Redis, persisting its data."""
    stopped = EmbeddedRedis.default().stop()
    click.echo("stopped" if stopped else "not running")


@redis.command("status")
def redis_status() -> None:
    """Print the embedded Redis URL, or 'not running'."""
    url = EmbeddedRedis.default().url()
    click.echo(url or "not running")
    if url is None:
        raise SystemExit(1)


# `status` lives with the ops code (acw_sync.cli.ops); listed here to keep one registry.
COMMANDS = [serve, worker, redis, *ops.COMMANDS]
