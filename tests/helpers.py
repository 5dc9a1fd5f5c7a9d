"""Small helpers for building signed generic webhooks in tests (signing done independently
of the code under test, with the Standard Webhooks reference library)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"acw-sync test secret 0123456789").decode()


def generic_body(call_id: str, kind: str = "ended", **data: Any) -> bytes:
    payload = {
        "type": f"call.{kind}",
        "timestamp": data.pop("timestamp", datetime.now(UTC).isoformat()),
        "data": {"call_id": call_id, **data},
    }
    return json.dumps(payload).encode()


def signed_headers(
    body: bytes, msg_id: str, *, secret: str = SECRET, at: datetime | None = None
) -> dict[str, str]:
    when = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def asgi_post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI ``http`` scope of a ``POST path`` from a loopback client, for driving an ASGI
    app by hand (messages the test controls, such as a client gone mid-body)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
