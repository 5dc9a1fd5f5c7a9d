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

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from acw_sync.config import AppConfig
from acw_sync.endpoint import (
    BODY_TIMEOUT,
    MAX_JSON_DEPTH,
    IngestApp,
    RequestTimeout,
    WebhookEndpoint,
    check_json_depth,
    error_response,
)
from acw_sync.enqueue import Enqueuer
from acw_sync.errors import ConfigError
from acw_sync.model import CallEvent
from acw_sync.openapi import openapi_document
from acw_sync.provider import Provider, available_providers
from acw_sync.publish import RedisPublisher, publisher_for
from acw_sync.status_page import ops_routes
from acw_sync.store import StateStore

__all__ = [
    "BODY_TIMEOUT",
    "MAX_JSON_DEPTH",
    "Ingest",
    "RequestTimeout",
    "check_json_depth",
    "create_app",
]

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


def create_app(ingest: Ingest) -> IngestApp:
    """The server's ASGI app: the webhook endpoint, health, OpenAPI and the ops routes."""
    publisher = ingest.publish_many
    enqueuer = Enqueuer(
        ingest.store,
        ingest.publish_batch,
        publish_async=publisher.publish_async if isinstance(publisher, RedisPublisher) else None,
    )
    webhooks = WebhookEndpoint(
        ingest.providers,
        enqueuer,
        max_body_bytes=ingest.config.server.max_body_bytes,
        public_base_url=ingest.config.server.public_base_url,
        body_timeout=BODY_TIMEOUT,
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
        response = error_response(status, str(getattr(exc, "detail", "") or "bad request"))
        response.headers.update(headers)
        return response

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path)
        return error_response(500, "internal error")

    app = Starlette(
        routes=[
            # POSTs are answered by IngestApp before routing; the route gives other methods
            # their 405 (and serves a POST that reaches it all the same).
            Route("/webhooks/{provider}", webhooks, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            *ops_routes(ingest.store, ingest.config, ingest.broker_url),
        ],
        exception_handlers={HTTPException: on_http_error, Exception: on_error},
    )
    return IngestApp(webhooks, app)


def build_app() -> IngestApp:
    """The production app: config, state store and the Celery publisher of this process."""
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
    app = create_app(ingest)
    settle_garbage_collector()
    return app


#: CPython's collector thresholds for the server process (default ``(700, 10, 10)``). At 700
#: the youngest generation is collected every few requests; each collection walks and promotes
#: the objects of every request in flight, so that full collections follow every few thousand
#: webhooks. At 10,000 the collector's share of a webhook's CPU and its pauses shrink several
#: times; cyclic garbage (rare on the request path) waits a little longer.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_garbage_collector() -> None:
    """Tune the collector for serving: call once, when the app is built.

    Everything alive now (modules, config, the app: ~120,000 objects with Celery imported) is
    moved to the permanent generation (``gc.freeze``), so that no full collection walks it
    again; a full collection of the server's heap took tens of milliseconds, the largest part
    of the webhooks' p99 latency. Frozen objects are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
