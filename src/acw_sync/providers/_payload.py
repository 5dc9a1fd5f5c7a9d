"""Reading untrusted platform payloads into CallEvent fields: typed getters, times, parties.

Everything here is pure. Readers raise :class:`~acw_sync.errors.PayloadInvalid` naming the field
(never echoing the body), so a malformed webhook is answered 400 with a useful reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import ValidationError

from acw_sync.errors import PayloadInvalid
from acw_sync.model import CallEvent, Direction
from acw_sync.phone import to_e164
from acw_sync.provider import WebhookRequest

__all__ = [
    "EPOCH",
    "build_event",
    "event_time",
    "field_errors",
    "from_iso",
    "from_millis",
    "from_rfc2822",
    "from_unix",
    "get_map",
    "get_str",
    "json_object",
    "parties",
    "require_str",
    "seconds",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Ordering fallback for events that carry no time at all (sorts them first; scalars they set
are not contested by other events)."""


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "error": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


def _invalid(field: str, error: str) -> PayloadInvalid:
    return PayloadInvalid(
        f"invalid field {field!r}: {error}", details=[{"field": field, "error": error}]
    )


def get_map(data: Mapping[str, Any], key: str, path: str = "") -> Mapping[str, Any]:
    """``data[key]`` as a mapping; missing or null gives ``{}``, another type is invalid."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _invalid(path + key, "must be an object")
    return value


def get_str(data: Mapping[str, Any], key: str, path: str = "") -> str | None:
    """``data[key]`` as a non-empty string (numbers are accepted as ids), else None."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _invalid(path + key, "must be a string")
    return str(value)


def require_str(data: Mapping[str, Any], key: str, path: str = "") -> str:
    value = get_str(data, key, path)
    if value is None:
        raise _invalid(path + key, "is required")
    return value


def _number(data: Mapping[str, Any], key: str, path: str) -> float | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _invalid(path + key, "must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(path + key, "must be a number") from None
    if math.isnan(number) or number < 0:
        raise _invalid(path + key, "must be a non-negative number")
    return number


def seconds(
    data: Mapping[str, Any], key: str, path: str = "", *, scale: float = 1.0
) -> float | None:
    """A duration in seconds; ``scale`` converts the platform's unit (0.001 for ms)."""
    number = _number(data, key, path)
    return None if number is None else number * scale


def from_unix(data: Mapping[str, Any], key: str, path: str = "") -> datetime | None:
    number = _number(data, key, path)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        raise _invalid(path + key, "is not a Unix time") from None


def from_millis(data: Mapping[str, Any], key: str, path: str = "") -> datetime | None:
    number = _number(data, key, path)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise _invalid(path + key, "is not a Unix time in milliseconds") from None


def from_iso(data: Mapping[str, Any], key: str, path: str = "") -> datetime | None:
    text = get_str(data, key, path)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(path + key, "is not an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the platforms document these as UTC
    return value.astimezone(UTC)


def from_rfc2822(data: Mapping[str, Any], key: str, path: str = "") -> datetime | None:
    text = get_str(data, key, path)
    if text is None:
        return None
    try:
        value = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise _invalid(path + key, "is not an RFC 2822 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def event_time(request: WebhookRequest, *candidates: datetime | None) -> datetime:
    """The first known time among ``candidates``, else when the request arrived, else EPOCH."""
    for candidate in candidates:
        if candidate is not None:
            return candidate
    if request.received_at is not None:
        return request.received_at.astimezone(UTC)
    return EPOCH


def parties(
    direction: Direction | None, from_number: str | None, to_number: str | None, region: str
) -> tuple[str | None, str | None]:
    """``(customer_number, line_number)`` in E.164 from the two ends and the direction.

    Inbound: the customer called from ``from``; outbound: the customer is ``to``. Internal or
    unknown direction: no customer is claimed.
    """
    a, b = to_e164(from_number, region), to_e164(to_number, region)
    if direction is Direction.INBOUND:
        return a, b
    if direction is Direction.OUTBOUND:
        return b, a
    return None, None


def build_event(**fields: Any) -> CallEvent:
    """A CallEvent, or PayloadInvalid listing the fields that did not validate."""
    try:
        return CallEvent(**fields)
    except ValidationError as exc:
        raise PayloadInvalid("invalid call data", details=field_errors(exc)) from None


def json_object(request: WebhookRequest) -> dict[str, Any]:
    """The JSON body, which must be an object."""
    body = request.json()
    if not isinstance(body, dict):
        raise PayloadInvalid("body must be a JSON object")
    return body
