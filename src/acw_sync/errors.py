"""Errors by intent: every exception says what the caller should do next.

::

    AcwError
    ├── ConfigError              the admin must fix the config (file, key, line, fix)
    ├── WebhookRejected          a bad webhook; answered with its 4xx status and reason
    │   ├── SignatureInvalid     401: missing/bad signature, stale timestamp
    │   ├── PayloadInvalid       400: malformed body (field errors listed)
    │   └── PayloadTooLarge      413
    └── ConnectorError           raised by connectors; the core decides what to do
        ├── RetryableError       try again later (``retry_after`` seconds if the CRM said)
        │   ├── RateLimited      429 / burst limits: wait ``retry_after``
        │   └── QuotaExhausted   daily quota gone: pause the instance until ``retry_after``
        ├── AuthExpired          session/token expired: re-authenticate once, then retry
        ├── CredentialsInvalid   revoked or wrong credentials: dead-letter ("credentials")
        └── PermanentError       the CRM rejected the record: dead-letter with its message

Messages never contain secrets: connectors put the CRM's own message in ``crm_message`` and
the core redacts known secret values before logging (:mod:`acw_sync.redact`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AcwError",
    "AuthExpired",
    "ConfigError",
    "ConnectorError",
    "CredentialsInvalid",
    "PayloadInvalid",
    "PayloadTooLarge",
    "PermanentError",
    "QuotaExhausted",
    "RateLimited",
    "RetryableError",
    "SignatureInvalid",
    "WebhookRejected",
]


class AcwError(Exception):
    """Base of every error acw-sync raises on purpose."""


class ConfigError(AcwError):
    """A configuration problem an admin must fix. ``problems`` lists every one found."""

    def __init__(self, problems: Sequence[str] | str, *, file: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.file = file
        where = f"{file}: " if file else ""
        super().__init__("\n".join(f"{where}{p}" for p in self.problems))


class WebhookRejected(AcwError):
    """A webhook we refuse. ``reason`` is safe to send back to the caller."""

    status = 400

    def __init__(self, reason: str, *, details: Any = None) -> None:
        self.reason = reason
        self.details = details
        super().__init__(reason)


class SignatureInvalid(WebhookRejected):
    status = 401


class PayloadInvalid(WebhookRejected):
    status = 400


class PayloadTooLarge(WebhookRejected):
    status = 413


class ConnectorError(AcwError):
    """Base of connector failures. ``crm_message`` is the CRM's own words, when it gave any."""

    reason = "error"

    def __init__(
        self,
        message: str,
        *,
        crm_message: str | None = None,
        status: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.crm_message = crm_message
        self.status = status
        self.details = dict(details or {})
        super().__init__(message)


class RetryableError(ConnectorError):
    """Transient: timeouts, connection errors, 5xx, lock contention. Retry with backoff."""

    reason = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """The CRM throttled us; ``retry_after`` is how long it asked us to wait."""

    reason = "rate_limited"


class QuotaExhausted(RetryableError):
    """A daily/rolling quota is spent: pause this connector instance for ``retry_after`` s."""

    reason = "quota"


class AuthExpired(ConnectorError):
    """The session or token expired. The connector re-authenticates once before raising this."""

    reason = "auth_expired"


class CredentialsInvalid(ConnectorError):
    """Credentials are wrong or revoked: nothing will work until an admin fixes them."""

    reason = "credentials"


class PermanentError(ConnectorError):
    """The CRM rejected this record (validation, missing field). Retrying will not help."""

    reason = "rejected"
