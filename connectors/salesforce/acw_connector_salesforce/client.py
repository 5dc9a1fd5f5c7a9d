"""The wire to one Salesforce org, through simple-salesforce: login, requests, error intents.

What this module owns and why it is shaped so:

* **Login is ours.** The four flows post to the configured ``login_url`` (simple-salesforce
  builds ``https://{domain}.salesforce.com`` itself, which rules out a full My Domain or a
  local emulator URL). The resulting token drives a ``Salesforce`` object in *direct* mode, so
  the library never refreshes sessions on its own: its ``SFType`` helpers retry a 401 without
  bound and recurse until ``RecursionError`` when the 401 persists. We re-authenticate exactly
  once per request and report :class:`~acw_sync.errors.AuthExpired` if the 401 comes back.
* **Errors become intents** in :func:`error_intent`, the one place that reads Salesforce's
  ``errorCode`` / ``statusCode``.
* **Usage** comes from every response's ``Sforce-Limit-Info`` header through a session hook
  (simple-salesforce parses it only on some call paths, and on a throwaway ``SFType``).

It knows nothing of calls or tasks: see :mod:`.mapping` and :mod:`.connector`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, TypeVar
from urllib.parse import quote

import jwt
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
)
from simple_salesforce.login import soap_login, token_login

from acw_connector_salesforce.config import SalesforceConfig
from acw_sync.errors import (
    AuthExpired,
    ConnectorError,
    CredentialsInvalid,
    PermanentError,
    QuotaExhausted,
    RateLimited,
    RetryableError,
)

__all__ = ["ApiUsage", "SalesforceClient", "SalesforceFailure", "error_intent", "soql_quote"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Error codes worth another try later, with the same request.
RETRYABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG", "QUERY_TIMEOUT"}
)
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class ApiUsage:
    """The org's rolling 24-hour API usage, from the last ``Sforce-Limit-Info`` header."""

    used: int
    limit: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass(frozen=True)
class SalesforceFailure:
    """One error as Salesforce reported it: the HTTP status and the first error item."""

    status: int | None
    code: str
    message: str
    fields: tuple[str, ...] = ()


def soql_quote(value: str) -> str:
    """A SOQL string literal: only ``\\`` and ``'`` need escaping."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def failure_of(status: int | None, content: Any) -> SalesforceFailure:
    """Read Salesforce's error list (``errorCode``, or ``statusCode`` inside collections)."""
    if status == 300:  # an upsert whose external id matches several records: a list of URLs
        return SalesforceFailure(
            status, "MULTIPLE_CHOICES", f"several records share this external id: {content}"
        )
    if isinstance(content, Mapping) and isinstance(content.get("compositeResponse"), list):
        # A composite request refused as a whole (e.g. LIMIT_EXCEEDED, more than 25
        # subrequests) still answers in the composite shape, with one item.
        answers = content["compositeResponse"]
        content = answers[0].get("body") if answers and isinstance(answers[0], Mapping) else None
    item: Any = content[0] if isinstance(content, list) and content else content
    if isinstance(item, Mapping):
        code = str(item.get("errorCode") or item.get("statusCode") or "UNKNOWN")
        fields = tuple(str(f) for f in item.get("fields") or ())
        return SalesforceFailure(status, code, str(item.get("message", "")), fields)
    return SalesforceFailure(status, f"HTTP_{status}", str(content)[:500])


def error_intent(
    failure: SalesforceFailure, *, config: SalesforceConfig, what: str
) -> ConnectorError:
    """Salesforce's answer -> what the core should do about it.

    ========================================  ================================================
    ``REQUEST_LIMIT_EXCEEDED`` "TotalRequests" :class:`QuotaExhausted`, ``quota_retry_after``
    ``REQUEST_LIMIT_EXCEEDED`` (concurrency)   :class:`RateLimited`, ``concurrency_retry_after``
    ``UNABLE_TO_LOCK_ROW``, 5xx                :class:`RetryableError`
    ``INVALID_SESSION_ID`` (after re-auth)     :class:`AuthExpired`
    failed login                               :class:`CredentialsInvalid`
    anything else (validation, bad field...)   :class:`PermanentError`, Salesforce's message
    ========================================  ================================================
    """
    kw: dict[str, Any] = {
        "crm_message": f"{failure.code}: {failure.message}",
        "status": failure.status,
        "details": {"error_code": failure.code, "fields": list(failure.fields)},
    }
    if failure.code == "REQUEST_LIMIT_EXCEEDED":
        if "concurrent" in failure.message.lower():
            return RateLimited(
                f"Salesforce concurrent request limit while {what}",
                retry_after=config.concurrency_retry_after,
                **kw,
            )
        return QuotaExhausted(
            f"Salesforce org API quota exhausted while {what}",
            retry_after=config.quota_retry_after,
            **kw,
        )
    if failure.code in RETRYABLE_CODES or (failure.status or 0) >= 500:
        return RetryableError(f"Salesforce busy or unavailable while {what}", **kw)
    if failure.code == "INVALID_SESSION_ID":
        return AuthExpired(f"Salesforce session rejected after re-authentication ({what})", **kw)
    if failure.code in {"INVALID_LOGIN", "invalid_client", "invalid_grant", "INVALID_AUTH"}:
        return CredentialsInvalid(f"Salesforce refused the credentials ({what})", **kw)
    return PermanentError(f"Salesforce rejected {what}: {failure.message}", **kw)


class _Transport(HTTPAdapter):
    """Adds the default timeout simple-salesforce never passes, and pins the CA bundle.

    The bundle is pinned here rather than on ``Session.verify`` because requests lets
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` from the environment override the session's
    setting, which would silently drop the configured bundle on many hosts.
    """

    def __init__(self, timeout: float, ca_bundle: str | None) -> None:
        super().__init__()
        self.timeout = timeout
        self.ca_bundle = ca_bundle

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:  # type: ignore[override]
        if kw.get("timeout") is None:
            kw["timeout"] = self.timeout
        if self.ca_bundle:
            kw["verify"] = self.ca_bundle
        return super().send(request, **kw)


class SalesforceClient:
    """One authenticated session to one org, shared by the threads of one worker."""

    def __init__(self, config: SalesforceConfig) -> None:
        self.config = config
        self.session = requests.Session()
        self.session.mount("https://", _Transport(config.timeout, config.ca_bundle))
        self.session.hooks["response"].append(self._read_limit_info)
        self.api_usage: ApiUsage | None = None
        self.logins = 0
        self._sf: Salesforce | None = None
        self._lock = threading.Lock()

    # -- session ---------------------------------------------------------------------------
    def _read_limit_info(self, response: requests.Response, *_: Any, **__: Any) -> None:
        match = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.api_usage = ApiUsage(int(match.group(1)), int(match.group(2)))

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce object, logging in on first use."""
        with self._lock:
            if self._sf is None:
                self._sf = self._connect()
            return self._sf

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}"

    def _connect(self) -> Salesforce:
        token, instance = self._login()
        return Salesforce(
            session_id=token,
            instance_url=instance if "://" in instance else f"https://{instance}",
            version=self.config.api_version,
            session=self.session,
            object_pairs_hook=dict,
        )

    def _login(self) -> tuple[str, str]:
        """(access token, instance) by the configured flow. Raises the intents."""
        c = self.config
        if c.auth == "token":
            assert c.access_token is not None and c.instance_url is not None
            return c.access_token.get_secret_value(), c.instance_url
        self.logins += 1
        token_url = f"{c.login_url}/services/oauth2/token"
        try:
            if c.auth == "client_credentials":
                assert c.client_id and c.client_secret
                data = {
                    "grant_type": "client_credentials",
                    "client_id": c.client_id,
                    "client_secret": c.client_secret.get_secret_value(),
                }
                return self._token_login(token_url, data)
            if c.auth == "jwt":
                assert c.client_id and c.username and c.private_key
                claims = {
                    "iss": c.client_id,
                    "sub": c.username,
                    "aud": c.jwt_audience or c.login_url,
                    "exp": int(time.time()) + 180,
                }
                assertion = jwt.encode(claims, c.private_key.get_secret_value(), "RS256")
                data = {
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": assertion,
                }
                return self._token_login(token_url, data)
            assert c.username and c.password and c.security_token
            body = _SOAP_LOGIN.format(
                username=escape(c.username),
                secret=escape(c.password.get_secret_value() + c.security_token.get_secret_value()),
            )
            headers = {"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"}
            soap_url = f"{c.login_url}/services/Soap/u/{c.api_version}"
            return soap_login(soap_url, body, headers, None, self.session)
        except SalesforceAuthenticationFailed as exc:
            code = getattr(exc, "code", None)
            message = str(getattr(exc, "message", "") or "")
            if isinstance(code, int) and code >= 500:
                raise RetryableError(
                    "Salesforce login service unavailable", status=code, crm_message=message[:300]
                ) from None
            raise CredentialsInvalid(
                f"Salesforce login failed ({c.auth})",
                status=401,
                crm_message=f"{code}: {message}"[:500],
            ) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise RetryableError(f"Salesforce login unreachable: {type(exc).__name__}") from None

    def _token_login(self, token_url: str, data: dict[str, str]) -> tuple[str, str]:
        # simple-salesforce warns "user hasn't approved this consumer" with an authorize URL
        # built from a salesforce.com domain; the admin gets that hint from our log instead.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                token, instance = token_login(
                    token_url, data, "", self.config.client_id or "", None, None, self.session
                )
            finally:
                if caught:
                    log.warning(
                        "salesforce login: the connected app may need to be approved for this "
                        "user (pre-authorize it in Setup, or visit %s/services/oauth2/authorize)",
                        self.config.login_url,
                    )
        return str(token), str(instance)

    def reauthenticate(self) -> None:
        with self._lock:
            self._sf = None
        if self.config.auth == "token":
            raise AuthExpired("the Salesforce access token expired (auth: token cannot renew)")
        _ = self.sf

    # -- requests ----------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        """Run ``fn`` against the org; on an expired session log in again once and retry."""
        for attempt in (1, 2):
            sf = self.sf
            try:
                return fn(sf)
            except SalesforceExpiredSession as exc:
                failure = failure_of(exc.status, exc.content)
                if attempt == 2 or failure.code != "INVALID_SESSION_ID":
                    raise AuthExpired(
                        f"Salesforce session rejected after re-authentication ({what})",
                        status=401,
                        crm_message=f"{failure.code}: {failure.message}",
                    ) from None
                log.info("salesforce session expired; logging in again (%s)", what)
                self.reauthenticate()
            except SalesforceError as exc:
                raise error_intent(
                    failure_of(exc.status, exc.content), config=self.config, what=what
                ) from None
            except RecursionError:
                raise AuthExpired(f"Salesforce kept refusing the session ({what})") from None
            except requests.Timeout:
                raise RetryableError(f"Salesforce timed out while {what}") from None
            except requests.ConnectionError as exc:
                raise RetryableError(
                    f"Salesforce unreachable while {what}: {type(exc).__name__}"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def query(self, soql: str, what: str) -> list[dict[str, Any]]:
        result = self.call(what, lambda sf: sf.query_all(soql))
        return [dict(r) for r in result.get("records", [])]

    def create(self, sobject: str, body: Mapping[str, Any], what: str) -> str:
        result = self.call(what, lambda sf: getattr(sf, sobject).create(dict(body)))
        return str(result["id"])

    def update(self, sobject: str, record_id: str, body: Mapping[str, Any], what: str) -> None:
        self.call(what, lambda sf: getattr(sf, sobject).update(record_id, dict(body)))

    def upsert(
        self, sobject: str, field: str, value: str, body: Mapping[str, Any], what: str
    ) -> tuple[str, bool]:
        """Upsert on an external id: (record id, created). The value is URL-quoted here
        because ``SFType.upsert`` joins it onto the URL as is."""
        path = f"{field}/{quote(value, safe='')}"
        response = self.call(
            what, lambda sf: getattr(sf, sobject).upsert(path, dict(body), raw_response=True)
        )
        if response.status_code == 204:  # API < 46: an update answers without a body
            return self.get_by_external_id(sobject, field, value, what) or "", False
        data = response.json()
        return str(data["id"]), bool(data.get("created", response.status_code == 201))

    def get_by_external_id(self, sobject: str, field: str, value: str, what: str) -> str | None:
        path = f"{field}/{quote(value, safe='')}"
        try:
            record = self.call(what, lambda sf: getattr(sf, sobject).get(path))
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return str(record["Id"])

    def describe(self, sobject: str) -> dict[str, Any]:
        return dict(self.call(f"describing {sobject}", lambda sf: getattr(sf, sobject).describe()))

    def rest(self, method: str, path: str, what: str, body: Any = None) -> Any:
        """A resource under ``/services/data/vXX.X/`` (composite, collections, limits)."""
        return self.call(what, lambda sf: sf.restful(path, method=method, json=body))

    def versions(self) -> list[str]:
        """API versions the org serves (``GET /services/data/``, no auth needed)."""

        def fetch(sf: Salesforce) -> list[str]:
            response = self.session.get(f"https://{sf.sf_instance}/services/data/")
            if response.status_code >= 300:
                raise SalesforceError(response.url, response.status_code, "versions", b"")
            return [str(v["version"]) for v in response.json()]

        return self.call("listing API versions", fetch)

    def close(self) -> None:
        self.session.close()


_SOAP_LOGIN = """<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header>
    <urn:CallOptions><urn:client>acw-sync</urn:client></urn:CallOptions>
  </env:Header>
  <env:Body>
    <n1:login xmlns:n1="urn:partner.soap.sforce.com">
      <n1:username>{username}</n1:username>
      <n1:password>{secret}</n1:password>
    </n1:login>
  </env:Body>
</env:Envelope>"""
