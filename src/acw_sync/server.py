"""The ingest server: verify, parse, dedupe, enqueue, answer. Nothing else on the request path.

``POST /webhooks/{provider}``:

* 404 unknown or unconfigured provider; 413 body over the limit;
* a platform handshake (Zoom URL validation, RingCentral Validation-Token) is answered as the
  platform expects;
* 401 bad or missing signature, stale timestamp; 400 malformed body, with the field errors;
* 202 with the accepted event ids once they are on the queue; 200 when every event of the
  request was accepted before (a redelivery); 503 when the broker cannot take them, so that
  the platform retries (nothing is acknowledged unless it is on the queue).

``GET /healthz`` (process alive), ``GET /readyz`` (broker and state store reachable),
``GET /openapi.json``; ``GET /metrics``, ``GET /status`` and ``/status.json`` for ops
(:mod:`acw_sync.status_page`). No error ever answers with a stack trace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from acw_sync.config import AppConfig
from acw_sync.enqueue import Enqueuer
from acw_sync.errors import ConfigError, PayloadInvalid, PayloadTooLarge, WebhookRejected
from acw_sync.model import CallEvent
from acw_sync.openapi import openapi_document
from acw_sync.provider import Provider, WebhookRequest, available_providers
from acw_sync.status_page import instrument_webhooks, ops_routes
from acw_sync.store import StateStore

__all__ = ["Ingest", "create_app"]

log = structlog.get_logger("acw_sync.server")

Publish = Callable[[CallEvent], None]
PublishMany = Callable[[Sequence[CallEvent]], None]


@dataclass
class Ingest:
    """What the server needs: providers by name, the state store and a publisher.

    ``publish_many`` (a batch; see :mod:`acw_sync.publish`) is used when given, else
    ``publish`` one event at a time.
    """

    config: AppConfig
    providers: dict[str, Provider]
    store: StateStore
    publish: Publish
    broker_ping: Callable[[], bool]
    broker_url: str | None = None
    """For the ops routes' queue depths; None leaves them empty."""
    publish_many: PublishMany | None = field(default=None, kw_only=True)

    def publish_batch(self, events: Sequence[CallEvent]) -> None:
        if self.publish_many is not None:
            self.publish_many(events)
            return
        for event in events:
            self.publish(event)

    @classmethod
    def from_config(
        cls,
        config: AppConfig,
        store: StateStore,
        publish: Publish,
        broker_ping: Callable[[], bool],
        *,
        publish_many: PublishMany | None = None,
    ) -> Ingest:
        installed = available_providers()
        providers: dict[str, Provider] = {}
        problems = []
        for name, settings in config.providers.items():
            if name not in installed:
                problems.append(
                    f"providers.{name}: no such provider; installed: {', '.join(sorted(installed))}"
                )
                continue
            cls_ = installed[name]
            try:
                providers[name] = cls_(cls_.config_model.model_validate(settings))
            except ValueError as exc:
                problems.append(f"providers.{name}: {exc}")
        if problems:
            raise ConfigError(problems, file=config.source)
        return cls(config, providers, store, publish, broker_ping, publish_many=publish_many)


def _error(status: int, reason: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": reason}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status)


#: Deepest JSON nesting accepted; deeper bodies are refused before any parser recurses.
MAX_JSON_DEPTH = 32
#: Seconds a client may take to send its body (a slow sender holds a connection, not memory).
BODY_TIMEOUT = 10.0

_JSON_SPECIAL = re.compile(rb'["\\\[\]{}]')


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a JSON body nested deeper than ``limit`` (parsers recurse per level).

    One linear pass over the structural characters, skipping strings and their escapes.
    """
    if body.lstrip()[:1] not in (b"{", b"["):
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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"body not received within {BODY_TIMEOUT:g} s") from None
    except ClientDisconnect:
        raise PayloadInvalid("client disconnected before the body was complete") from None
    body = b"".join(chunks)
    await anyio.to_thread.run_sync(check_json_depth, body)
    return body


class RequestTimeout(WebhookRejected):
    status = 408


def _public_url(request: Request, base: str | None) -> str:
    if not base:
        return str(request.url)
    url = base.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def create_app(ingest: Ingest) -> Starlette:
    limit = ingest.config.server.max_body_bytes
    base_url = ingest.config.server.public_base_url
    enqueuer = Enqueuer(ingest.store, ingest.publish_batch)

    async def webhook(request: Request) -> Response:
        name = request.path_params["provider"]
        provider = ingest.providers.get(name)
        if provider is None:
            return _error(404, f"unknown provider {name!r}")
        bound = log.bind(provider=name)
        try:
            body = await _read_body(request, limit)
            now = datetime.now(UTC)
            hook = WebhookRequest(
                method=request.method,
                url=_public_url(request, base_url),
                path=request.url.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                query=tuple(request.query_params.multi_items()),
                received_at=now,
            )
            handshake = provider.handshake(hook, now)
            if handshake is not None:
                bound.info("handshake answered")
                return Response(
                    handshake.body,
                    status_code=handshake.status,
                    headers=dict(handshake.headers),
                    media_type=handshake.media_type,
                )
            provider.verify(hook, now)
            events = provider.parse(hook)
        except WebhookRejected as exc:
            bound.warning("webhook rejected", status=exc.status, reason=exc.reason)
            return _error(exc.status, exc.reason, exc.details)
        except (ValueError, TypeError, KeyError, LookupError, RecursionError) as exc:
            # A provider that did not foresee this input: still a 4xx with a reason, never a
            # crash; logged as an error so that the provider gets fixed.
            bound.error("provider could not read the webhook", error=type(exc).__name__)
            return _error(400, f"malformed payload ({type(exc).__name__})")
        return await _enqueue(name, events, bound)

    async def _enqueue(name: str, events: list[CallEvent], bound: Any) -> Response:
        if not events:
            return JSONResponse({"accepted": [], "duplicates": [], "ignored": True}, 200)
        try:
            # Claimed, journalled, published and confirmed in a batch with concurrent requests,
            # off the event loop; on a failed publish the claims are released and the journal
            # entries dropped (see acw_sync.enqueue).
            done = await enqueuer.enqueue(name, events)
        except Exception as exc:
            # Nothing is acknowledged unless it is on the queue: let the platform retry.
            bound.error("broker unavailable", error=type(exc).__name__)
            return _error(503, "queue unavailable, retry later")
        accepted, duplicates = done.accepted, done.duplicates
        for event in accepted:
            bound.info(
                "webhook accepted",
                event_id=event.event_id,
                call_key=event.call_key,
                event_type=event.type.value,
            )
        if duplicates and not accepted:
            bound.info("duplicate delivery", event_ids=duplicates)
        status = 202 if accepted else 200
        return JSONResponse(
            {"accepted": [e.event_id for e in accepted], "duplicates": duplicates}, status
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        broker = await anyio.to_thread.run_sync(ingest.broker_ping)
        state = await anyio.to_thread.run_sync(ingest.store.ping)
        ok = broker and state
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "broker": broker, "state_store": state},
            status_code=200 if ok else 503,
        )

    document = openapi_document(sorted(ingest.providers))

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own 404/405: JSON with a reason like every other rejection.
        status = getattr(exc, "status_code", 400)
        headers = dict(getattr(exc, "headers", None) or {})
        response = _error(status, str(getattr(exc, "detail", "") or "bad request"))
        response.headers.update(headers)
        return response

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path)
        return _error(500, "internal error")

    return Starlette(
        routes=[
            Route(
                "/webhooks/{provider}",
                instrument_webhooks(webhook, ingest.providers),
                methods=["POST"],
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            *ops_routes(ingest.store, ingest.config, ingest.broker_url),
        ],
        exception_handlers={HTTPException: on_http_error, Exception: on_error},
    )


def build_app() -> Starlette:
    """The production app: config, state store and the Celery publisher of this process."""
    from acw_sync.publish import publisher_for
    from acw_sync.runtime import get_runtime
    from acw_sync.tasks import app as celery_app
    from acw_sync.tasks import configure_broker, process_event

    broker = configure_broker()
    runtime = get_runtime()

    def publish(event: CallEvent) -> None:
        process_event.apply_async(args=[event.model_dump(mode="json")], retry=True)

    def broker_ping() -> bool:
        try:
            with celery_app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:
            return False

    ingest = Ingest.from_config(
        runtime.config,
        runtime.store,
        publish,
        broker_ping,
        publish_many=publisher_for(broker, celery_app.conf.task_default_queue),
    )
    ingest.broker_url = broker
    return create_app(ingest)
