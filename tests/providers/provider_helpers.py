"""Helpers for the provider tests: fixtures on disk, requests as the ingest server builds them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acw_sync.provider import WebhookRequest

DATA = Path(__file__).resolve().parent.parent / "data" / "providers"

NOW = datetime(2026, 3, 10, 18, 10, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def request(
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    url: str = "https://acw.example.com/webhooks/test",
    method: str = "POST",
    received_at: datetime | None = None,
) -> WebhookRequest:
    return WebhookRequest(
        method=method,
        url=url,
        path="/" + url.split("/", 3)[-1],
        headers={k.lower(): v for k, v in (headers or {}).items()},
        body=body,
        received_at=received_at,
    )


def compact(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
