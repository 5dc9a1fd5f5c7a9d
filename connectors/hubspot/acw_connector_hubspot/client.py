"""The wire: HubSpot's API through hubspot-api-client, with tokens, limits and errors handled.

Every request goes through :meth:`HubSpotClient.call` (or :meth:`~HubSpotClient.raw`): a slot
in the request budget (``limits``), a current access token (``auth``), the
``X-HubSpot-RateLimit-*`` headers read, one retry after a token refresh on 401, and every
sub-package's exceptions turned into :mod:`acw_sync.errors` (``errors``). It knows HubSpot's
paths and shapes, nothing of calls or follow-ups (``mapping``) nor of the connector contract.

hubspot-api-client quirks this module works around (see docs/hubspot.md):

* each sub-package has its own ``ApiException``; they share no base class, so all are listed;
* the client's debug mode logs response bodies (customer data): ``debug`` is forced off;
* urllib3 retries are disabled for reads and statuses: a blind POST retry duplicates creates;
  retries belong to the core, which checks idempotency first;
* ``api_request`` ignores ``host`` and has no timeout: raw calls use our own session on
  ``base_url``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hubspot
import hubspot.crm.associations.v4 as hs_assoc
import hubspot.crm.objects as hs_objects
import requests
import urllib3

from acw_connector_hubspot.auth import TokenSource, no_retry
from acw_connector_hubspot.config import HubSpotConfig
from acw_connector_hubspot.errors import (
    API_EXCEPTIONS,
    CLIENT_EXCEPTIONS,
    error_from_response,
)
from acw_connector_hubspot.limits import BURST, SEARCH, RateLimiter, RateLimitStatus, WindowLimiter
from acw_sync.errors import (
    AuthExpired,
    ConnectorError,
    CredentialsInvalid,
    PermanentError,
    QuotaExhausted,
    RetryableError,
)

__all__ = ["BatchOutcome", "HubSpotClient"]

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """A batch write's answer: the objects written and the per-record errors (207)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class HubSpotClient:
    """One HubSpot account, as typed calls that raise :mod:`acw_sync.errors` only."""

    def __init__(
        self,
        config: HubSpotConfig,
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.tokens = TokenSource(config, clock)
        self.limiter: RateLimiter = limiter or WindowLimiter(
            {
                # 5% below the tier: the window boundary is fuzzy by the network latency too.
                BURST: (max(1, int(config.tier * 0.95)), 10.0),
                # Searches are paced evenly rather than allowed in bursts: our clock and
                # HubSpot's disagree by the latency, enough to overrun a one-second window.
                SEARCH: (1, 1.0 / config.search_per_second),
            },
            max_wait=config.max_limiter_wait,
        )
        self.rate_limit = RateLimitStatus()
        self.paused_until: float | None = None
        self._apis: dict[str, Any] = {}
        self._session = requests.Session()
        for name in ("hubspot", "urllib3"):
            # Debug logging would write request and response bodies: customer data.
            logging.getLogger(name).setLevel(max(logging.getLogger(name).level, logging.INFO))

    # -- plumbing ---------------------------------------------------------------------------
    def _api(self, name: str) -> Any:
        """A cached API object (one connection pool each); tokens are swapped in place."""
        api = self._apis.get(name)
        if api is None:
            sdk = hubspot.HubSpot(
                access_token=self.tokens.access_token or "pending",
                host=self.config.host,
                debug=False,
                retry=no_retry(),
            )
            target: Any = sdk
            for part in name.split("."):
                target = getattr(target, part)
            api = self._apis[name] = target
        return api

    def _set_token(self, token: str) -> None:
        for api in self._apis.values():
            api.api_client.configuration.access_token = token

    def _before(self, bucket: str) -> None:
        if self.paused_until is not None:
            left = self.paused_until - self.clock()
            if left > 0:
                raise QuotaExhausted("HubSpot daily API limit reached (paused)", retry_after=left)
            self.paused_until = None
        if self.tokens.needs_refresh():
            self._set_token(self.tokens.current())
        self.limiter.acquire(bucket)

    def _fail(self, error: ConnectorError) -> ConnectorError:
        if isinstance(error, QuotaExhausted) and error.retry_after:
            self.paused_until = self.clock() + error.retry_after
        return error

    def call(
        self, what: str, fn: Callable[[], tuple[Any, int, Any]], *, bucket: str = BURST
    ) -> Any:
        """Run one ``*_with_http_info`` call: budget, token, headers, errors, one 401 refresh."""
        for attempt in range(2):
            self._before(bucket)
            try:
                data, _status, headers = fn()
            except API_EXCEPTIONS as exc:
                status = int(getattr(exc, "status", 0) or 0)
                headers = dict(getattr(exc, "headers", None) or {})
                if bucket != SEARCH:
                    self.rate_limit.update(headers)
                error = error_from_response(
                    status,
                    getattr(exc, "body", None),
                    headers,
                    what=what,
                    timezone=self.config.account_timezone,
                )
                if isinstance(error, AuthExpired):
                    if attempt == 0 and self.config.oauth:
                        self._set_token(self.tokens.current(force=True))
                        continue
                    raise CredentialsInvalid(
                        f"HubSpot refused the access token ({what})",
                        crm_message=error.crm_message,
                        status=401,
                    ) from None
                raise self._fail(error) from None
            except CLIENT_EXCEPTIONS as exc:
                raise PermanentError(f"invalid HubSpot request for {what}: {exc}") from None
            except urllib3.exceptions.HTTPError as exc:
                raise RetryableError(
                    f"HubSpot unreachable on {what}: {type(exc).__name__}"
                ) from None
            if bucket != SEARCH and headers is not None:
                self.rate_limit.update(dict(headers))
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def raw(self, what: str, method: str, path: str, *, body: Any = None) -> Any:
        """A request to an endpoint the client does not wrap, on ``base_url``."""
        for attempt in range(2):
            self._before(BURST)
            token = self.tokens.access_token or ""
            try:
                response = self._session.request(
                    method,
                    self.config.raw_base_url + path,
                    json=body,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=self.config.timeout,
                )
            except requests.RequestException as exc:
                raise RetryableError(
                    f"HubSpot unreachable on {what}: {type(exc).__name__}"
                ) from None
            self.rate_limit.update(response.headers)
            if response.ok:
                return response.json() if response.content else None
            error = error_from_response(
                response.status_code,
                response.text,
                response.headers,
                what=what,
                timezone=self.config.account_timezone,
            )
            if isinstance(error, AuthExpired):
                if attempt == 0 and self.config.oauth:
                    self._set_token(self.tokens.current(force=True))
                    continue
                raise CredentialsInvalid(f"HubSpot refused the access token ({what})", status=401)
            raise self._fail(error)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._session.close()
        for api in self._apis.values():
            api.api_client.rest_client.pool_manager.clear()
        self._apis.clear()

    # -- CRM objects --------------------------------------------------------------------------
    @staticmethod
    def _associations(pairs: Iterable[tuple[str, int]]) -> list[Any]:
        return [
            hs_objects.PublicAssociationsForObject(
                to=hs_objects.PublicObjectId(id=str(to_id)),
                types=[
                    hs_objects.AssociationSpec(
                        association_category="HUBSPOT_DEFINED", association_type_id=type_id
                    )
                ],
            )
            for to_id, type_id in pairs
        ]

    def create(
        self,
        object_type: str,
        properties: Mapping[str, str],
        associations: Iterable[tuple[str, int]] = (),
    ) -> dict[str, Any]:
        body = hs_objects.SimplePublicObjectInputForCreate(
            properties=dict(properties), associations=self._associations(associations)
        )
        api = self._api("crm.objects.basic_api")
        result = self.call(
            f"create {object_type}",
            lambda: api.create_with_http_info(
                object_type, body, _request_timeout=self.config.timeout
            ),
        )
        return dict(result.to_dict())

    def update(
        self, object_type: str, object_id: str, properties: Mapping[str, str]
    ) -> dict[str, Any]:
        body = hs_objects.SimplePublicObjectInput(properties=dict(properties))
        api = self._api("crm.objects.basic_api")
        result = self.call(
            f"update {object_type}",
            lambda: api.update_with_http_info(
                object_type, object_id, body, _request_timeout=self.config.timeout
            ),
        )
        return dict(result.to_dict())

    def get(self, object_type: str, object_id: str, properties: Sequence[str]) -> dict[str, Any]:
        api = self._api("crm.objects.basic_api")
        result = self.call(
            f"read {object_type}",
            lambda: api.get_by_id_with_http_info(
                object_type,
                object_id,
                properties=list(properties),
                _request_timeout=self.config.timeout,
            ),
        )
        return dict(result.to_dict())

    def search(
        self,
        object_type: str,
        filter_groups: Sequence[Sequence[Mapping[str, Any]]],
        properties: Sequence[str],
        *,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Objects matching any group (filters in a group AND, groups OR); one page."""
        groups = [
            hs_objects.FilterGroup(
                filters=[
                    hs_objects.Filter(
                        property_name=f["propertyName"],
                        operator=f["operator"],
                        value=f.get("value"),
                        values=f.get("values"),
                    )
                    for f in group
                ]
            )
            for group in filter_groups
        ]
        request = hs_objects.PublicObjectSearchRequest(
            filter_groups=groups, properties=list(properties), limit=limit, after="0", sorts=[]
        )
        api = self._api("crm.objects.search_api")
        result = self.call(
            f"search {object_type}",
            lambda: api.do_search_with_http_info(
                object_type, request, _request_timeout=self.config.timeout
            ),
            bucket=SEARCH,
        )
        return [dict(r.to_dict()) for r in result.results or []]

    def batch_create(
        self,
        object_type: str,
        inputs: Sequence[tuple[Mapping[str, str], Sequence[tuple[str, int]], str]],
    ) -> BatchOutcome:
        """``inputs``: (properties, associations, objectWriteTraceId), at most 100."""
        if len(inputs) > 100:
            raise ValueError("HubSpot batches take at most 100 inputs")
        body = hs_objects.BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                hs_objects.SimplePublicObjectBatchInputForCreate(
                    properties=dict(props),
                    associations=self._associations(assocs),
                    object_write_trace_id=trace,
                )
                for props, assocs, trace in inputs
            ]
        )
        api = self._api("crm.objects.batch_api")
        result = self.call(
            f"batch create {object_type}",
            lambda: api.create_with_http_info(
                object_type, body, _request_timeout=self.config.timeout
            ),
        )
        return self._outcome(result)

    def batch_update(
        self, object_type: str, inputs: Sequence[tuple[str, Mapping[str, str]]]
    ) -> BatchOutcome:
        """``inputs``: (object id, properties), at most 100."""
        if len(inputs) > 100:
            raise ValueError("HubSpot batches take at most 100 inputs")
        body = hs_objects.BatchInputSimplePublicObjectBatchInput(
            inputs=[
                hs_objects.SimplePublicObjectBatchInput(id=str(obj_id), properties=dict(props))
                for obj_id, props in inputs
            ]
        )
        api = self._api("crm.objects.batch_api")
        result = self.call(
            f"batch update {object_type}",
            lambda: api.update_with_http_info(
                object_type, body, _request_timeout=self.config.timeout
            ),
        )
        return self._outcome(result)

    @staticmethod
    def _outcome(result: Any) -> BatchOutcome:
        as_dict = result.to_dict()
        return BatchOutcome(
            results=[dict(r) for r in as_dict.get("results") or []],
            errors=[dict(e) for e in as_dict.get("errors") or []],
        )

    # -- associations, owners, properties, outcomes, tokens -----------------------------------
    def associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int
    ) -> None:
        spec = [
            hs_assoc.AssociationSpec(
                association_category="HUBSPOT_DEFINED", association_type_id=type_id
            )
        ]
        api = self._api("crm.associations.v4.basic_api")
        self.call(
            f"associate {from_type} to {to_type}",
            lambda: api.create_with_http_info(
                from_type, from_id, to_type, to_id, spec, _request_timeout=self.config.timeout
            ),
        )

    def associated_ids(
        self, from_type: str, from_id: str, to_type: str, limit: int = 100
    ) -> list[str]:
        api = self._api("crm.associations.v4.basic_api")
        result = self.call(
            f"read {from_type} associations",
            lambda: api.get_page_with_http_info(
                from_type, from_id, to_type, limit=limit, _request_timeout=self.config.timeout
            ),
        )
        return [str(r.to_object_id) for r in result.results or []]

    def owners_by_email(self, email: str) -> list[dict[str, Any]]:
        api = self._api("crm.owners.owners_api")
        result = self.call(
            "owner look-up",
            lambda: api.get_page_with_http_info(
                email=email, limit=10, archived=False, _request_timeout=self.config.timeout
            ),
        )
        return [dict(r.to_dict()) for r in result.results or []]

    def property_exists(self, object_type: str, name: str) -> bool:
        api = self._api("crm.properties.core_api")
        try:
            self.call(
                f"read {object_type} property",
                lambda: api.get_by_name_with_http_info(
                    object_type, name, _request_timeout=self.config.timeout
                ),
            )
        except PermanentError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def dispositions(self) -> dict[str, str]:
        """The portal's call outcomes, label -> GUID (``GET /calling/v1/dispositions``)."""
        answer = self.raw("call outcomes", "GET", "/calling/v1/dispositions")
        return {
            str(d["label"]): str(d["id"])
            for d in answer or []
            if isinstance(d, Mapping) and d.get("label") and d.get("id") and not d.get("deleted")
        }

    def probe(self, area: str) -> None:
        """Read one record of ``area`` (an object type, or ``owners``): does the token reach it?"""
        if area == "owners":
            owners = self._api("crm.owners.owners_api")
            self.call(
                "owners",
                lambda: owners.get_page_with_http_info(
                    limit=1, _request_timeout=self.config.timeout
                ),
            )
            return
        api = self._api("crm.objects.basic_api")
        self.call(
            f"read {area}",
            lambda: api.get_page_with_http_info(
                area, limit=1, _request_timeout=self.config.timeout
            ),
        )

    def token_scopes(self) -> list[str]:
        """The scopes granted to the current token (private app or OAuth)."""
        if self.config.oauth:
            token = self.tokens.current()
            self._set_token(token)
            api = self._api("oauth.access_tokens_api")
            info = self.call(
                "token introspection",
                lambda: api.get_with_http_info(token, _request_timeout=self.config.timeout),
            )
            return [str(s) for s in info.scopes or []]
        token = self.tokens.access_token or ""
        info = self.raw(
            "token introspection",
            "POST",
            "/oauth/v2/private-apps/get/access-token-info",
            body={"tokenKey": token},
        )
        return [str(s) for s in (info or {}).get("scopes") or []]
