"""HubSpot connector settings: the ``options`` mapping of a ``type: hubspot`` connector instance.

Two ways to authenticate, exactly one of which must be configured:

* a private-app (static) access token: ``access_token``;
* an OAuth app: ``client_id``, ``client_secret`` and ``refresh_token``; the connector exchanges
  the refresh token for short-lived access tokens and renews them before they run out.

Every secret is a :class:`~pydantic.SecretStr`; give them as ``${ENV}`` in the YAML file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, model_validator

from acw_sync.connector import ConnectorConfig

__all__ = ["DEFAULT_FOLLOWUP_KEY_PROPERTY", "HubSpotConfig", "Tier"]

Tier = Literal[100, 110, 190, 250]
"""Requests per 10 s: 100 Free/Starter, 190 Professional/Enterprise, 250 with the limit pack,
110 for a public (OAuth marketplace) app per installing account."""

DEFAULT_FOLLOWUP_KEY_PROPERTY = "acw_followup_key"


class HubSpotConfig(ConnectorConfig):
    # A model-level error would otherwise echo the whole options mapping, tokens included.
    model_config = ConfigDict(hide_input_in_errors=True)

    # -- authentication -------------------------------------------------------------------------
    access_token: SecretStr | None = None
    """A private-app access token (``pat-...``)."""
    client_id: str | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    """OAuth: exchanged for access tokens at ``/oauth/v1/token``; a rotated one is kept."""
    refresh_margin: float = Field(default=300.0, ge=0)
    """Seconds before an OAuth access token expires at which it is renewed."""

    # -- where --------------------------------------------------------------------------------
    host: str = "https://api.hubapi.com"
    """The API host for hubspot-api-client (``Configuration.host``); a proxy or an emulator."""
    base_url: str | None = None
    """Host for raw requests to endpoints the client does not wrap; defaults to ``host``."""
    portal_id: int | None = None
    """The HubSpot account (hub) id; only used to build record links."""
    app_url: str = "https://app.hubspot.com"
    timeout: float = Field(default=15.0, gt=0)

    # -- limits -------------------------------------------------------------------------------
    tier: Tier = 100
    """The account's burst limit per 10 seconds (see ``Tier``)."""
    search_per_second: float = Field(default=4.0, gt=0, le=5)
    """CRM search is limited to 5 requests/s per account; stay a little under."""
    max_limiter_wait: float = Field(default=10.0, ge=0)
    """Longest the in-process limiter blocks before raising ``RateLimited`` instead."""
    account_timezone: str = "UTC"
    """The daily limit resets at midnight in the account's time zone (IANA name)."""

    # -- matching and associations --------------------------------------------------------------
    company_fallback: bool = False
    """When no contact has the number, look for a company whose ``phone`` is it."""
    associate_company: bool = True
    """Also associate the call (182) and task (192) with the contact's primary company."""
    associate_deals: bool = False
    """Also associate the call (206) with the open deals of the contact (up to ``max_deals``)."""
    max_deals: int = Field(default=3, ge=1, le=20)
    new_contact_firstname: str = "Unknown caller"
    new_contact_lastname: str = ""

    # -- calls and tasks ------------------------------------------------------------------------
    default_owner_id: str | None = None
    """Owner for calls and tasks when the agent has no HubSpot owner (an owner id, not user id)."""
    dispositions: dict[str, str] = Field(default_factory=dict)
    """Extra or overriding call outcome labels -> GUIDs (the portal's are read at run time)."""
    outcome_labels: dict[str, str] = Field(default_factory=dict)
    """Canonical outcome/resolution (``completed``, ``voicemail``...) -> HubSpot outcome label."""
    task_status: Literal["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"] = (
        "NOT_STARTED"
    )
    followup_key_property: str = DEFAULT_FOLLOWUP_KEY_PROPERTY
    """A single-line text property on Tasks holding the follow-up key (idempotency).

    HubSpot has no external-id property on tasks: create this one once (Settings > Properties >
    Task properties). ``acw-sync connectors test`` checks that it exists."""

    @model_validator(mode="after")
    def _one_auth(self) -> HubSpotConfig:
        oauth = [self.client_id, self.client_secret, self.refresh_token]
        if self.access_token is None and not all(oauth):
            raise ValueError(
                "set either access_token (private app) or client_id, client_secret and "
                "refresh_token (OAuth app)"
            )
        if self.access_token is not None and any(oauth):
            raise ValueError("set access_token or the OAuth settings, not both")
        return self

    @property
    def oauth(self) -> bool:
        return self.access_token is None

    @property
    def raw_base_url(self) -> str:
        return (self.base_url or self.host).rstrip("/")
