"""The ops routes of the webhook server: ``/status`` (HTML), ``/status.json`` and ``/metrics``.

``/status`` and ``/status.json`` sit behind the admin token ``ACW_ADMIN_TOKEN``: an
``Authorization: Bearer <token>`` header, or ``?token=<token>`` once, which sets an HttpOnly
cookie and redirects to the bare URL (so the token leaves the address bar and the history).
A wrong or missing token is 401; with no token configured both routes are 404, so a server
deployed without one exposes nothing. The page is plain server-rendered HTML that refreshes
itself; phone numbers are masked to their last four digits.

``/metrics`` is Prometheus' text format; open unless ``ACW_METRICS_TOKEN`` is set (then it
wants that bearer token, which Prometheus' ``authorization`` scrape setting sends).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from acw_sync.config import AppConfig
from acw_sync.logs import mask_phones
from acw_sync.metrics import StateCollector, instrument_webhooks, scrape_registry
from acw_sync.status import BrokerProbe, StatusReport, format_age, gather_status, recent_calls
from acw_sync.store import StateStore

__all__ = ["COOKIE", "instrument_webhooks", "ops_routes"]

COOKIE = "acw_admin"
REFRESH_SECONDS = 5
RECENT_CALLS = 25

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


def _utc(value: float | None) -> str:
    if not value:
        return "-"
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _safe_url(url: Any) -> bool:
    return isinstance(url, str) and url.startswith(("https://", "http://"))


_env = Environment(
    loader=PackageLoader("acw_sync", "templates"),
    autoescape=select_autoescape(["html"]),
)
_env.filters.update(utc=_utc, duration=format_age, mask=mask_phones, safe_url=_safe_url)


def _cookie_value(token: str) -> str:
    """What the cookie holds: derived from the token, so rotating the token logs everyone out."""
    return hmac.new(token.encode(), b"acw-sync status page", hashlib.sha256).hexdigest()


def _unauthorized(html: bool) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="acw-sync"', **_HEADERS}
    if html:
        return HTMLResponse(
            "<!doctype html><title>401 Unauthorized</title><h1>401 Unauthorized</h1>"
            "<p>Wrong or missing admin token. Open <code>/status?token=...</code> with the "
            "value of ACW_ADMIN_TOKEN.</p>",
            status_code=401,
            headers=headers,
        )
    return JSONResponse({"error": "wrong or missing admin token"}, 401, headers=headers)


def _check(request: Request, token: str | None, html: bool) -> Response | None:
    """None when the request may see the page, else the answer to send."""
    if not token:
        return JSONResponse({"error": "not found"}, 404)
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    query = request.query_params.get("token")
    if query is not None:
        if not hmac.compare_digest(query.encode(), token.encode()):
            return _unauthorized(html)
        response = RedirectResponse(request.url.path, status_code=303, headers=_HEADERS)
        secure = (
            request.url.scheme == "https"
            or request.headers.get("x-forwarded-proto", "").lower() == "https"
        )
        response.set_cookie(
            COOKIE, _cookie_value(token), httponly=True, samesite="strict", secure=secure, path="/"
        )
        return response
    cookie = request.cookies.get(COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), _cookie_value(token).encode()):
        return None
    return _unauthorized(html)


def ops_routes(
    store: StateStore,
    config: AppConfig,
    broker_url: str | None,
    *,
    admin_token: str | None = None,
    metrics_token: str | None = None,
) -> list[Route]:
    """The ``/status``, ``/status.json`` and ``/metrics`` routes over this server's state.

    ``broker_url`` is read for queue depths (None leaves them empty). Tokens default to
    ``ACW_ADMIN_TOKEN`` and ``ACW_METRICS_TOKEN``.
    """
    broker = BrokerProbe(broker_url) if broker_url else None
    admin_token = admin_token or os.environ.get("ACW_ADMIN_TOKEN") or None
    metrics_token = metrics_token or os.environ.get("ACW_METRICS_TOKEN") or None

    def report() -> StatusReport:
        return gather_status(store, config, broker)

    def _calls() -> list[Any]:
        return recent_calls(store, config, RECENT_CALLS, mask=mask_phones)

    collector = StateCollector(lambda: report().gauges())

    async def in_thread(fn: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(fn)

    async def status_html(request: Request) -> Response:
        refused = _check(request, admin_token, html=True)
        if refused is not None:
            return refused

        def render() -> str:
            figures = report()
            return _env.get_template("status.html").render(
                report=figures,
                calls=_calls() if figures.state_ok else [],
                connectors=list(config.connectors),
                refresh=REFRESH_SECONDS,
            )

        return HTMLResponse(await in_thread(render), headers=_HEADERS)

    async def status_json(request: Request) -> Response:
        refused = _check(request, admin_token, html=False)
        if refused is not None:
            return refused

        def build() -> dict[str, Any]:
            figures = report()
            calls = _calls() if figures.state_ok else []
            return {**figures.to_dict(), "recent_calls": [c.__dict__ for c in calls]}

        return JSONResponse(await in_thread(build), headers={"Cache-Control": "no-store"})

    async def metrics(request: Request) -> Response:
        if metrics_token:
            given = request.headers.get("authorization", "").partition(" ")[2].strip()
            if not hmac.compare_digest(given.encode(), metrics_token.encode()):
                return JSONResponse({"error": "wrong or missing metrics token"}, 401)
        body = await in_thread(lambda: generate_latest(scrape_registry(collector)))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/status", status_html, methods=["GET"]),
        Route("/status.json", status_json, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
