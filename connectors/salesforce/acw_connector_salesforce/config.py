"""Salesforce connector settings: the ``options`` mapping of a ``type: salesforce`` instance.

Four ways to authenticate, chosen by ``auth``:

* ``token``: an access token and the instance URL (no renewal: an expired token is reported);
* ``client_credentials``: OAuth 2.0 client credentials flow against ``login_url`` (My Domain);
* ``jwt``: OAuth 2.0 JWT bearer flow (connected app certificate, a user to act as);
* ``password``: username, password and security token (SOAP ``login()``).

Secrets are :class:`~pydantic.SecretStr`; give them as ``${ENV}`` or ``<key>_file`` in the YAML.
No option name ends in ``_file`` because the config loader reads such keys as secret files.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from acw_sync.connector import ConnectorConfig

#: Oldest REST API version the connector speaks: sObject Collections (batches) need 42.0;
#: Composite, which carries the customer look-ups, is older.
MIN_API_VERSION = "42.0"

__all__ = ["AuthMode", "CustomerObject", "SalesforceConfig"]

AuthMode = Literal["token", "client_credentials", "jwt", "password"]
CustomerObject = Literal["Contact", "Lead", "Account"]

DEFAULT_PRIORITY: tuple[CustomerObject, ...] = ("Contact", "Lead", "Account")
_REQUIRED: dict[str, tuple[str, ...]] = {
    "token": ("instance_url", "access_token"),
    "client_credentials": ("client_id", "client_secret"),
    "jwt": ("client_id", "username", "private_key"),
    "password": ("username", "password", "security_token"),
}


class SalesforceConfig(ConnectorConfig):
    """Options of one Salesforce org (one connector instance)."""

    auth: AuthMode
    login_url: str = "https://login.salesforce.com"
    """Where to log in: ``https://login.salesforce.com``, ``https://test.salesforce.com`` or
    your My Domain (``https://acme.my.salesforce.com``; required for client credentials)."""
    domain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
    """simple-salesforce style shorthand: ``login``, ``test`` or ``acme.my`` means
    ``https://<domain>.salesforce.com`` as ``login_url``."""
    instance_url: str | None = None
    """The org's URL (``token`` mode); the login flows learn it from the login answer."""
    access_token: SecretStr | None = None
    client_id: str | None = None
    """The connected app's consumer key."""
    client_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    private_key: SecretStr | None = None
    """PEM of the connected app's certificate key (``private_key_file:`` in the YAML)."""
    jwt_audience: str | None = None
    """``aud`` of the JWT; defaults to ``login_url``."""
    api_version: str = Field(default="59.0", pattern=r"^\d{2,3}\.0$")
    """REST API version, at least :data:`MIN_API_VERSION`."""
    ca_bundle: str | None = None
    """A PEM bundle to verify TLS with (TLS-inspecting proxies, the test emulator)."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds per HTTP request; a timeout is retryable."""

    object_priority: list[CustomerObject] = Field(
        default_factory=lambda: list(DEFAULT_PRIORITY), min_length=1
    )
    """Objects searched by phone, in priority order."""
    default_region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    """Region used to read stored national numbers; default: the caller's own country."""
    max_candidates: int = Field(default=20, ge=1, le=200)
    """Most records fetched per object in one phone look-up."""

    external_id_field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]+__c$")
    """A custom Task field marked External ID (and Unique): calls are upserted on it."""
    followup_key_field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]+$")
    """Task field holding a follow-up's key; default ``external_id_field``, else ``CallObject``."""
    relate_account: bool = True
    """Set ``WhatId`` to the Contact's Account."""
    call_status: str = "Completed"
    followup_status: str = "Not Started"
    default_owner_id: str | None = None
    """``OwnerId`` when the agent has no Salesforce user (else the API user owns the Task)."""

    lead_company: str = "Unknown"
    lead_last_name: str = "Caller {number}"
    """``LastName`` of a Lead created for an unknown number; ``{number}`` is the E.164 number."""
    lead_source: str | None = "Phone Inquiry"
    lead_fields: dict[str, Any] = Field(default_factory=dict)
    """Extra fields on created Leads."""

    quota_retry_after: float = Field(default=900.0, gt=0)
    """Seconds to pause the instance when the org's daily API quota is spent."""
    concurrency_retry_after: float = Field(default=5.0, gt=0)
    """Seconds to wait after a concurrent-request limit answer."""

    @field_validator("login_url", "instance_url", "jwt_audience")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL (Salesforce speaks only https)")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _recent_enough(cls, value: str) -> str:
        if float(value) < float(MIN_API_VERSION):
            raise ValueError(
                f"must be {MIN_API_VERSION} or later (customer look-ups use the Composite "
                "resource with query subrequests, batches sObject Collections)"
            )
        return value

    @model_validator(mode="after")
    def _auth_complete(self) -> SalesforceConfig:
        if self.domain:
            if "login_url" in self.model_fields_set:
                raise ValueError("give either domain or login_url, not both")
            self.login_url = f"https://{self.domain}.salesforce.com"
        missing = [name for name in _REQUIRED[self.auth] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"auth {self.auth!r} needs: {', '.join(missing)}")
        return self

    @property
    def key_field(self) -> str:
        """The Task field a follow-up's idempotency key is stored in."""
        return self.followup_key_field or self.external_id_field or "CallObject"

    def secret_values(self) -> list[str]:
        """Every secret this config holds (for redaction and tests)."""
        found = [self.access_token, self.client_secret, self.password, self.security_token]
        found.append(self.private_key)
        return [s.get_secret_value() for s in found if s is not None]
