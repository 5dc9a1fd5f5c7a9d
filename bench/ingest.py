"""Ingest benchmark: signed generic webhooks against a real ``acw-sync serve`` process.

    make bench-ingest        (or: .venv/bin/python -m bench.ingest)

Starts a private Redis and one server process (pinned to core 0), then, from a load generator
in another process (core 1), sends distinct signed webhooks at concurrency 1, 16, 64 and 256,
and the same server's bare ``/healthz`` at the same levels as the ceiling. No worker runs: the
queue is emptied every second so Redis memory stays flat. Prints a table; writes
``bench/results/ingest.json`` and ``ingest.png``.

Besides throughput and latency, each row gives the server process's CPU time per request
answered (its user + system time over the level, divided by the requests): the figure that other
work on the machine disturbs least, and the one to compare between versions of the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil
import redis
from tests.helpers import SECRET

from acw_sync.embedded import EmbeddedRedis
from bench.common import (
    RESULTS,
    ROOT,
    free_port,
    pinned,
    plot,
    save,
    spawn,
    stop,
    table,
    wait_ready,
)

CONFIG = """
providers:
  generic:
    secret: ${ACW_GENERIC_SECRET}
connectors:
  crm:
    type: sandbox
    options:
      path: %(db)s
"""

TARGET_RPS, TARGET_P99_MS, TARGET_RATIO = 2500, 25.0, 0.5


def load(url: str, path: str, concurrency: int, duration: float, tag: str) -> dict:
    out = subprocess.run(
        pinned(
            1,
            [
                sys.executable,
                "-m",
                "bench.loadgen",
                "--url",
                url,
                "--path",
                path,
                "-c",
                str(concurrency),
                "-d",
                str(duration),
                "--tag",
                tag,
            ],
        ),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of the server process so far."""
    times = proc.cpu_times()
    return float(times.user + times.system)


def measured(
    server: psutil.Process, url: str, path: str, concurrency: int, duration: float, tag: str
) -> dict:
    """:func:`load`, plus the server's CPU µs per request answered during it."""
    before = cpu_seconds(server)
    result = load(url, path, concurrency, duration, tag)
    spent = cpu_seconds(server) - before
    result["cpu_us"] = round(spent / result["requests"] * 1e6) if result["requests"] else 0
    return result


def draw(rows: list[dict], name: str) -> None:
    xs = [float(r["concurrency"]) for r in rows]
    plot(
        RESULTS / f"{name}.png",
        f"acw-sync ingest ({name}): one server process, 2-core machine",
        {
            "signed webhooks/s": (xs, [r["webhooks_per_s"] for r in rows]),
            "bare /healthz/s": (xs, [r["healthz_per_s"] for r in rows]),
        },
        "concurrent clients",
        "requests per second",
        second={"webhook p99 ms": (xs, [r["p99_ms"] for r in rows])},
        second_label="p99 latency (ms)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--broker",
        default="redis",
        help="redis (the private Redis), or an amqp:// URL: RabbitMQ as the broker, state in Redis",
    )
    parser.add_argument("--replot", action="store_true", help="plot the last results again")
    args = parser.parse_args()
    if args.replot:
        name = "ingest" if args.broker == "redis" else "ingest-amqp"
        draw(json.loads((RESULTS / f"{name}.json").read_text())["rows"], name)
        return
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="acw-bench-") as tmp:
        root = Path(tmp)
        server = EmbeddedRedis(root / "redis")
        url = server.start()
        (root / "acw-sync.yaml").write_text(CONFIG % {"db": root / "crm.db"})
        queue = f"acw-bench-{os.getpid()}"
        env = {
            **os.environ,
            "ACW_BROKER_URL": url,
            "ACW_CONFIG": str(root / "acw-sync.yaml"),
            "ACW_DATA_DIR": str(root / "data"),
            "ACW_GENERIC_SECRET": SECRET,
            "ACW_LOG_LEVEL": "WARNING",
            "ACW_QUEUE": queue,
        }
        if args.broker != "redis":
            env |= {"ACW_BROKER_URL": args.broker, "ACW_REDIS_URL": url}
        port = free_port()
        proc = spawn(["serve", "--port", str(port)], env, root / "server.log", cpu=0)
        client = redis.Redis.from_url(url)
        done = threading.Event()

        def drain() -> None:  # no worker: keep the queue from growing without bound
            if args.broker == "redis":
                while not done.wait(1.0):
                    client.delete(queue)
                return
            import kombu

            with kombu.Connection(args.broker) as conn:
                channel = conn.channel()
                while not done.wait(1.0):
                    with contextlib.suppress(Exception):  # not declared yet
                        channel.queue_purge(queue)
                with contextlib.suppress(Exception):
                    channel.queue_delete(queue)

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        rows = []
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base)
            # taskset execs the server, so the pid is the server's own.
            server_cpu = psutil.Process(proc.pid)
            load(base, "/webhooks/generic", 16, 1.0, "warm")  # warm-up, not reported
            for c in levels:
                hook = measured(server_cpu, base, "/webhooks/generic", c, args.duration, f"c{c}")
                health = measured(server_cpu, base, "/healthz", c, args.duration, f"h{c}")
                bad = {k: v for k, v in hook["statuses"].items() if k != "202"}
                rows.append(
                    {
                        "concurrency": c,
                        "webhooks_per_s": hook["rps"],
                        "p50_ms": hook["p50_ms"],
                        "p99_ms": hook["p99_ms"],
                        "cpu_us": hook["cpu_us"],
                        "healthz_per_s": health["rps"],
                        "healthz_p99_ms": health["p99_ms"],
                        "healthz_cpu_us": health["cpu_us"],
                        "ratio": round(hook["rps"] / health["rps"], 2) if health["rps"] else 0,
                        "non_202": sum(bad.values()),
                    }
                )
                print(
                    f"c={c}: {hook['rps']:.0f} webhooks/s p99 {hook['p99_ms']} ms "
                    f"({hook['cpu_us']} µs CPU each); "
                    f"healthz {health['rps']:.0f}/s ({health['cpu_us']} µs CPU each)",
                    flush=True,
                )
        finally:
            done.set()
            drainer.join(timeout=10)
            stop([proc])
            server.stop()
    columns = [
        ("concurrency", "clients"),
        ("webhooks_per_s", "webhooks/s"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("cpu_us", "server CPU µs/webhook"),
        ("healthz_per_s", "/healthz/s"),
        ("healthz_p99_ms", "/healthz p99 ms"),
        ("healthz_cpu_us", "server CPU µs/healthz"),
        ("ratio", "webhooks ÷ healthz"),
        ("non_202", "non-202"),
    ]
    print(table(rows, columns))
    at64 = next((r for r in rows if r["concurrency"] == 64), None)
    verdict = {}
    if at64:
        verdict = {
            "rps_at_64": [at64["webhooks_per_s"], TARGET_RPS, at64["webhooks_per_s"] >= TARGET_RPS],
            "p99_ms_at_64": [at64["p99_ms"], TARGET_P99_MS, at64["p99_ms"] < TARGET_P99_MS],
            "ratio_at_64": [at64["ratio"], TARGET_RATIO, at64["ratio"] >= TARGET_RATIO],
        }
        print("targets @64 [measured, target, met]:", json.dumps(verdict))
    name = "ingest" if args.broker == "redis" else "ingest-amqp"
    broker = args.broker.split("@")[-1]
    save(name, {"rows": rows, "targets": verdict, "duration_s": args.duration, "broker": broker})
    draw(rows, name)
    print(f"wrote {RESULTS / (name + '.json')} and {RESULTS / (name + '.png')}")


if __name__ == "__main__":
    main()
