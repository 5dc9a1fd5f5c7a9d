"""Dialpad: call event subscriptions, delivered as an HS256 JWT signed with the webhook secret.

Create a webhook (``POST /api/v2/webhooks`` with ``hook_url=https://<host>/webhooks/dialpad``
and a ``secret``), then a call subscription (``POST /api/v2/subscriptions/call``) for the states
listed below, with ``target_type`` company, office or call center so the entry-point leg's
events arrive. With a secret set, Dialpad sends the event as a JWT (HS256) instead of JSON;
the body is decoded and its signature checked with PyJWT. Unsigned JSON bodies are refused.

Normalisation: one real call has many legs with their own ``call_id``; the call is the first of
``master_call_id``, ``entry_point_call_id``, ``call_id``. Times (``date_*``,
``event_timestamp``) and durations (``duration``, ``total_duration``, ``talk_time``,
``hold_time``) are milliseconds. ``external_number`` is the customer and ``internal_number`` the
line; ``target`` of type ``user`` is the agent; ``labels`` are tags.

``hangup`` fires for every ended leg, connected or not. Only the root leg's ``hangup`` ends the
call (answered when ``date_connected`` is set, else missed / no answer); a hangup of another leg
(an operator who was rung, a transfer target) only reports its talk time, so one unanswered ring
never marks a call missed that a colleague picks up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt
from pydantic import SecretStr

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.model import Agent, CallEvent, CallOutcome, Direction, EventType, Note, Utterance
from acw_sync.phone import to_e164
from acw_sync.provider import Provider, ProviderConfig, WebhookRequest
from acw_sync.providers._payload import (
    build_event,
    event_time,
    from_millis,
    get_map,
    get_str,
    require_str,
    seconds,
)

__all__ = ["DialpadConfig", "DialpadProvider"]

_MS = 0.001

_STATES = {
    "preanswer": EventType.STARTED,
    "calling": EventType.STARTED,
    "ringing": EventType.RINGING,
    "connected": EventType.ANSWERED,
    "hangup": EventType.ENDED,
    "missed": EventType.MISSED,
    "abandoned": EventType.MISSED,
    "voicemail": EventType.VOICEMAIL,
    "voicemail_uploaded": EventType.VOICEMAIL,
    "recording": EventType.RECORDING_READY,
    "transcription": EventType.TRANSCRIPT_READY,
    "call_transcription": EventType.TRANSCRIPT_READY,
    "recap_summary": EventType.NOTE_ADDED,
    "transferred": EventType.TRANSFERRED,
}
"""Other states (queued, hold, parked, eavesdrop, barge, ...) become ``updated``."""


class DialpadConfig(ProviderConfig):
    secret: SecretStr
    """The webhook ``secret`` given to Dialpad (several, space-separated, while rotating)."""


class DialpadProvider(Provider):
    name = "dialpad"
    config_model = DialpadConfig

    def __init__(self, config: DialpadConfig) -> None:
        super().__init__(config)
        self._secrets = config.secret.get_secret_value().split()
        self._region = config.default_region

    def _decode(self, request: WebhookRequest) -> dict[str, Any]:
        token = request.body.strip()
        if not token or token.startswith(b"{"):
            raise SignatureInvalid("body is not a signed JWT (set a secret on the Dialpad webhook)")
        reason = "JWT signature does not match"
        for secret in self._secrets:
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=["HS256"],
                    options={"verify_aud": False, "verify_iss": False},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                reason = "JWT has expired"
                break
            except jwt.PyJWTError:
                reason = "body is not a valid HS256 JWT"
                break
            if not isinstance(claims, dict):
                raise SignatureInvalid("JWT payload is not an object")
            return claims
        raise SignatureInvalid(reason)

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        self._decode(request)

    def parse(self, request: WebhookRequest) -> list[CallEvent]:
        try:
            data = self._decode(request)
        except SignatureInvalid as exc:
            raise PayloadInvalid(exc.reason) from None
        state = require_str(data, "state")
        leg = require_str(data, "call_id")
        root = get_str(data, "master_call_id") or get_str(data, "entry_point_call_id") or leg
        kind = _STATES.get(state, EventType.UPDATED)
        is_root = root == leg

        direction = {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND}.get(
            str(data.get("direction") or "")
        )
        contact = get_map(data, "contact")
        customer = to_e164(get_str(data, "external_number"), self._region) or to_e164(
            get_str(contact, "phone", "contact."), self._region
        )
        line = to_e164(get_str(data, "internal_number"), self._region)
        started = from_millis(data, "date_started")
        connected = from_millis(data, "date_connected")
        ended = from_millis(data, "date_ended")
        talk = seconds(data, "talk_time", scale=_MS)

        outcome: CallOutcome | None = None
        if kind in (EventType.ENDED, EventType.MISSED):
            if not is_root:
                kind = EventType.UPDATED
            elif state == "abandoned":
                outcome = CallOutcome.ABANDONED
            elif connected is not None:
                outcome = CallOutcome.COMPLETED
            else:
                outcome = (
                    CallOutcome.NO_ANSWER if direction is Direction.OUTBOUND else CallOutcome.MISSED
                )
        elif kind is EventType.VOICEMAIL:
            outcome = CallOutcome.VOICEMAIL

        terminal = kind in (EventType.ENDED, EventType.MISSED, EventType.VOICEMAIL)
        recording = _recording_url(data.get("recording_details"))
        if kind is EventType.VOICEMAIL:
            recording = get_str(data, "voicemail_link") or recording
        transcript_text = get_str(data, "transcription_text")
        recap = get_str(data, "recap_summary")
        notes = [Note(id=f"recap:{root}", text=recap, author="Dialpad Ai")] if recap else []
        stamp = get_str(data, "event_timestamp")
        occurred = event_time(request, from_millis(data, "event_timestamp"), ended, started)
        total = seconds(data, "total_duration", scale=_MS)
        return [
            build_event(
                event_id=":".join(p for p in (leg, state, stamp) if p),
                provider=self.name,
                call_id=root,
                type=kind,
                occurred_at=occurred,
                direction=direction,
                customer_number=customer,
                line_number=line,
                agent=_agent(get_map(data, "target")),
                started_at=started,
                answered_at=connected,
                ended_at=ended if terminal else None,
                duration=total if terminal and total else None,
                talk_time=talk if talk else None,
                hold_time=seconds(data, "hold_time", scale=_MS) or None,
                outcome=outcome,
                recording_url=recording,
                transcript=[Utterance(text=transcript_text)] if transcript_text else [],
                notes=notes,
                tags=_labels(data.get("labels")),
                raw=data,
            )
        ]


def _agent(target: Mapping[str, Any]) -> Agent | None:
    if target.get("type") not in (None, "user"):
        return None
    agent = Agent(
        id=get_str(target, "id", "target."),
        email=get_str(target, "email", "target."),
        name=get_str(target, "name", "target."),
    )
    return None if agent.is_empty() else agent


def _recording_url(details: Any) -> str | None:
    if not isinstance(details, list):
        return None
    for item in details:
        if isinstance(item, Mapping) and isinstance(item.get("url"), str) and item["url"]:
            return str(item["url"])
    return None


def _labels(labels: Any) -> list[str]:
    if not isinstance(labels, list):
        return []
    return [label for label in labels if isinstance(label, str)]
