"""RingCentral: telephony session notifications over a WebHook subscription.

Subscribe (``POST /restapi/v1.0/subscription``) to
``/restapi/v1.0/account/~/telephony/sessions`` (or an extension's) with
``deliveryMode = {transportType: "WebHook", address: "https://<host>/webhooks/ringcentral",
verificationToken: <token>}``. Renew the subscription before it expires (7 days by default).

Handshake: on creation RingCentral posts an empty request with a ``Validation-Token`` header;
we answer 200 with the same header (within RingCentral's 3 s budget, body empty).

Verification: the ``verificationToken`` comes back on every notification in a header, named
``Verification-Token`` in current documentation and ``Validation-Token`` in older material; both
are accepted and compared in constant time. There is no HMAC and no timestamp.

Normalisation: the call is ``body.telephonySessionId``; ``body.sequence`` orders the
notifications and the envelope ``uuid`` is the event id (and the delivery id). Of ``parties``
the one on our side (with an ``extensionId``) is read: its ``direction`` (Inbound/Outbound),
``from``/``to`` numbers, its extension as the agent, and ``status.code``:
Setup/Proceeding -> started/ringing, Answered -> answered, VoiceMail -> voicemail,
Disconnected -> ended (outcome from ``status.reason``: TargetBusy busy, NoAnswer/Timeout missed
or no answer, Cancelled abandoned, Rejected missed; ``missedCall`` marks a miss), and
Disconnected with a reason that moves the call elsewhere (Pickup by a colleague, TakeOver,
transfers, redirects, park) -> transferred, so that a ring-group leg does not end the call.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.model import Agent, CallEvent, CallOutcome, Direction, EventType
from acw_sync.provider import HandshakeResponse, Provider, ProviderConfig, WebhookRequest
from acw_sync.providers._payload import (
    build_event,
    event_time,
    from_iso,
    get_map,
    get_str,
    json_object,
    parties,
    require_str,
)

__all__ = ["RingCentralConfig", "RingCentralProvider"]

_CODES = {
    "Setup": EventType.STARTED,
    "Proceeding": EventType.RINGING,
    "Answered": EventType.ANSWERED,
    "VoiceMail": EventType.VOICEMAIL,
    "VoiceMailScreening": EventType.VOICEMAIL,
    "Disconnected": EventType.ENDED,
}
"""Other codes (Hold, Parked, Gone, FaxReceive, Tds, ...) become ``updated``."""

_MOVED_ON = {
    "Pickup",
    "TakeOver",
    "BlindTransfer",
    "AttendedTransfer",
    "CallRedirected",
    "Redirected",
    "CallPark",
    "Parked",
}


class RingCentralConfig(ProviderConfig):
    verification_token: SecretStr
    """The ``deliveryMode.verificationToken`` given when subscribing."""


class RingCentralProvider(Provider):
    name = "ringcentral"
    config_model = RingCentralConfig

    def __init__(self, config: RingCentralConfig) -> None:
        super().__init__(config)
        self._tokens = [t.encode() for t in config.verification_token.get_secret_value().split()]
        self._region = config.default_region

    def handshake(self, request: WebhookRequest, now: datetime) -> HandshakeResponse | None:
        token = request.header("validation-token")
        if token is None or request.body.strip():
            return None  # a notification (older docs send the token in this header too)
        return HandshakeResponse(status=200, headers={"Validation-Token": token})

    def delivery_id(self, request: WebhookRequest) -> str | None:
        try:
            body = json_object(request)
        except PayloadInvalid:
            return None
        uuid = body.get("uuid")
        return uuid if isinstance(uuid, str) and uuid else None

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        given = request.header("verification-token") or request.header("validation-token")
        if not given:
            raise SignatureInvalid("missing Verification-Token header")
        matched = False
        for expected in self._tokens:
            matched |= hmac.compare_digest(expected, given.encode())
        if not matched:
            raise SignatureInvalid("verification token does not match")

    def parse(self, request: WebhookRequest) -> list[CallEvent]:
        envelope = json_object(request)
        if "/telephony/sessions" not in str(envelope.get("event") or ""):
            return []
        body = get_map(envelope, "body")
        session = require_str(body, "telephonySessionId", "body.")
        uuid = require_str(envelope, "uuid")
        party = _our_party(body.get("parties"))
        if party is None:
            return []
        status = get_map(party, "status", "party.")
        code = get_str(status, "code", "party.status.") or ""
        reason = get_str(status, "reason", "party.status.") or ""
        kind = _CODES.get(code, EventType.UPDATED)
        direction = {"Inbound": Direction.INBOUND, "Outbound": Direction.OUTBOUND}.get(
            str(party.get("direction") or "")
        )
        from_, to = get_map(party, "from", "party."), get_map(party, "to", "party.")
        customer, line = parties(
            direction,
            get_str(from_, "phoneNumber", "party.from."),
            get_str(to, "phoneNumber", "party.to."),
            self._region,
        )
        ours = to if direction is Direction.INBOUND else from_
        agent = None
        if party.get("extensionId") is not None:
            agent = Agent(id=get_str(party, "extensionId"), name=get_str(ours, "name"))

        at = from_iso(body, "eventTime", "body.")
        occurred = event_time(request, at, from_iso(envelope, "timestamp"))
        outcome: CallOutcome | None = None
        if kind is EventType.ENDED and reason in _MOVED_ON:
            kind = EventType.TRANSFERRED
        elif kind is EventType.ENDED:
            outcome = _outcome(reason, direction, bool(party.get("missedCall")))
        elif kind is EventType.VOICEMAIL:
            outcome = CallOutcome.VOICEMAIL
        sequence = body.get("sequence")
        return [
            build_event(
                event_id=uuid,
                provider=self.name,
                call_id=session,
                type=kind,
                occurred_at=occurred,
                sequence=sequence if isinstance(sequence, int) else None,
                provider_account=get_str(party, "accountId") or get_str(envelope, "ownerId"),
                direction=direction,
                customer_number=customer,
                line_number=line,
                agent=agent,
                started_at=at if kind in (EventType.STARTED, EventType.RINGING) else None,
                answered_at=at if kind is EventType.ANSWERED else None,
                ended_at=at if kind is EventType.ENDED else None,
                outcome=outcome,
                raw=envelope,
            )
        ]


def _our_party(value: Any) -> Mapping[str, Any] | None:
    if not isinstance(value, list):
        raise PayloadInvalid(
            "invalid field 'body.parties': must be a list",
            details=[{"field": "body.parties", "error": "must be a list"}],
        )
    candidates = [p for p in value if isinstance(p, Mapping)]
    for party in candidates:
        if party.get("extensionId") is not None:
            return party
    return candidates[0] if candidates else None


def _outcome(reason: str, direction: Direction | None, missed: bool) -> CallOutcome | None:
    if reason == "TargetBusy":
        return CallOutcome.BUSY
    if reason in {"NoAnswer", "Timeout"}:
        return CallOutcome.NO_ANSWER if direction is Direction.OUTBOUND else CallOutcome.MISSED
    if reason == "Cancelled":
        return CallOutcome.NO_ANSWER if direction is Direction.OUTBOUND else CallOutcome.ABANDONED
    if reason == "Rejected" or missed:
        return CallOutcome.MISSED
    return None  # CallFinished etc.: completed if answered, else missed (decided in the merge)
