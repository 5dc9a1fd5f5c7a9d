"""``serve``, ``worker`` and ``redis``: running acw-sync's processes."""

from __future__ import annotations

import os

import click

from acw_sync.embedded import EmbeddedRedis, broker_url
from acw_sync.logs import configure_logging

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
def worker(concurrency: int, log_level: str | None) -> None:
    """Run a worker: merge events, analyze calls, sync them to the CRMs."""
    configure_logging(log_level)
    from acw_sync.tasks import app, configure_broker

    configure_broker(_broker())
    app.worker_main(
        [
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


COMMANDS = [serve, worker, redis]
