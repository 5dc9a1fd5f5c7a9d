"""A small HTTP/1.1 keep-alive load generator: fixed concurrency, pre-built requests.

Runs in its own process (pinned to its own core by the caller) so that it does not share the
server's. Each connection sends one request, reads the whole answer, records the latency and
sends the next; requests are built (and signed) before the clock starts. Prints one JSON line.

    python -m bench.loadgen --url http://127.0.0.1:8000 --path /healthz -c 64 -d 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from urllib.parse import urlparse

from tests.helpers import generic_body, signed_headers


def webhook_requests(host: str, path: str, count: int, tag: str) -> list[bytes]:
    """``count`` distinct signed generic webhooks (about 900 bytes of JSON each)."""
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        call = f"bench-{tag}-{n}"
        body = generic_body(
            call,
            "ended",
            direction="inbound",
            customer_number=f"+1415{n % 10_000_000:07d}",
            line_number="+14155550000",
            started_at=now.isoformat(),
            answered_at=now.isoformat(),
            ended_at=now.isoformat(),
            outcome="completed",
            agent={"id": "agent-7", "email": "ana@example.com", "name": "Ana Example"},
            notes=["Customer asked for the renewal quote and a call back next Tuesday."],
            tags=["renewal", "quote"],
        )
        headers = signed_headers(body, f"msg-{call}", at=now)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(
            (
                f"POST {path} HTTP/1.1\r\nhost: {host}\r\n{head}content-length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return out


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    start: int,
    step: int,
    deadline: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = start
    try:
        while time.perf_counter() < deadline and n < len(requests):
            t0 = time.perf_counter()
            writer.write(requests[n])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            n += step
    finally:
        writer.close()


async def run(url: str, path: str, concurrency: int, duration: float, count: int, tag: str) -> dict:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    if path.startswith("/webhooks/"):
        requests = webhook_requests(f"{host}:{port}", path, count, tag)
    else:
        requests = [f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode()] * count
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    t0 = time.perf_counter()
    deadline = t0 + duration
    await asyncio.gather(
        *(
            _connection(host, port, requests, i, concurrency, deadline, latencies, statuses)
            for i in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "path": path,
        "concurrency": concurrency,
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-n", "--count", type=int, default=40_000, help="requests prepared")
    parser.add_argument("--tag", default="x", help="makes webhook ids unique across runs")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        run(args.url, args.path, args.concurrency, args.duration, args.count, args.tag)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()


def raw_post(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST as bytes on the wire (HTTP/1.1, keep-alive)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n{head}content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _send_some(
    host: str, port: int, requests: list[bytes], todo: list[int], sent: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while todo:
            n = todo.pop()
            sent[n] = time.time()
            writer.write(requests[n])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if status not in (200, 202):
                raise RuntimeError(f"webhook answered {status}")
    finally:
        writer.close()


def send_all(url: str, requests: list[bytes], concurrency: int = 32) -> list[float]:
    """Send every request (any order, ``concurrency`` connections); when each was sent."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    sent = [0.0] * len(requests)
    todo = list(range(len(requests)))[::-1]

    async def run() -> None:
        await asyncio.gather(
            *(_send_some(host, port, requests, todo, sent) for _ in range(concurrency))
        )

    asyncio.run(run())
    return sent
