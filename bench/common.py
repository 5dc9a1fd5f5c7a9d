"""What the benchmarks share: a private Redis, spawned acw-sync processes, tables and results.

Every benchmark starts its own :class:`~acw_sync.embedded.EmbeddedRedis` in a temporary
directory, so it never touches a developer's or CI's Redis.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECRET_ENV = "ACW_GENERIC_SECRET"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int | None, args: list[str]) -> list[str]:
    """``args`` pinned to one core with taskset when there is more than one core."""
    if cpu is None or (os.cpu_count() or 1) < 2 or not Path("/usr/bin/taskset").exists():
        return args
    return ["taskset", "-c", str(cpu), *args]


def spawn(
    args: list[str], env: dict[str, str], log: Path, cpu: int | None = None
) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        pinned(cpu, [sys.executable, "-m", "acw_sync", *args]),
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def wait_ready(url: str, timeout: float = 30) -> None:
    def ready() -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(ready, timeout, f"{url}/readyz")


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` (``columns``: key, heading)."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---:" for _ in columns) + "|"
    body = ["| " + " | ".join(str(r.get(k, "")) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # Other work on the machine skews every figure: recorded with the results.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def plot(
    path: Path,
    title: str,
    series: dict[str, tuple[list[float], list[float]]],
    xlabel: str,
    ylabel: str,
    *,
    second: dict[str, tuple[list[float], list[float]]] | None = None,
    second_label: str = "",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if second:
        ax2 = ax.twinx()
        for label, (xs, ys) in second.items():
            ax2.plot(xs, ys, marker="s", linestyle="--", label=label, color="tab:red")
        ax2.set_ylabel(second_label)
        ax2.set_ylim(bottom=0)
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    if len({x for xs, _ in series.values() for x in xs}) > 3:
        ax.set_xscale("log", base=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
