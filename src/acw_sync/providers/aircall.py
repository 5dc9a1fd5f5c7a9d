"""Aircall: call webhooks, authenticated by the webhook token carried in the JSON body.

Create the webhook (Dashboard > Integrations > Webhook, or ``POST /v1/webhooks``) with the URL
``https://<host>/webhooks/aircall`` and the ``call.*`` events; copy its ``token`` into the config.

Envelope ``{"resource": "call", "event": "call.ended", "timestamp": <unix s>, "token": ...,
"data": <call object>}``. Aircall signs nothing: the ``token`` field is compared with the
configured token(s) in constant time. There is no replay window (Aircall retries for hours).

Normalisation: the call id is ``data.id``; ``raw_digits`` is the customer, ``number.digits`` the
line, ``user`` the agent (its team: the call's first ``teams`` entry); times are Unix seconds; ``duration`` is seconds and only trusted once
the call has an ``ended_at`` (Aircall sends 0 before). ``call.hungup`` fires at hang-up and
``call.ended`` ~30 s later with the final figures: both end the call, and the later one's values
win in the merge. Comments become notes (by comment id), tags accumulate; ``call.untagged``
carries the remaining tag set, so it is marked ``tags_complete`` and removes the others.
Outcome at the end: voicemail if a voicemail URL is present, completed if answered, abandoned
for ``missed_call_reason`` values naming an abandon, no_answer for unanswered outbound calls,
missed otherwise. Events of other resources (user, number, contact, message) are ignored.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.model import Agent, CallEvent, CallOutcome, Direction, EventType, Note
from acw_sync.provider import Provider, ProviderConfig, WebhookRequest
from acw_sync.providers._payload import (
    build_event,
    from_unix,
    get_map,
    get_str,
    json_object,
    parties,
    require_str,
    seconds,
)

__all__ = ["AircallConfig", "AircallProvider"]

_EVENT_TYPES = {
    "call.created": EventType.STARTED,
    "call.ringing_on_agent": EventType.RINGING,
    "call.answered": EventType.ANSWERED,
    "call.transferred": EventType.TRANSFERRED,
    "call.external_transferred": EventType.TRANSFERRED,
    "call.hungup": EventType.ENDED,
    "call.ended": EventType.ENDED,
    "call.voicemail_left": EventType.VOICEMAIL,
    "call.comm_assets_generated": EventType.RECORDING_READY,
    "call.commented": EventType.NOTE_ADDED,
    "call.tagged": EventType.TAGGED,
    "call.untagged": EventType.TAGGED,
}
"""Other ``call.*`` events (agent_declined, hold, unhold, assigned, archived,
ivr_option_selected, unsuccessful_transfer, ...) carry the call object and become ``updated``."""

_ABANDONED_REASONS = {"short_abandoned", "abandoned_in_ivr", "abandoned_in_classic"}


class AircallConfig(ProviderConfig):
    token: SecretStr
    """The webhook's token (several, space-separated, when more than one webhook posts here)."""


class AircallProvider(Provider):
    name = "aircall"
    config_model = AircallConfig

    def __init__(self, config: AircallConfig) -> None:
        super().__init__(config)
        self._tokens = [t.encode() for t in config.token.get_secret_value().split()]
        self._region = config.default_region

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        try:
            body = json_object(request)
        except PayloadInvalid:
            raise SignatureInvalid("body is not a JSON object carrying a token") from None
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise SignatureInvalid("missing token in body")
        given = token.encode()
        matched = False
        for expected in self._tokens:
            matched |= hmac.compare_digest(expected, given)
        if not matched:
            raise SignatureInvalid("token does not match")

    def parse(self, request: WebhookRequest) -> list[CallEvent]:
        body = json_object(request)
        event = require_str(body, "event")
        if body.get("resource") not in (None, "call") or not event.startswith("call."):
            return []
        data = get_map(body, "data")
        call_id = require_str(data, "id", "data.")
        occurred = from_unix(body, "timestamp")
        if occurred is None:
            raise PayloadInvalid(
                "invalid field 'timestamp': is required",
                details=[{"field": "timestamp", "error": "is required"}],
            )
        kind = _EVENT_TYPES.get(event, EventType.UPDATED)

        direction = {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND}.get(
            str(data.get("direction") or "")
        )
        number = get_map(data, "number", "data.")
        line_raw = get_str(number, "digits", "data.number.")
        customer_raw = get_str(data, "raw_digits", "data.")
        if direction is Direction.OUTBOUND:
            customer, line = parties(direction, line_raw, customer_raw, self._region)
        else:
            customer, line = parties(direction, customer_raw, line_raw, self._region)

        started = from_unix(data, "started_at", "data.")
        answered = from_unix(data, "answered_at", "data.")
        ended = from_unix(data, "ended_at", "data.")
        voicemail = get_str(data, "voicemail", "data.")
        recording = get_str(data, "recording", "data.") or get_str(data, "asset", "data.")
        outcome = None
        if kind is EventType.ENDED or kind is EventType.VOICEMAIL:
            outcome = _outcome(data, direction, answered, voicemail)
        tags = _tag_names(data.get("tags"))
        return [
            build_event(
                event_id=f"{call_id}:{event}:{body.get('timestamp')}",
                provider=self.name,
                call_id=call_id,
                type=kind,
                occurred_at=occurred,
                direction=direction,
                customer_number=customer,
                line_number=line,
                agent=_agent(get_map(data, "user", "data."), data.get("teams")),
                started_at=started,
                answered_at=answered,
                ended_at=ended,
                duration=seconds(data, "duration", "data.") if ended else None,
                outcome=outcome,
                recording_url=recording or voicemail,
                notes=_notes(data.get("comments")),
                tags=tags,
                tags_complete=event == "call.untagged",
                raw=body,
            )
        ]


def _outcome(
    data: Mapping[str, Any], direction: Direction | None, answered: Any, voicemail: str | None
) -> CallOutcome:
    if voicemail:
        return CallOutcome.VOICEMAIL
    if answered is not None:
        return CallOutcome.COMPLETED
    if str(data.get("missed_call_reason") or "") in _ABANDONED_REASONS:
        return CallOutcome.ABANDONED
    if direction is Direction.OUTBOUND:
        return CallOutcome.NO_ANSWER
    return CallOutcome.MISSED


def _agent(user: Mapping[str, Any], teams: Any) -> Agent | None:
    agent = Agent(
        id=get_str(user, "id", "data.user."),
        email=get_str(user, "email", "data.user."),
        name=get_str(user, "name", "data.user."),
    )
    if agent.is_empty():
        return None
    if isinstance(teams, list) and teams and isinstance(teams[0], Mapping):
        team = teams[0].get("name")
        agent.team = team if isinstance(team, str) and team else None
    return agent


def _tag_names(tags: Any) -> list[str]:
    if not isinstance(tags, list):
        return []
    names = []
    for tag in tags:
        if isinstance(tag, Mapping) and isinstance(tag.get("name"), str):
            names.append(tag["name"])
        elif isinstance(tag, str):
            names.append(tag)
    return names


def _notes(comments: Any) -> list[Note]:
    if not isinstance(comments, list):
        return []
    notes = []
    for i, comment in enumerate(comments):
        if not isinstance(comment, Mapping):
            continue
        text = comment.get("content")
        if not isinstance(text, str) or not text.strip():
            continue
        author = get_map(comment, "posted_by", f"data.comments.{i}.")
        notes.append(
            Note(
                text=text,
                id=get_str(comment, "id", f"data.comments.{i}."),
                author=get_str(author, "email") or get_str(author, "name"),
                created_at=from_unix(comment, "posted_at", f"data.comments.{i}."),
            )
        )
    return notes
