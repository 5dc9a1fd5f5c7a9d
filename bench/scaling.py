"""Scaling benchmark: the end-to-end burst at 1, 2 and 4 worker processes.

    make bench-scaling       (or: .venv/bin/python -m bench.scaling --crm hubspot,salesforce --calls 1000)

Runs :func:`bench.e2e.run` once per worker count (``acw-sync worker -c W``) and plots calls
synced per second and the end-to-CRM p99 against W. Writes ``bench/results/scaling.json`` and
``scaling.png``.
"""

from __future__ import annotations

import argparse
import json

from bench.common import RESULTS, plot, save, table
from bench.e2e import COLUMNS, cpu_split, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crm", default="hubspot")
    parser.add_argument("-n", "--calls", type=int, default=1000)
    parser.add_argument("-m", "--events", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--replot", action="store_true", help="plot the last results again")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    rows = []
    if args.replot:
        rows = json.loads((RESULTS / "scaling.json").read_text())["rows"]
    for crm in [] if args.replot else args.crm.split(","):
        for workers in counts:
            row = run(crm, args.calls, max(2, args.events), workers, idle=0)
            print(row, flush=True)
            rows.append(row)
    print(table(rows, [c for c in COLUMNS if not c[0].startswith("idle")]))
    print(cpu_split(rows))
    if not args.replot:
        save("scaling", {"rows": rows})
    crms = list(dict.fromkeys(r["crm"] for r in rows))
    plot(
        RESULTS / "scaling.png",
        f"acw-sync end to end: {args.calls} calls x {args.events} events, 2-core machine",
        {
            f"{crm} calls/s": (
                [float(r["workers"]) for r in rows if r["crm"] == crm],
                [r["calls_per_s"] for r in rows if r["crm"] == crm],
            )
            for crm in crms
        },
        "worker processes",
        "calls synced per second",
        second={
            f"{crm} p99 s": (
                [float(r["workers"]) for r in rows if r["crm"] == crm],
                [r["p99_s"] for r in rows if r["crm"] == crm],
            )
            for crm in crms
        },
        second_label="end → CRM p99 (s)",
    )
    print(f"wrote {RESULTS / 'scaling.json'} and {RESULTS / 'scaling.png'}")


if __name__ == "__main__":
    main()
