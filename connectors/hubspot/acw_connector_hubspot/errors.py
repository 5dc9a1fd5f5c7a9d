"""HubSpot's error answers as :mod:`acw_sync.errors` intents.

hubspot-api-client gives each sub-package its own ``ApiException`` (no common base), so every
one we call is listed in :data:`API_EXCEPTIONS`; :func:`error_from_response` is the one place
where a status and HubSpot's body (``category``, ``policyName``, ``context``) become an intent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import hubspot.crm.associations.v4.exceptions
import hubspot.crm.companies.exceptions
import hubspot.crm.contacts.exceptions
import hubspot.crm.objects.calls.exceptions
import hubspot.crm.objects.exceptions
import hubspot.crm.objects.notes.exceptions
import hubspot.crm.objects.tasks.exceptions
import hubspot.crm.owners.exceptions
import hubspot.crm.properties.exceptions
import hubspot.oauth.exceptions

from acw_sync.errors import (
    AuthExpired,
    ConnectorError,
    CredentialsInvalid,
    PermanentError,
    QuotaExhausted,
    RateLimited,
    RetryableError,
)

__all__ = [
    "API_EXCEPTIONS",
    "CLIENT_EXCEPTIONS",
    "error_from_response",
    "missing_scopes",
    "parse_body",
]

#: Every ``ApiException`` class of the sub-packages we call (they share no common base).
API_EXCEPTIONS: tuple[type[Exception], ...] = (
    hubspot.crm.objects.exceptions.ApiException,
    hubspot.crm.objects.calls.exceptions.ApiException,
    hubspot.crm.objects.tasks.exceptions.ApiException,
    hubspot.crm.objects.notes.exceptions.ApiException,
    hubspot.crm.contacts.exceptions.ApiException,
    hubspot.crm.companies.exceptions.ApiException,
    hubspot.crm.owners.exceptions.ApiException,
    hubspot.crm.associations.v4.exceptions.ApiException,
    hubspot.crm.properties.exceptions.ApiException,
    hubspot.oauth.exceptions.ApiException,
)
#: Client-side exceptions (bad arguments) of the same sub-packages.
CLIENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    hubspot.crm.objects.exceptions.OpenApiException,
    hubspot.crm.owners.exceptions.OpenApiException,
    hubspot.crm.associations.v4.exceptions.OpenApiException,
    hubspot.crm.properties.exceptions.OpenApiException,
    hubspot.oauth.exceptions.OpenApiException,
)


def parse_body(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"message": raw[:500]}
        return parsed if isinstance(parsed, dict) else {"message": str(parsed)[:500]}
    return dict(raw) if isinstance(raw, Mapping) else {}


def missing_scopes(body: Mapping[str, Any]) -> list[str]:
    """Scopes named in a 403 ``MISSING_SCOPES`` answer (top-level or per-error context)."""
    contexts = [body.get("context") or {}]
    contexts += [(e or {}).get("context") or {} for e in body.get("errors") or []]
    names: list[str] = []
    for context in contexts:
        for key in ("missingScopes", "requiredGranularScopes", "requiredScopes"):
            for scope in context.get(key) or []:
                if scope not in names:
                    names.append(str(scope))
    return names


def _seconds_to_midnight(timezone: str, now: datetime | None = None) -> float:
    zone = ZoneInfo(timezone)
    local = (now or datetime.now(UTC)).astimezone(zone)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - local).total_seconds())


def error_from_response(
    status: int, raw_body: Any, headers: Mapping[str, str], *, what: str, timezone: str = "UTC"
) -> ConnectorError:
    """HubSpot's answer ``status``/``body`` as the error the core acts on.

    401 -> :class:`AuthExpired` (the client refreshes once, then reports
    :class:`CredentialsInvalid`); 403 -> :class:`CredentialsInvalid` (naming missing scopes);
    429 -> :class:`RateLimited` (SECONDLY / TEN_SECONDLY, after the interval) or
    :class:`QuotaExhausted` (DAILY, until midnight in the account's zone); 5xx, 0 and 423 ->
    :class:`RetryableError`; other 4xx -> :class:`PermanentError` with HubSpot's message.
    """
    body = parse_body(raw_body)
    message = str(body.get("message") or "")[:1000] or None
    category = str(body.get("category") or body.get("errorType") or "")
    lower = {k.lower(): v for k, v in headers.items()}
    kw: dict[str, Any] = {"crm_message": message, "status": status}
    if category:
        kw["details"] = {"category": category, "correlationId": body.get("correlationId")}
    if status == 401:
        return AuthExpired(f"HubSpot refused the access token ({what})", **kw)
    if status == 403:
        scopes = missing_scopes(body)
        if category == "MISSING_SCOPES" or scopes:
            named = ", ".join(scopes) or "unknown"
            return CredentialsInvalid(
                f"HubSpot app is missing scopes for {what}: {named}",
                crm_message=message,
                status=status,
                details={"category": "MISSING_SCOPES", "missing_scopes": scopes},
            )
        return CredentialsInvalid(f"HubSpot refused {what} (403 {category})", **kw)
    if status == 429:
        policy = str(body.get("policyName") or "")
        if policy.upper() == "DAILY":
            wait = _seconds_to_midnight(timezone)
            return QuotaExhausted(
                f"HubSpot daily API limit reached ({what})", retry_after=wait, **kw
            )
        retry_after: float | None = None
        if lower.get("retry-after", "").replace(".", "", 1).isdigit():
            retry_after = float(lower["retry-after"])
        elif policy.upper().startswith("TEN_SECONDLY"):
            interval = lower.get("x-hubspot-ratelimit-interval-milliseconds", "10000")
            retry_after = int(interval) / 1000 if interval.isdigit() else 10.0
        else:
            retry_after = 1.0
        return RateLimited(
            f"HubSpot rate limit ({policy or 'unknown policy'}) on {what}",
            retry_after=retry_after,
            **kw,
        )
    if status == 0 or status >= 500 or status in (408, 423):
        return RetryableError(f"HubSpot unavailable ({status}) on {what}", **kw)
    if status == 404:
        return PermanentError(f"HubSpot object not found ({what})", **kw)
    return PermanentError(f"HubSpot rejected {what} ({status} {category})".strip(), **kw)
