"""Access tokens: a private app's static token, or OAuth tokens renewed before they expire.

OAuth access tokens live 30 minutes; :class:`TokenSource` exchanges the refresh token at
``/oauth/v1/token`` when the current one is within ``refresh_margin`` seconds of expiry (or
when HubSpot answers 401), keeps a rotated refresh token, and hands every token it sees to the
core's log scrubber.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import hubspot
import urllib3
from pydantic import SecretStr

from acw_connector_hubspot.config import HubSpotConfig
from acw_connector_hubspot.errors import API_EXCEPTIONS, error_from_response, parse_body
from acw_sync.errors import CredentialsInvalid, RetryableError
from acw_sync.logs import register_secrets

__all__ = ["TokenSource", "no_retry"]

log = logging.getLogger(__name__)


class TokenSource:
    """The current access token; for OAuth, renewed ``refresh_margin`` s before it expires."""

    def __init__(self, config: HubSpotConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self.access_token: str | None = (
            config.access_token.get_secret_value() if config.access_token else None
        )
        self.refresh_token = config.refresh_token
        self.expires_at: float | None = None
        self.refreshes = 0
        # So that the core's log scrubber removes them should any text ever carry one.
        register_secrets(
            s.get_secret_value()
            for s in (config.access_token, config.client_secret, config.refresh_token)
            if s is not None
        )

    def needs_refresh(self) -> bool:
        if not self.config.oauth:
            return False
        if self.access_token is None or self.expires_at is None:
            return True
        return self.clock() >= self.expires_at - self.config.refresh_margin

    def refresh(self) -> str:
        """Exchange the refresh token for a new access token (keeping a rotated refresh token)."""
        config = self.config
        assert config.client_secret is not None and self.refresh_token is not None
        api = hubspot.HubSpot(host=config.host, debug=False, retry=no_retry()).oauth.tokens_api
        try:
            answer = api.create(
                grant_type="refresh_token",
                client_id=config.client_id,
                client_secret=config.client_secret.get_secret_value(),
                refresh_token=self.refresh_token.get_secret_value(),
                _request_timeout=config.timeout,
            )
        except API_EXCEPTIONS as exc:
            status = int(getattr(exc, "status", 0) or 0)
            if 400 <= status < 500 and status != 429:
                body = parse_body(getattr(exc, "body", None))
                raise CredentialsInvalid(
                    "HubSpot refused the OAuth refresh token",
                    crm_message=str(body.get("message") or "")[:500] or None,
                    status=status,
                ) from None
            raise error_from_response(
                status, getattr(exc, "body", None), {}, what="token refresh"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(
                f"HubSpot token endpoint unreachable: {type(exc).__name__}"
            ) from None
        self.access_token = str(answer.access_token)
        register_secrets([self.access_token])
        self.expires_at = self.clock() + float(answer.expires_in or 1800)
        if answer.refresh_token:
            self.refresh_token = SecretStr(str(answer.refresh_token))
            register_secrets([str(answer.refresh_token)])
        self.refreshes += 1
        log.info("hubspot access token renewed", extra={"expires_in": answer.expires_in})
        return self.access_token

    def current(self, *, force: bool = False) -> str:
        with self._lock:
            if force or self.needs_refresh():
                return self.refresh()
            assert self.access_token is not None
            return self.access_token


def no_retry() -> urllib3.util.retry.Retry:
    # Connection errors may be retried (nothing was sent); reads and statuses never are.
    return urllib3.util.retry.Retry(
        total=2, connect=2, read=0, status=0, other=0, redirect=0, raise_on_status=False
    )
