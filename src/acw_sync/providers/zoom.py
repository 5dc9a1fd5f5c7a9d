"""Zoom Phone: call status, recording and voicemail events from a Zoom app's event subscription.

In the Zoom App Marketplace (a webhook-only or general app), add an event subscription with the
endpoint ``https://<host>/webhooks/zoom`` and the Phone events listed below; copy the app's
**Secret Token** into the config. Zoom validates the URL with ``endpoint.url_validation``
(and again every 72 hours): we answer ``{"plainToken", "encryptedToken"}`` where
``encryptedToken`` is hex HMAC-SHA256(secret token, plainToken) - but only for a request whose
own signature verifies, since answering anyone would make us an HMAC oracle for forged events.

Verification: ``x-zm-signature: v0=<hex>`` is HMAC-SHA256(secret token,
``v0:{x-zm-request-timestamp}:{raw body}``); the timestamp (Unix seconds) must be within
``tolerance`` seconds (default 300; Zoom does not document a window).

Normalisation: the call is ``payload.object.call_id``, ``event_ts`` (ms) orders events.
``phone.callee_*`` events are our user receiving a call (inbound, customer = caller);
``phone.caller_*`` events are our user calling out (outbound, customer = callee); a call whose
other side is also a Zoom user (has a ``user_id`` or ``extension_type`` ``user``) is internal.
``phone.callee_missed`` / ``phone.callee_rejected`` are sent per ringing leg: a leg rung on
someone's behalf (``forwarded_by`` / ``redirect_forwarded_by`` set: call queue, shared line,
forwarding) only updates the call, a direct ring that is missed or rejected ends it as missed.
A leg missed and then picked up elsewhere is therefore completed: "answered" always wins.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, SecretStr

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.model import Agent, CallEvent, CallOutcome, Direction, EventType, Utterance
from acw_sync.provider import HandshakeResponse, Provider, ProviderConfig, WebhookRequest
from acw_sync.providers._payload import (
    build_event,
    event_time,
    from_iso,
    from_millis,
    get_map,
    get_str,
    json_object,
    parties,
    require_str,
)

__all__ = ["ZoomConfig", "ZoomProvider", "sign"]

_STATUS_EVENTS = {
    "phone.caller_ringing": EventType.RINGING,
    "phone.callee_ringing": EventType.RINGING,
    "phone.caller_connected": EventType.ANSWERED,
    "phone.callee_answered": EventType.ANSWERED,
    "phone.callee_missed": EventType.MISSED,
    "phone.callee_rejected": EventType.MISSED,
    "phone.caller_ended": EventType.ENDED,
    "phone.callee_ended": EventType.ENDED,
}
"""Other ``phone.caller_*`` / ``phone.callee_*`` events with a ``call_id`` (hold, unhold, mute,
...) become ``updated``."""


class ZoomConfig(ProviderConfig):
    secret_token: SecretStr
    """The app's Secret Token (Feature > Event Subscriptions)."""
    tolerance: int = Field(default=300, gt=0)
    """How far ``x-zm-request-timestamp`` may be from now, in seconds."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``x-zm-signature`` value for a body (for the demo and documentation)."""
    message = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class ZoomProvider(Provider):
    name = "zoom"
    config_model = ZoomConfig

    def __init__(self, config: ZoomConfig) -> None:
        super().__init__(config)
        self._secret = config.secret_token.get_secret_value()
        self._tolerance = config.tolerance
        self._region = config.default_region

    def handshake(self, request: WebhookRequest, now: datetime) -> HandshakeResponse | None:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(body, dict) or body.get("event") != "endpoint.url_validation":
            return None
        self.verify(request, now)
        plain = get_map(body, "payload").get("plainToken")
        if not isinstance(plain, str) or not plain:
            raise PayloadInvalid(
                "invalid field 'payload.plainToken': is required",
                details=[{"field": "payload.plainToken", "error": "is required"}],
            )
        encrypted = hmac.new(self._secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
        answer = {"plainToken": plain, "encryptedToken": encrypted}
        return HandshakeResponse(status=200, body=json.dumps(answer).encode())

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        signature = request.header("x-zm-signature")
        timestamp = request.header("x-zm-request-timestamp")
        if not signature or not timestamp:
            raise SignatureInvalid("missing x-zm-signature or x-zm-request-timestamp header")
        try:
            ts = int(timestamp)
        except ValueError:
            raise SignatureInvalid("x-zm-request-timestamp is not an integer") from None
        skew = now.timestamp() - ts
        if skew > self._tolerance:
            raise SignatureInvalid("x-zm-request-timestamp is too old")
        if skew < -self._tolerance:
            raise SignatureInvalid("x-zm-request-timestamp is too new")
        expected = sign(self._secret, timestamp, request.body)
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            raise SignatureInvalid("x-zm-signature does not match")

    def parse(self, request: WebhookRequest) -> list[CallEvent]:
        body = json_object(request)
        event = require_str(body, "event")
        payload = get_map(body, "payload")
        obj = get_map(payload, "object", "payload.")
        occurred = event_time(request, from_millis(body, "event_ts"))
        base = {
            "provider": self.name,
            "provider_account": get_str(payload, "account_id", "payload."),
            "raw": body,
        }
        stamp = get_str(body, "event_ts") or "-"  # ids never depend on when we received it
        if event == "phone.recording_completed":
            return self._recordings(obj, base, occurred)
        if event in ("phone.voicemail_received", "phone.voicemail_transcript_completed"):
            return self._voicemail(event, obj, base, occurred, stamp)
        if not (event.startswith(("phone.caller_", "phone.callee_")) and "call_id" in obj):
            return []  # call logs/history/elements, SMS, settings: not call lifecycle events

        call_id = require_str(obj, "call_id", "payload.object.")
        kind = _STATUS_EVENTS.get(event, EventType.UPDATED)
        caller = get_map(obj, "caller", "payload.object.")
        callee = get_map(obj, "callee", "payload.object.")
        inbound = event.startswith("phone.callee_")
        ours, other = (callee, caller) if inbound else (caller, callee)
        direction = Direction.INBOUND if inbound else Direction.OUTBOUND
        if _is_zoom_user(other):
            direction = Direction.INTERNAL
        customer, line = parties(
            Direction.INBOUND if inbound else Direction.OUTBOUND,
            get_str(caller, "phone_number"),
            get_str(callee, "phone_number"),
            self._region,
        )
        if direction is Direction.INTERNAL:
            customer = None
        forwarded = bool(obj.get("forwarded_by") or obj.get("redirect_forwarded_by"))
        outcome = None
        if kind is EventType.MISSED:
            if forwarded:
                kind = EventType.UPDATED
            else:
                outcome = CallOutcome.MISSED
        answered = from_iso(obj, "answer_start_time") or from_iso(obj, "connected_start_time")
        ended = from_iso(obj, "call_end_time")
        return [
            build_event(
                event_id=f"{call_id}:{event}:{stamp}",
                call_id=call_id,
                type=kind,
                occurred_at=occurred,
                direction=direction,
                customer_number=customer,
                line_number=line,
                agent=_agent(ours),
                started_at=from_iso(obj, "ringing_start_time"),
                answered_at=answered,
                ended_at=ended if kind in (EventType.ENDED, EventType.MISSED) else None,
                outcome=outcome,
                **base,
            )
        ]

    def _recordings(
        self, obj: Mapping[str, Any], base: dict[str, Any], occurred: datetime
    ) -> list[CallEvent]:
        recordings = obj.get("recordings")
        if not isinstance(recordings, list):
            raise PayloadInvalid(
                "invalid field 'payload.object.recordings': must be a list",
                details=[{"field": "payload.object.recordings", "error": "must be a list"}],
            )
        events = []
        for i, rec in enumerate(recordings):
            if not isinstance(rec, Mapping):
                continue
            path = f"payload.object.recordings.{i}."
            call_id = get_str(rec, "call_id", path)
            url = get_str(rec, "download_url", path)
            if not call_id or not url:
                continue
            rec_id = get_str(rec, "id", path) or url
            direction = {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND}.get(
                str(rec.get("direction") or "")
            )
            customer, line = parties(
                direction,
                get_str(rec, "caller_number", path),
                get_str(rec, "callee_number", path),
                self._region,
            )
            owner = get_map(rec, "owner", path)
            agent = None
            if owner.get("type") in (None, "user") and (owner.get("id") or owner.get("name")):
                agent = Agent(id=get_str(owner, "id"), name=get_str(owner, "name"))
            events.append(
                build_event(
                    event_id=f"{call_id}:recording:{rec_id}",
                    call_id=call_id,
                    type=EventType.RECORDING_READY,
                    occurred_at=occurred,
                    direction=direction,
                    customer_number=customer,
                    line_number=line,
                    agent=agent,
                    recording_url=url,
                    **base,
                )
            )
        return events

    def _voicemail(
        self,
        event: str,
        obj: Mapping[str, Any],
        base: dict[str, Any],
        occurred: datetime,
        stamp: str,
    ) -> list[CallEvent]:
        path = "payload.object."
        call_id = get_str(obj, "call_id", path) or get_str(obj, "call_log_id", path)
        call_id = call_id or require_str(obj, "id", path)
        customer, line = parties(
            Direction.INBOUND,
            get_str(obj, "caller_number", path),
            get_str(obj, "callee_did_number", path) or get_str(obj, "callee_number", path),
            self._region,
        )
        agent = None
        if obj.get("callee_user_id") or obj.get("callee_name"):
            agent = Agent(id=get_str(obj, "callee_user_id"), name=get_str(obj, "callee_name"))
        fields: dict[str, Any] = {
            "call_id": call_id,
            "occurred_at": occurred,
            "direction": Direction.INBOUND,
            "customer_number": customer,
            "line_number": line,
            "agent": agent,
            **base,
        }
        if event == "phone.voicemail_received":
            return [
                build_event(
                    event_id=f"{call_id}:voicemail:{get_str(obj, 'id', path) or stamp}",
                    type=EventType.VOICEMAIL,
                    outcome=CallOutcome.VOICEMAIL,
                    recording_url=get_str(obj, "download_url", path),
                    **fields,
                )
            ]
        transcription = get_map(obj, "transcription", path)
        text = get_str(transcription, "content", path + "transcription.")
        if not text:
            return []
        return [
            build_event(
                event_id=f"{call_id}:voicemail_transcript:{get_str(obj, 'id', path) or stamp}",
                type=EventType.TRANSCRIPT_READY,
                transcript=[Utterance(text=text)],
                **fields,
            )
        ]


def _is_zoom_user(party: Mapping[str, Any]) -> bool:
    return bool(party.get("user_id")) or party.get("extension_type") == "user"


def _agent(party: Mapping[str, Any]) -> Agent | None:
    agent = Agent(id=get_str(party, "user_id"), name=get_str(party, "name"))
    return None if agent.is_empty() else agent
