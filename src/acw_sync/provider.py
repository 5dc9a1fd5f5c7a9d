"""The telephony provider contract: verify a webhook, answer handshakes, parse it into events.

A provider is one module under ``acw_sync/providers/`` (or a third-party package) registered in
the ``acw_sync.providers`` entry-point group. It is pure and fast: no network, no state, no
clock but the one passed in. The ingest server calls, in order:

1. :meth:`Provider.handshake` - answer a platform's URL-validation request (Zoom, RingCentral)
   or return None;
2. :meth:`Provider.verify` - raise :class:`~acw_sync.errors.SignatureInvalid` unless the request
   really comes from the platform (constant-time compares, timestamp windows);
3. :meth:`Provider.parse` - the request's :class:`~acw_sync.model.CallEvent` list (possibly
   empty for events we do not use), or :class:`~acw_sync.errors.PayloadInvalid`.

Verification failures are logged with their reason but never with the secret or the body.
"""

from __future__ import annotations

import abc
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict

from acw_sync.errors import ConfigError, PayloadInvalid
from acw_sync.model import CallEvent

__all__ = [
    "HandshakeResponse",
    "Provider",
    "ProviderConfig",
    "WebhookRequest",
    "available_providers",
    "constant_time_equals",
    "load_provider_class",
]

ENTRY_POINT_GROUP = "acw_sync.providers"


class ProviderConfig(BaseModel):
    """Base of each provider's typed config. Secrets are ``pydantic.SecretStr``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    default_region: str = "US"
    """ISO country code used to read national numbers into E.164."""


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook as received, independent of the web framework.

    ``url`` is the public URL the platform called (rebuilt from the configured public base URL
    behind proxies); ``headers`` keys are lower-case; ``body`` is the raw bytes.
    """

    method: str
    url: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    query: tuple[tuple[str, str], ...] = ()
    received_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @cached_property
    def form(self) -> list[tuple[str, str]]:
        """The urlencoded body as ordered pairs (repeated keys kept)."""
        try:
            return parse_qsl(
                self.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
            )
        except UnicodeDecodeError as exc:
            raise PayloadInvalid("body is not UTF-8 form data") from exc

    def json(self) -> Any:
        """The body parsed as JSON, or PayloadInvalid."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PayloadInvalid(f"body is not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class HandshakeResponse:
    """What to answer a platform's validation request with, instead of ingesting it."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


class Provider(abc.ABC):
    """Base class of every telephony provider plugin."""

    name: ClassVar[str]
    config_model: ClassVar[type[ProviderConfig]] = ProviderConfig

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def handshake(self, request: WebhookRequest, now: datetime) -> HandshakeResponse | None:
        """Answer the platform's URL validation, if this request is one. Default: none."""
        return None

    @abc.abstractmethod
    def verify(self, request: WebhookRequest, now: datetime) -> None:
        """Raise SignatureInvalid unless the request is authentic and fresh."""

    @abc.abstractmethod
    def parse(self, request: WebhookRequest) -> list[CallEvent]:
        """The canonical events in this (verified) request."""

    def delivery_id(self, request: WebhookRequest) -> str | None:
        """An id that is the same on every redelivery of this request (for dedupe at ingest).

        Default None: dedupe then happens per event, on ``CallEvent.event_id``.
        """
        return None


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    a_b = a.encode() if isinstance(a, str) else a
    b_b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_b, b_b)


def available_providers() -> dict[str, type[Provider]]:
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_provider_class(name: str) -> type[Provider]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Provider)):
                raise ConfigError(f"entry point {ep.value!r} is not a Provider subclass")
            return cls
    raise ConfigError(f"provider {name!r} is not installed")
