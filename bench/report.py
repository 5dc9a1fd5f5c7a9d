"""Markdown tables of the last benchmark results (``bench/results/*.json``), for the docs.

.venv/bin/python -m bench.report
"""

from __future__ import annotations

import json

from bench.common import RESULTS, table
from bench.e2e import COLUMNS as E2E_COLUMNS
from bench.e2e import cpu_split

INGEST_COLUMNS = [
    ("concurrency", "clients"),
    ("webhooks_per_s", "webhooks/s"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("cpu_us", "server CPU µs/webhook"),
    ("healthz_per_s", "/healthz/s"),
    ("healthz_cpu_us", "server CPU µs/healthz"),
    ("ratio", "webhooks ÷ /healthz"),
    ("non_202", "non-202"),
]


def main() -> None:
    for name, columns in (
        ("ingest", INGEST_COLUMNS),
        ("ingest-amqp", INGEST_COLUMNS),
        ("e2e", E2E_COLUMNS),
        ("scaling", [c for c in E2E_COLUMNS if not c[0].startswith("idle")]),
    ):
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        machine = data["machine"]
        print(
            f"**{name}** ({machine['at']}, {machine['cpus']} cores, load average "
            f"{machine.get('load_average_1_5_15', '?')})\n"
        )
        print(table(data["rows"], columns))
        print()
        if any("worker_cpu_ms_per_call_by_part" in r for r in data["rows"]):
            print(cpu_split(data["rows"]))
            print()


if __name__ == "__main__":
    main()
