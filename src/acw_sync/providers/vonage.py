"""Vonage Voice API: event webhooks (``event_url``), signed with a JWT in ``Authorization``.

Set the application's Voice ``event_url`` to ``https://<host>/webhooks/vonage`` (HTTP POST) and
enable signed callbacks; copy the account's **signature secret** (Dashboard > Settings) into the
config. Each request carries ``Authorization: Bearer <JWT>`` signed HS256 with that secret; its
``payload_hash`` claim, when present, is the SHA-256 (hex) of the body, which we check against
the raw body (and, as Vonage describes it, the body re-serialised as JSON without whitespace in
received order). ``iat`` older than ``max_age`` seconds (default 300; ``null`` disables) is
refused, ``exp`` is honoured.

Normalisation: the call is ``conversation_uuid`` (each leg has its own ``uuid``); ``from`` and
``to`` with ``direction`` give the customer and the line (digits without ``+`` are read as
international); ``timestamp``/``start_time``/``end_time`` are ISO 8601; ``duration`` is a string
of seconds. An inbound leg reaching ``answered`` only means Vonage answered it (the NCCO runs);
the call counts as answered when an outbound leg is answered (the customer, or the agent a
``connect`` action rang). Terminal statuses give the outcome: ``busy`` busy, ``failed``
failed, ``rejected`` missed, ``timeout`` / ``unanswered`` no_answer on an outbound leg and missed
on an inbound one, ``cancelled`` no_answer outbound and abandoned inbound; ``completed`` leaves it
to the merge (completed if a leg was answered). ``machine`` (AMD) marks the call voicemail. ``record`` events
(``recording_url``) become ``recording_ready``; ``transcription`` events carry only a URL, kept in
``raw``. Vonage has no agent, note or tag concept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import jwt
from pydantic import Field, SecretStr

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.model import CallEvent, CallOutcome, Direction, EventType
from acw_sync.provider import Provider, ProviderConfig, WebhookRequest
from acw_sync.providers._payload import (
    build_event,
    event_time,
    from_iso,
    get_str,
    json_object,
    parties,
    require_str,
    seconds,
)

__all__ = ["UnsignedCallback", "VonageConfig", "VonageProvider"]

_STATUSES = {
    "started": EventType.STARTED,
    "ringing": EventType.RINGING,
    "answered": EventType.ANSWERED,
    "completed": EventType.ENDED,
    "busy": EventType.MISSED,
    "cancelled": EventType.MISSED,
    "failed": EventType.MISSED,
    "rejected": EventType.MISSED,
    "timeout": EventType.MISSED,
    "unanswered": EventType.MISSED,
    "transfer": EventType.TRANSFERRED,
}
"""Other statuses (human, disconnected, input, ...) become ``updated``; ``machine`` below."""


class UnsignedCallback(SignatureInvalid):
    """A callback without a token: refused with 503, not 401.

    Vonage documents that after an internal error its callback service may send an unsigned
    callback, and that answering 5xx makes it retry (signed). Nothing is enqueued either way.
    """

    status = 503


class VonageConfig(ProviderConfig):
    signature_secret: SecretStr
    """The account signature secret (several, space-separated, while rotating)."""
    max_age: int | None = Field(default=300, gt=0)
    """Refuse tokens whose ``iat`` is older than this many seconds; None disables."""
    api_key: str | None = None
    """When set, the token's ``api_key`` claim must equal it."""


class VonageProvider(Provider):
    name = "vonage"
    config_model = VonageConfig

    def __init__(self, config: VonageConfig) -> None:
        super().__init__(config)
        self._secrets = config.signature_secret.get_secret_value().split()
        self._max_age = config.max_age
        self._api_key = config.api_key
        self._region = config.default_region

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        auth = request.header("authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnsignedCallback("missing Authorization: Bearer token (retry signed)")
        claims = self._decode(token.strip(), now)
        if self._api_key is not None and claims.get("api_key") != self._api_key:
            raise SignatureInvalid("token api_key does not match")
        payload_hash = claims.get("payload_hash")
        if payload_hash is not None:
            if not isinstance(payload_hash, str):
                raise SignatureInvalid("payload_hash claim is not a string")
            if not any(
                hmac.compare_digest(candidate, payload_hash.lower().encode())
                for candidate in _body_hashes(request.body)
            ):
                raise SignatureInvalid("body does not match the payload_hash claim")

    def _decode(self, token: str, now: datetime) -> dict[str, Any]:
        reason = "JWT signature does not match"
        for secret in self._secrets:
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=["HS256"],
                    options={"verify_aud": False, "verify_iss": False, "verify_iat": False},
                    leeway=0,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise SignatureInvalid("JWT has expired") from None
            except jwt.PyJWTError:
                raise SignatureInvalid("Authorization token is not a valid HS256 JWT") from None
            if not isinstance(claims, dict):
                raise SignatureInvalid("JWT payload is not an object")
            self._check_fresh(claims, now)
            return claims
        raise SignatureInvalid(reason)

    def _check_fresh(self, claims: dict[str, Any], now: datetime) -> None:
        if self._max_age is None:
            return
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise SignatureInvalid("JWT has no iat claim")
        age = now.timestamp() - iat
        if age > self._max_age:
            raise SignatureInvalid("JWT iat is too old")
        if age < -self._max_age:
            raise SignatureInvalid("JWT iat is in the future")

    def parse(self, request: WebhookRequest) -> list[CallEvent]:
        body = json_object(request)
        leg = get_str(body, "uuid")
        call_id = get_str(body, "conversation_uuid") or leg
        if call_id is None:
            raise PayloadInvalid(
                "invalid field 'conversation_uuid': is required",
                details=[{"field": "conversation_uuid", "error": "is required"}],
            )
        at = from_iso(body, "timestamp")
        occurred = event_time(request, at, from_iso(body, "end_time"))
        stamp = get_str(body, "timestamp") or "-"  # ids never depend on when we received it
        if get_str(body, "recording_url"):
            rec = get_str(body, "recording_uuid") or require_str(body, "recording_url")
            return [
                build_event(
                    event_id=f"{call_id}:record:{rec}",
                    provider=self.name,
                    call_id=call_id,
                    type=EventType.RECORDING_READY,
                    occurred_at=occurred,
                    recording_url=get_str(body, "recording_url"),
                    raw=body,
                )
            ]
        if get_str(body, "transcription_url") or body.get("type") == "transcription":
            return [
                build_event(
                    event_id=f"{call_id}:transcription:{get_str(body, 'recording_uuid') or stamp}",
                    provider=self.name,
                    call_id=call_id,
                    type=EventType.TRANSCRIPT_READY,
                    occurred_at=occurred,
                    raw=body,
                )
            ]
        status = get_str(body, "status")
        if status is None:
            return []  # input (DTMF/ASR) and other non-status callbacks
        direction = {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND}.get(
            str(body.get("direction") or "")
        )
        customer, line = parties(
            direction, _address(body.get("from")), _address(body.get("to")), self._region
        )
        kind = _STATUSES.get(status, EventType.UPDATED)
        outcome: CallOutcome | None = None
        if status == "answered" and direction is not Direction.OUTBOUND:
            kind = EventType.UPDATED  # Vonage picked up the inbound leg to run the NCCO
        elif status == "machine":
            outcome = CallOutcome.VOICEMAIL
        elif kind is EventType.MISSED:
            outcome = _outcome(status, direction)
        terminal = kind in (EventType.ENDED, EventType.MISSED)
        return [
            build_event(
                event_id=f"{leg or call_id}:{status}:{stamp}",
                provider=self.name,
                call_id=call_id,
                type=kind,
                occurred_at=occurred,
                direction=direction,
                customer_number=customer,
                line_number=line,
                started_at=from_iso(body, "start_time")
                or (at if kind in (EventType.STARTED, EventType.RINGING) else None),
                answered_at=at if kind is EventType.ANSWERED else None,
                ended_at=(from_iso(body, "end_time") or at) if terminal else None,
                duration=seconds(body, "duration") if terminal else None,
                outcome=outcome,
                raw=body,
            )
        ]


def _address(value: Any) -> str | None:
    """``from``/``to`` are strings for phone legs; app/SIP legs may send an object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        number = value.get("number")
        return number if isinstance(number, str) else None
    return None


def _outcome(status: str, direction: Direction | None) -> CallOutcome:
    if status == "busy":
        return CallOutcome.BUSY
    if status == "failed":
        return CallOutcome.FAILED
    if status == "cancelled":
        return CallOutcome.NO_ANSWER if direction is Direction.OUTBOUND else CallOutcome.ABANDONED
    if status in {"timeout", "unanswered"} and direction is Direction.OUTBOUND:
        return CallOutcome.NO_ANSWER
    return CallOutcome.MISSED


def _body_hashes(body: bytes) -> list[bytes]:
    hashes = [hashlib.sha256(body).hexdigest().encode()]
    try:
        compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return hashes
    hashes.append(hashlib.sha256(compact.encode()).hexdigest().encode())
    return hashes
