"""The generic provider: our canonical event format, signed as Standard Webhooks.

For any platform or in-house PBX. Headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds)
and ``webhook-signature`` (space-separated ``v1,<base64>`` entries, for key rotation); the
signature is HMAC-SHA256 over ``{id}.{timestamp}.{raw body}`` keyed with the base64-decoded
``whsec_`` secret; timestamps more than 5 minutes off are refused.

Body (JSON)::

    {"type": "call.ended", "timestamp": "2026-03-10T18:07:52Z",
     "data": {"call_id": "c-1", "direction": "inbound", "customer_number": "+14155550100",
              "agent": {"email": "ana@example.com"}, "notes": ["Wants a refund"], ...}}

``type`` is ``call.`` + an :class:`~acw_sync.model.EventType` value; ``data`` takes the
:class:`~acw_sync.model.CallEvent` fields (see :class:`GenericCallData`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.model import (
    Agent,
    CallEvent,
    CallOutcome,
    Direction,
    EventType,
    Note,
    Utterance,
)
from acw_sync.phone import to_e164
from acw_sync.provider import Provider, ProviderConfig, WebhookRequest

__all__ = ["GenericConfig", "GenericProvider", "sign"]

TOLERANCE_SECONDS = 5 * 60


class GenericConfig(ProviderConfig):
    secret: SecretStr
    """The ``whsec_...`` signing secret (several, space-separated, during rotation)."""
    tolerance: int = Field(default=TOLERANCE_SECONDS, gt=0)


class GenericCallData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(min_length=1, max_length=256)
    event_id: str | None = Field(default=None, max_length=512)
    account: str | None = None
    sequence: int | None = None
    direction: Direction | None = None
    customer_number: str | None = None
    line_number: str | None = None
    agent: Agent | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration: float | None = Field(default=None, ge=0)
    talk_time: float | None = Field(default=None, ge=0)
    hold_time: float | None = Field(default=None, ge=0)
    wrapup_time: float | None = Field(default=None, ge=0)
    outcome: CallOutcome | None = None
    disposition: str | None = None
    recording_url: str | None = None
    transcript: list[Utterance] = Field(default_factory=list)
    notes: list[Note | str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @field_validator("started_at", "answered_at", "ended_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a timezone (e.g. 2026-03-10T18:07:52Z)")
        return v


class GenericPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal[
        "call.started",
        "call.ringing",
        "call.answered",
        "call.ended",
        "call.missed",
        "call.voicemail",
        "call.recording_ready",
        "call.transcript_ready",
        "call.note_added",
        "call.tagged",
        "call.disposition_set",
        "call.wrapup_ended",
        "call.transferred",
        "call.updated",
    ]
    timestamp: datetime
    data: GenericCallData

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("must include a timezone (e.g. 2026-03-10T18:07:52Z)")
        return v


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return raw.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a body (used by the demo and documentation)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class GenericProvider(Provider):
    name = "generic"
    config_model = GenericConfig

    def __init__(self, config: GenericConfig) -> None:
        super().__init__(config)
        self._keys = [_key(s) for s in config.secret.get_secret_value().split()]
        self._tolerance = config.tolerance
        self._region = config.default_region

    def delivery_id(self, request: WebhookRequest) -> str | None:
        return request.header("webhook-id")

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        msg_id = request.header("webhook-id")
        ts = request.header("webhook-timestamp")
        sig_header = request.header("webhook-signature")
        if not msg_id or not ts or not sig_header:
            raise SignatureInvalid(
                "missing webhook-id, webhook-timestamp or webhook-signature header"
            )
        try:
            timestamp = int(ts)
        except ValueError:
            raise SignatureInvalid("webhook-timestamp is not an integer") from None
        skew = now.timestamp() - timestamp
        if skew > self._tolerance:
            raise SignatureInvalid("webhook-timestamp is too old")
        if skew < -self._tolerance:
            raise SignatureInvalid("webhook-timestamp is too new")
        signed = f"{msg_id}.{timestamp}.".encode() + request.body
        expected = [hmac.new(k, signed, hashlib.sha256).digest() for k in self._keys]
        for entry in sig_header.split():
            version, _, value = entry.partition(",")
            if version != "v1":
                continue
            try:
                given = base64.b64decode(value, validate=True)
            except ValueError:
                continue
            if any(hmac.compare_digest(given, e) for e in expected):
                return
        raise SignatureInvalid("no matching v1 signature")

    def parse(self, request: WebhookRequest) -> list[CallEvent]:
        body = request.json()  # parsed once: validated below, and kept whole as ``raw``
        try:
            payload = GenericPayload.model_validate(body)
        except ValidationError as exc:
            raise PayloadInvalid(
                "body does not match the generic event format",
                details=_field_errors(exc),
            ) from None
        data = payload.data
        event_id = data.event_id or request.header("webhook-id") or ""
        try:
            return [
                CallEvent(
                    event_id=event_id,
                    provider=self.name,
                    provider_account=data.account,
                    call_id=data.call_id,
                    type=EventType(payload.type.removeprefix("call.")),
                    occurred_at=payload.timestamp.astimezone(UTC),
                    sequence=data.sequence,
                    direction=data.direction,
                    customer_number=to_e164(data.customer_number, self._region),
                    line_number=to_e164(data.line_number, self._region),
                    agent=data.agent,
                    started_at=data.started_at,
                    answered_at=data.answered_at,
                    ended_at=data.ended_at,
                    duration=data.duration,
                    talk_time=data.talk_time,
                    hold_time=data.hold_time,
                    wrapup_time=data.wrapup_time,
                    outcome=data.outcome,
                    disposition=data.disposition,
                    recording_url=data.recording_url,
                    transcript=data.transcript,
                    notes=[Note(text=n) if isinstance(n, str) else n for n in data.notes],
                    tags=data.tags,
                    raw=body,
                )
            ]
        except ValidationError as exc:
            raise PayloadInvalid("invalid call data", details=_field_errors(exc)) from None
        except OverflowError:  # a timestamp at the edge of the calendar, shifted past it
            raise PayloadInvalid("a time is out of range") from None


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "error": err["msg"]}
        for err in exc.errors(include_url=False)
    ]
