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
