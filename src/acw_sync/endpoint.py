"""``POST /webhooks/{provider}`` as a plain ASGI app: the server's request path.

Starlette's Request, Response, routing and middleware cost about as much CPU per request as
verifying and parsing a webhook does, so this endpoint reads the ASGI messages itself and
writes its answers itself. It answers exactly what the Starlette endpoint before it answered
(the status codes and JSON bodies listed in :mod:`acw_sync.server`), counts every request in
the webhook metrics and logs what it logged. :class:`IngestApp` sends POSTs under
``/webhooks/`` here and everything else (health, ops pages, lifespan) to the Starlette app.

On the request path, in order: read the body (size limit, time limit, JSON nesting limit),
handshake, verify, parse, hand the events to the :class:`~acw_sync.enqueue.Enqueuer`, answer.
Nothing else: no thread hop for a small body, no per-request logger binding, no label look-up
for the metrics, and the "webhook accepted" line is built only when INFO is enabled.

Must not touch: the providers' contract (:mod:`acw_sync.provider`) or the enqueue invariant
(a 2xx only once the events are on the broker).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import anyio
import structlog
from starlette.datastructures import URL
from starlette.responses import JSONResponse, Response

from acw_sync.enqueue import Enqueuer
from acw_sync.errors import PayloadInvalid, PayloadTooLarge, WebhookRejected
from acw_sync.metrics import WebhookMetrics
from acw_sync.model import CallEvent
from acw_sync.provider import Provider, WebhookRequest

__all__ = [
    "BODY_TIMEOUT",
    "MAX_JSON_DEPTH",
    "IngestApp",
    "RequestTimeout",
    "WebhookEndpoint",
    "check_json_depth",
    "error_response",
]

log = structlog.get_logger("acw_sync.server")
_stdlib_log = logging.getLogger("acw_sync.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Deepest JSON nesting accepted; deeper bodies are refused before any parser recurses.
MAX_JSON_DEPTH = 32
#: Seconds a client may take to send its body (a slow sender holds a connection, not memory).
BODY_TIMEOUT = 10.0
#: Bodies up to this size are scanned for nesting on the event loop (a few hundred µs at
#: worst); larger ones in a worker thread.
INLINE_SCAN_BYTES = 8 * 1024

#: Distinct (scheme, host, path, query) URLs remembered; the memo is emptied when full.
_URL_MEMO_MAX = 1024

_JSON_SPECIAL = re.compile(rb'["\\\[\]{}]')
_PREFIX = "/webhooks/"


class RequestTimeout(WebhookRejected):
    status = 408


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a JSON body nested deeper than ``limit`` (parsers recurse per level).

    One linear pass over the structural characters, skipping strings and their escapes; a
    body with no more opening brackets than ``limit`` cannot be deeper and is not scanned.
    """
    if body.lstrip()[:1] not in (b"{", b"["):
        return
    if body.count(b"{") + body.count(b"[") <= limit:
        return
    in_string = False
    escaped_at = -1
    depth = 0
    for m in _JSON_SPECIAL.finditer(body):
        pos, char = m.start(), body[m.start()]
        if in_string:
            if pos == escaped_at:
                continue
            if char == 0x5C:  # backslash: the next character is escaped
                escaped_at = pos + 1
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x7B, 0x5B):
            depth += 1
            if depth > limit:
                raise PayloadInvalid(f"JSON nested deeper than {limit} levels")
        elif char in (0x7D, 0x5D):
            depth -= 1


def error_response(status: int, reason: str, details: Any = None) -> JSONResponse:
    """The JSON every rejection is answered with: ``{"error": reason[, "details": ...]}``."""
    body: dict[str, Any] = {"error": reason}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status)


def _json_bytes(content: Any) -> bytes:
    # Byte for byte what starlette.responses.JSONResponse renders.
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


async def _send_json(send: Send, status: int, content: Any) -> None:
    body = _json_bytes(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class WebhookEndpoint:
    """``POST /webhooks/{provider}`` (see the module docstring)."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        enqueuer: Enqueuer,
        *,
        max_body_bytes: int,
        public_base_url: str | None = None,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.providers = providers
        self.enqueuer = enqueuer
        self.limit = max_body_bytes
        self.base_url = public_base_url.rstrip("/") if public_base_url else None
        self.body_timeout = body_timeout
        self.metrics = WebhookMetrics(providers)
        self._urls: dict[tuple[Any, ...], tuple[str, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app for a scope routed by Starlette (provider in ``path_params``)."""
        await self.handle(scope, receive, send, scope["path_params"]["provider"])

    async def handle(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        started = time.perf_counter()
        label = self.metrics.label(name)
        self.metrics.received(label)
        try:
            status, kind = await self._answer(scope, receive, send, name)
        except Exception:
            # As Starlette's error middleware did: a 500 without a trace, the error logged.
            self.metrics.failed(label)
            log.exception("unhandled error", path=scope.get("path"))
            await error_response(500, "internal error")(scope, receive, send)
            return
        self.metrics.answered(label, status, time.perf_counter() - started, kind)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, name: str
    ) -> tuple[int, str]:
        """Answer the request; its status and, for a 2xx, the metrics' kind."""
        provider = self.providers.get(name)
        if provider is None:
            await error_response(404, f"unknown provider {name!r}")(scope, receive, send)
            return 404, ""
        try:
            raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
            body = await self._read_body(receive, headers)
            now = datetime.now(UTC)
            hook = self._request(scope, raw_headers, headers, body, now)
            handshake = provider.handshake(hook, now)
            if handshake is not None:
                log.info("handshake answered", provider=name)
                response = Response(
                    handshake.body,
                    status_code=handshake.status,
                    headers=dict(handshake.headers),
                    media_type=handshake.media_type,
                )
                await response(scope, receive, send)
                return handshake.status, "handshake"
            provider.verify(hook, now)
            events = provider.parse(hook)
        except WebhookRejected as exc:
            log.warning("webhook rejected", provider=name, status=exc.status, reason=exc.reason)
            await error_response(exc.status, exc.reason, exc.details)(scope, receive, send)
            return exc.status, ""
        except (ValueError, TypeError, KeyError, LookupError, RecursionError) as exc:
            # A provider that did not foresee this input: still a 4xx with a reason, never a
            # crash; logged as an error so that the provider gets fixed.
            log.error(
                "provider could not read the webhook", provider=name, error=type(exc).__name__
            )
            reason = f"malformed payload ({type(exc).__name__})"
            await error_response(400, reason)(scope, receive, send)
            return 400, ""
        return await self._enqueue(send, name, events)

    async def _read_body(self, receive: Receive, headers: Mapping[str, str]) -> bytes:
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            raise PayloadTooLarge(f"body is larger than {self.limit} bytes")
        chunks: list[bytes] = []
        size = 0
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        # A timer handle, as asyncio.timeout() sets one, for half its CPU per request.
        timer = asyncio.get_running_loop().call_later(self.body_timeout, expire)
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect
                    raise PayloadInvalid("client disconnected before the body was complete")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.limit:
                    raise PayloadTooLarge(f"body is larger than {self.limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if expired and task.uncancel() == 0:
                raise RequestTimeout(f"body not received within {self.body_timeout:g} s") from None
            raise
        finally:
            timer.cancel()
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if len(body) <= INLINE_SCAN_BYTES:
            check_json_depth(body)
        else:
            await anyio.to_thread.run_sync(check_json_depth, body)
        return body

    def _request(
        self,
        scope: Scope,
        raw_headers: list[tuple[bytes, bytes]],
        headers: dict[str, str],
        body: bytes,
        now: datetime,
    ) -> WebhookRequest:
        query_string: bytes = scope.get("query_string", b"")
        url, path = self._url(scope, raw_headers, query_string)
        query = (
            tuple(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
            if query_string
            else ()
        )
        return WebhookRequest(
            method=scope["method"],
            url=url,
            path=path,
            headers=headers,
            body=body,
            query=query,
            received_at=now,
        )

    def _url(
        self, scope: Scope, raw_headers: list[tuple[bytes, bytes]], query_string: bytes
    ) -> tuple[str, str]:
        """The public URL and the path, as Starlette's ``request.url`` reads them (signed
        URLs, Twilio's, must read the same), remembered per distinct request line and host."""
        host = next((v for k, v in raw_headers if k == b"host"), None)  # the first, as Starlette
        server = scope.get("server")
        key = (scope.get("scheme"), host, server and tuple(server), scope["path"], query_string)
        known = self._urls.get(key)
        if known is None:
            url = URL(scope=scope)
            public = str(url)
            if self.base_url:
                public = self.base_url + url.path + ("?" + url.query if url.query else "")
            if len(self._urls) >= _URL_MEMO_MAX:
                self._urls.clear()
            known = self._urls[key] = (public, url.path)
        return known

    async def _enqueue(self, send: Send, name: str, events: list[CallEvent]) -> tuple[int, str]:
        if not events:
            await _send_json(send, 200, {"accepted": [], "duplicates": [], "ignored": True})
            return 200, "ignored"
        try:
            # Claimed, journalled, published and confirmed in a batch with concurrent requests,
            # without blocking the event loop; on a failed publish the claims are released and
            # the journal entries dropped (see acw_sync.enqueue).
            done = await self.enqueuer.enqueue(name, events)
        except Exception as exc:
            # Nothing is acknowledged unless it is on the queue: let the platform retry.
            log.error("broker unavailable", provider=name, error=type(exc).__name__)
            await _send_json(send, 503, {"error": "queue unavailable, retry later"})
            return 503, ""
        accepted, duplicates = done.accepted, done.duplicates
        if _stdlib_log.isEnabledFor(logging.INFO):
            for event in accepted:
                log.info(
                    "webhook accepted",
                    provider=name,
                    event_id=event.event_id,
                    call_key=event.call_key,
                    event_type=event.type.value,
                )
            if duplicates and not accepted:
                log.info("duplicate delivery", provider=name, event_ids=duplicates)
        status = 202 if accepted else 200
        await _send_json(
            send, status, {"accepted": [e.event_id for e in accepted], "duplicates": duplicates}
        )
        return status, "new" if accepted else "duplicate"


class IngestApp:
    """The server's ASGI app: webhook POSTs to :class:`WebhookEndpoint`, the rest to Starlette.

    Only ``POST /webhooks/<name>`` (one path segment) takes the short path; any other method
    or path goes through the Starlette app and its routing (405, 404, ops routes, lifespan).
    """

    def __init__(self, webhooks: WebhookEndpoint, app: ASGIApp) -> None:
        self.webhooks = webhooks
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(_PREFIX):
                name = path[len(_PREFIX) :]
                if name and "/" not in name:
                    await self.webhooks.handle(scope, receive, send, name)
                    return
        await self.app(scope, receive, send)
