"""End-to-end benchmark: signed webhooks in, CRM records out, through real worker processes.

    make bench-e2e           (or: .venv/bin/python -m bench.e2e --crm hubspot,salesforce,sandbox)

For each CRM (the HubSpot and Salesforce emulators from ``tests/emulators``, served in this
process over loopback, and the sandbox), on a private Redis, with one ``acw-sync serve`` and one
``acw-sync worker -c W`` (W worker processes):

1. **idle**: single calls, one at a time (the next only once the previous is in the CRM):
   time from the end event to the CRM write, CRM requests per call;
2. **burst**: N calls of M events each (started, answered, ended; every tenth call missed, so
   a follow-up task is due) sent as fast as 32 clients can: calls synced per second (first end
   event sent to last call written), end-to-CRM latency p50/p99, CRM requests per synced call
   (counted at the emulator), peak RSS of the worker processes (sampled every 100 ms), and
   the workers' CPU per call: in all, in the consumer (main) process, and per task type
   (``acw_task_cpu_seconds_total``, scraped from the worker's metrics port); what the pool
   processes spend outside task bodies is Celery's per-task bookkeeping.

"Written" is the ledger's ``synced_at``, stored right after the CRM answered. Customers exist
in the CRM for every number (a centre's known callers). Writes ``bench/results/e2e.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from tests.helpers import SECRET, generic_body, signed_headers

from acw_sync.embedded import EmbeddedRedis
from bench.common import RESULTS, free_port, save, spawn, stop, table, wait_ready
from bench.loadgen import raw_post, send_all

TOKEN = "pat-na1-bench-token"
PATH = "/webhooks/generic"
AGENT = {"id": "agent-7", "email": "ana@example.com", "name": "Ana Example"}


@dataclass
class Crm:
    name: str
    options: dict[str, Any]
    requests: Callable[[], int]
    close: Callable[[], None]


def number(n: int) -> str:
    return f"+1415{n:07d}"


def start_crm(name: str, root: Path, numbers: int) -> Crm:
    if name == "hubspot":
        from tests.emulators.hubspot import HubSpotEmulator

        hs = HubSpotEmulator(tier=190, daily_limit=10_000_000, search_per_second=5).start()
        hs.add_private_app_token(TOKEN)
        hs.add_owner(AGENT["email"])
        for n in range(numbers):
            hs.add_object("contacts", {"phone": number(n), "firstname": f"Caller {n}"})
        return Crm(
            name,
            {"access_token": TOKEN, "host": hs.url, "timeout": 10},
            lambda: len(hs.log),
            hs.stop,
        )
    if name == "salesforce":
        import trustme
        from tests.emulators.salesforce import SalesforceOrg, start

        ca = trustme.CA()
        ca_path = root / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        org = SalesforceOrg(api_limit=10_000_000)
        org.insert("User", {"Email": AGENT["email"], "Username": AGENT["email"], "IsActive": True})
        for n in range(numbers):
            org.insert("Contact", {"LastName": f"Caller {n}", "Phone": number(n)})
        sf = start(ca, ca_path, org)
        return Crm(
            name,
            {
                "auth": "client_credentials",
                "login_url": sf.url,
                "ca_bundle": str(ca_path),
                "client_id": org.client_id,
                "client_secret": org.client_secret,
                "timeout": 10,
            },
            lambda: len(org.log),
            sf.stop,
        )
    from acw_connector_sandbox import SandboxStore

    db = root / "crm.db"
    sandbox = SandboxStore(db)
    now = datetime.now(UTC).isoformat()
    with sandbox.transaction() as conn:
        conn.executemany(
            "INSERT INTO customers (name, phone, phone_e164, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(f"Caller {n}", number(n), number(n), now, now) for n in range(numbers)],
        )
    return Crm(name, {"path": str(db)}, sandbox.request_count, lambda: None)


def config(crm: Crm) -> str:
    import json

    return (
        "providers:\n  generic:\n    secret: ${ACW_GENERIC_SECRET}\n"
        f"connectors:\n  crm:\n    type: {crm.name}\n    batch_window: 0.3\n"
        f"    options: {json.dumps(crm.options)}\n"
    )


def bodies(n: int, tag: str, events: int) -> list[tuple[bytes, dict[str, str]]]:
    """The webhooks of call ``n``: started, answered (when ``events`` > 2), ended last."""
    now = datetime.now(UTC)
    call = f"{tag}-{n}"
    missed = n % 10 == 9
    common = {"direction": "inbound", "customer_number": number(n), "agent": AGENT}
    kinds: list[tuple[str, dict[str, Any]]] = [("started", {"started_at": now.isoformat()})]
    if events > 2 and not missed:
        kinds.append(("answered", {"answered_at": (now + timedelta(seconds=4)).isoformat()}))
    kinds += [("updated", {"notes": [f"note {i}"]}) for i in range(max(0, events - 3))]
    kinds.append(
        (
            "ended",
            {
                "ended_at": (now + timedelta(seconds=95)).isoformat(),
                "outcome": "missed" if missed else "completed",
                "notes": ["Asked for the renewal quote."],
            },
        )
    )
    out = []
    for i, (kind, data) in enumerate(kinds):
        body = generic_body(call, kind, **common, **data)
        out.append((body, signed_headers(body, f"{call}-{i}")))
    return out


class MemorySampler(threading.Thread):
    """Peak RSS of a process and its children (each, and the largest sum), every 100 ms
    (children listed again every 2 s)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_each = 0
        self.peak_total = 0
        self.halt = threading.Event()

    def run(self) -> None:
        procs: list[psutil.Process] = []
        listed = 0.0
        while not self.halt.wait(0.1):
            if time.monotonic() - listed > 2.0:
                # Listing children scans every process on the machine: not every 100 ms.
                with contextlib.suppress(psutil.Error):
                    procs = [self.root, *self.root.children(recursive=True)]
                    listed = time.monotonic()
            sizes = []
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    sizes.append(proc.memory_info().rss)
            if not sizes:
                continue
            self.peak_each = max(self.peak_each, *sizes)
            self.peak_total = max(self.peak_total, sum(sizes))


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU seconds of a process and (alive) children."""
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *(root.children(recursive=True) if children else [])]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def task_cpu(url: str) -> dict[str, float]:
    """CPU seconds by task, summed over the pool processes (the worker's metrics endpoint)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(url, timeout=5).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "acw_task_cpu_seconds":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    task = sample.labels["task"].removeprefix("acw.")
                    found[task] = found.get(task, 0.0) + sample.value
    return found


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def synced_at(client: redis.Redis, keys: list[str]) -> list[float | None]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hget(f"acw:ledger:crm:generic:{key}", "synced_at")
    return [float(v) if v else None for v in pipe.execute()]


def run(crm_name: str, calls: int, events: int, workers: int, idle: int) -> dict[str, Any]:
    """One CRM, one worker pool size: the idle phase, then the burst."""
    with tempfile.TemporaryDirectory(prefix="acw-bench-e2e-") as tmp:
        root = Path(tmp)
        server = EmbeddedRedis(root / "redis")
        url = server.start()
        crm = start_crm(crm_name, root, calls + idle)
        (root / "acw-sync.yaml").write_text(config(crm))
        env = {
            **os.environ,
            "ACW_BROKER_URL": url,
            "ACW_CONFIG": str(root / "acw-sync.yaml"),
            "ACW_DATA_DIR": str(root / "data"),
            "ACW_GENERIC_SECRET": SECRET,
            "ACW_LOG_LEVEL": os.environ.get("ACW_BENCH_LOG_LEVEL", "WARNING"),
        }
        port, metrics_port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
        worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        procs = [
            spawn(["serve", "--port", str(port)], env, root / "server.log"),
            spawn(
                ["worker", "-c", str(workers), "--metrics-port", str(metrics_port)],
                env,
                root / "worker.log",
            ),
        ]
        client = redis.Redis.from_url(url, decode_responses=True)
        sampler = MemorySampler(procs[1].pid)
        local = threading.local()

        def post(item: tuple[bytes, dict[str, str]]) -> float:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            sent = time.time()
            answer = session.post(
                f"{base}/webhooks/generic", data=item[0], headers=item[1], timeout=30
            )
            if answer.status_code not in (200, 202):
                raise SystemExit(f"webhook answered {answer.status_code}: {answer.text}")
            return sent

        try:
            wait_ready(base)
            time.sleep(2.0)  # the worker's pool is up
            sampler.start()
            # 1. idle: one call at a time
            idle_lat, idle_req = [], []
            for n in range(idle):
                hooks = bodies(calls + n, "idle", events)
                for hook in hooks[:-1]:
                    post(hook)
                time.sleep(0.3)
                before = crm.requests()
                ended = post(hooks[-1])
                key = f"idle-{calls + n}"
                deadline = time.monotonic() + 30
                while (done := synced_at(client, [key])[0]) is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                if done is None:
                    raise SystemExit(f"idle call {key} was not synced in 30 s; see {root}")
                idle_lat.append(done - ended)
                time.sleep(0.3)
                idle_req.append(crm.requests() - before)
            # 2. burst: every call's events but the end, then the ends
            redis_pid = next(
                p.pid for p in psutil.Process().children() if "redis" in p.name().lower()
            )
            roles = {
                "server": procs[0].pid,
                "workers": procs[1].pid,
                "worker main": procs[1].pid,
                "redis": redis_pid,
                "bench+crm emulator": os.getpid(),
            }
            alone = {"bench+crm emulator": False, "worker main": False}

            def cpu_now() -> dict[str, float]:
                return {n: cpu_seconds(p, children=alone.get(n, True)) for n, p in roles.items()}

            cpu0, tasks0 = cpu_now(), task_cpu(worker_metrics)
            # Requests are built before they are sent, and sent by an asyncio client on raw
            # keep-alive connections: the sender must not take the workers' CPU.
            all_hooks = [bodies(n, "burst", events) for n in range(calls)]
            wire = [
                [raw_post("127.0.0.1", port, PATH, b, h) for b, h in hooks] for hooks in all_hooks
            ]
            send_all(base, [w for hooks in wire for w in hooks[:-1]])
            time.sleep(1.0)  # the non-final events are merged
            before = crm.requests()
            ends = send_all(base, [hooks[-1] for hooks in wire])
            keys = [f"burst-{n}" for n in range(calls)]
            deadline = time.monotonic() + 180
            backlog = []
            done_at: list[float | None] = [None] * calls
            while time.monotonic() < deadline:
                waiting = [n for n, d in enumerate(done_at) if d is None]
                for n, d in zip(
                    waiting, synced_at(client, [keys[n] for n in waiting]), strict=True
                ):
                    done_at[n] = d
                backlog.append((round(time.time() - min(ends), 1), client.llen("acw")))
                if all(d is not None for d in done_at):
                    break
                time.sleep(0.25)
            else:
                missing = sum(d is None for d in done_at)
                raise SystemExit(f"{missing} of {calls} calls not synced in 180 s; see {root}")
            if os.environ.get("ACW_BENCH_TRACE"):
                print("queue length after the first end event (s, messages):", backlog[::5])
                names = {t.native_id: t.name for t in threading.enumerate()}
                for t in sorted(psutil.Process().threads(), key=lambda t: -t.user_time)[:5]:
                    print("thread", names.get(t.id, t.id), round(t.user_time + t.system_time, 1))
            time.sleep(0.5)
            burst_requests = crm.requests() - before
            sampler.halt.set()
            cpu = {name: round(v - cpu0[name], 1) for name, v in cpu_now().items()}
            tasks = {
                name: v - tasks0.get(name, 0.0) for name, v in task_cpu(worker_metrics).items()
            }
            # Where the workers' CPU went, per call: the consumer process (receiving, acking,
            # handing messages to the pool), each task's body, and the rest (Celery's per-task
            # bookkeeping in the pool processes).
            split = {"consumer": cpu["worker main"], **tasks}
            split["celery (pool)"] = cpu["workers"] - sum(split.values())
            split_ms = {name: round(v / calls * 1000, 2) for name, v in split.items()}
            finished = [d for d in done_at if d is not None]
            latencies = [d - e for d, e in zip(finished, ends, strict=True)]
            span = max(finished) - min(ends)
            return {
                "crm": crm_name,
                "workers": workers,
                "calls": calls,
                "events_per_call": events,
                "idle_p50_s": round(statistics.median(idle_lat), 3) if idle_lat else None,
                "idle_max_s": round(max(idle_lat), 3) if idle_lat else None,
                "idle_requests_per_call": round(statistics.mean(idle_req), 2) if idle_req else None,
                "calls_per_s": round(calls / span, 1),
                "send_ends_s": round(max(ends) - min(ends), 2),
                "p50_s": round(pct(latencies, 0.5), 3),
                "p99_s": round(pct(latencies, 0.99), 3),
                "requests_per_call": round(burst_requests / calls, 4),
                "crm_requests": burst_requests,
                "peak_rss_mib_each": round(sampler.peak_each / 2**20, 1),
                "peak_rss_mib_total": round(sampler.peak_total / 2**20, 1),
                "cpu_s": cpu,  # CPU seconds during the burst, per role (2 cores in all)
                "worker_cpu_ms_per_call": round(cpu["workers"] / calls * 1000, 1),
                "worker_cpu_ms_per_call_by_part": split_ms,
                "burst_s": round(max(finished) - min(ends), 1),
            }
        finally:
            sampler.halt.set()
            stop(procs)
            logs = RESULTS / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            for log in root.glob("*.log"):
                shutil.copy(log, logs / f"e2e-{crm_name}-w{workers}-{log.name}")
            crm.close()
            server.stop()


COLUMNS = [
    ("crm", "CRM"),
    ("workers", "worker procs"),
    ("calls", "calls"),
    ("idle_p50_s", "idle end→CRM p50 s"),
    ("idle_requests_per_call", "idle req/call"),
    ("calls_per_s", "burst calls/s"),
    ("p50_s", "burst end→CRM p50 s"),
    ("p99_s", "p99 s"),
    ("requests_per_call", "burst req/call"),
    ("peak_rss_mib_each", "peak RSS/proc MiB"),
    ("worker_cpu_ms_per_call", "worker CPU ms/call"),
]


def cpu_split(rows: list[dict[str, Any]]) -> str:
    """Where each run's worker CPU went, in ms per call (see :func:`run`)."""
    parts = list(
        dict.fromkeys(p for r in rows for p in r.get("worker_cpu_ms_per_call_by_part", {}))
    )
    columns = [("crm", "CRM"), ("workers", "worker procs"), ("worker_cpu_ms_per_call", "all")]
    flat = [
        {**r, **{f"part:{p}": v for p, v in r.get("worker_cpu_ms_per_call_by_part", {}).items()}}
        for r in rows
    ]
    return "worker CPU ms/call by part:\n" + table(
        flat, columns + [(f"part:{p}", p) for p in parts]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crm", default="hubspot,salesforce,sandbox")
    parser.add_argument("-n", "--calls", type=int, default=1000)
    parser.add_argument("-m", "--events", type=int, default=3, help="events per call (≥ 2)")
    parser.add_argument("-w", "--workers", type=int, default=2)
    parser.add_argument("--idle", type=int, default=5, help="single calls on the idle system")
    args = parser.parse_args()
    rows = []
    for crm in args.crm.split(","):
        row = run(crm, args.calls, max(2, args.events), args.workers, args.idle)
        print(row, flush=True)
        rows.append(row)
    print(table(rows, COLUMNS))
    print(cpu_split(rows))
    targets = {
        "burst requests/call ≤ 0.05": {r["crm"]: r["requests_per_call"] <= 0.05 for r in rows},
        "idle requests/call ≤ 3": {r["crm"]: (r["idle_requests_per_call"] or 0) <= 3 for r in rows},
        "idle p50 < 2 s": {r["crm"]: (r["idle_p50_s"] or 0) < 2 for r in rows},
        "≥ 200 calls/s with 2 workers": {
            r["crm"]: r["calls_per_s"] >= 200 for r in rows if r["workers"] == 2
        },
        "peak RSS < 150 MiB per process": {r["crm"]: r["peak_rss_mib_each"] < 150 for r in rows},
    }
    for name, met in targets.items():
        print(f"{name}: {met}")
    path = save("e2e", {"rows": rows, "targets": targets})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
