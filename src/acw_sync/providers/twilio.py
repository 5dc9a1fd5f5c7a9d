"""Twilio Programmable Voice: status, recording-status and transcription callbacks.

Configure on Twilio (Call API ``StatusCallback`` + ``StatusCallbackEvent`` =
``initiated ringing answered completed``, ``<Dial>`` / ``<Number>`` / ``<Client>``
``statusCallback``, ``RecordingStatusCallback``, ``transcribeCallback``) the URL
``https://<host>/webhooks/twilio``. Bodies are ``application/x-www-form-urlencoded``.

Verification (``X-Twilio-Signature``): base64 HMAC-SHA1, keyed with the Auth Token, over the
full public URL followed by every POST parameter as name+value, names sorted (values of a
repeated name sorted too). Like the official twilio-python ``RequestValidator`` we accept the
URL both with and without an explicit ``:443`` / ``:80``, because Twilio's signer is not
consistent about it. JSON-bodied webhooks carry ``bodySHA256=<hex sha256(body)>`` in the URL and
are signed over the URL alone; the body hash is checked too. A request carrying
``X-Twilio-Webhooks-Signature-Settings: key=...,algorithm=HMAC_SHA256`` is signed with a
Webhooks SharedKey instead (configure ``shared_key``). There is no timestamp, so no replay
window: redeliveries are absorbed by deterministic event ids.

The URL is ``WebhookRequest.url``, which the ingest server rebuilds from
``server.public_base_url``: behind a proxy, set it to the URL Twilio calls.

Normalisation:

* the call is the root leg: ``ParentCallSid`` when present, else ``CallSid``;
* root leg ``Direction=inbound`` from ``client:``/``sip:`` is an agent placing an outbound call
  from the Voice SDK; otherwise ``inbound`` is a customer calling in and ``outbound-*`` a call
  out to the customer;
* an inbound root leg going ``in-progress`` only means Twilio picked up (IVR, queue): the call
  counts as answered when a dialled child leg (the agent) answers. An outbound root leg going
  ``in-progress`` means the customer answered, unless AMD says ``AnsweredBy=machine_*``, which
  makes the call end as voicemail;
* a child leg's terminal status does not end the call (the caller may still be in the IVR);
  its ``CallDuration`` is the talk time;
* ``busy`` / ``no-answer`` / ``failed`` / ``canceled`` on the root leg become the outcomes
  busy / no_answer / failed / abandoned;
* a recording made by ``<Record>`` (``RecordingSource=RecordVerb``) is taken as a voicemail
  (and voicemail is the outcome that wins in the merge); other recordings (``DialVerb``,
  ``RecordingStatusCallback`` on the Calls API) are ``recording_ready``;
* ``Timestamp`` (RFC 2822) and ``SequenceNumber`` order the events; ``Duration`` (billed
  minutes) is ignored in favour of ``CallDuration`` (seconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import SecretStr

from acw_sync.errors import PayloadInvalid, SignatureInvalid
from acw_sync.model import Agent, CallEvent, CallOutcome, Direction, EventType, Utterance
from acw_sync.provider import Provider, ProviderConfig, WebhookRequest
from acw_sync.providers._payload import (
    build_event,
    event_time,
    from_rfc2822,
    get_str,
    parties,
    require_str,
    seconds,
)

__all__ = ["TwilioConfig", "TwilioProvider", "compute_signature"]

_HASHES: dict[str, Callable[..., Any]] = {
    "HMAC_SHA1": hashlib.sha1,
    "HMAC_SHA256": hashlib.sha256,
}

_TERMINAL_OUTCOME = {
    "busy": CallOutcome.BUSY,
    "no-answer": CallOutcome.NO_ANSWER,
    "failed": CallOutcome.FAILED,
    "canceled": CallOutcome.ABANDONED,
}


class TwilioConfig(ProviderConfig):
    auth_token: SecretStr
    """The account Auth Token (two, space-separated, while rotating to the secondary token)."""
    shared_key: SecretStr | None = None
    """A Webhooks SharedKey secret, for requests signed per ``X-Twilio-Webhooks-Signature-Settings``."""


def compute_signature(
    key: str, url: str, params: list[tuple[str, str]], algorithm: str = "HMAC_SHA1"
) -> str:
    """Twilio's signature of ``url`` + sorted params (names sorted, then each name's values)."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + v for name in sorted(values) for v in sorted(values[name]))
    digest = hmac.new(key.encode(), signed.encode(), _HASHES[algorithm]).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL without and with the default port (twilio-python's ``remove_port``/``add_port``)."""
    parts = urlsplit(url)
    host, port = parts.netloc, parts.port
    if port:
        return [urlunsplit(parts._replace(netloc=host.rsplit(":", 1)[0])), url]
    default = 443 if parts.scheme == "https" else 80
    return [url, urlunsplit(parts._replace(netloc=f"{host}:{default}"))]


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


class TwilioProvider(Provider):
    name = "twilio"
    config_model = TwilioConfig

    def __init__(self, config: TwilioConfig) -> None:
        super().__init__(config)
        self._tokens = config.auth_token.get_secret_value().split()
        self._shared_key = config.shared_key.get_secret_value() if config.shared_key else None
        self._region = config.default_region

    # -- verification ------------------------------------------------------------------------

    def delivery_id(self, request: WebhookRequest) -> str | None:
        # Reported on Twilio webhooks by third parties; per-event ids dedupe without it.
        return request.header("i-twilio-idempotency-token")

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        signature = request.header("x-twilio-signature")
        if not signature:
            raise SignatureInvalid("missing X-Twilio-Signature header")
        algorithm, keys = "HMAC_SHA1", self._tokens
        settings = request.header("x-twilio-webhooks-signature-settings")
        if settings:
            fields = dict(p.strip().partition("=")[::2] for p in settings.split(","))
            algorithm = (fields.get("algorithm") or "HMAC_SHA1").upper()
            if algorithm not in _HASHES:
                raise SignatureInvalid("unsupported signature algorithm in signature settings")
            if not self._shared_key:
                raise SignatureInvalid("request is signed with a SharedKey; none is configured")
            keys = [self._shared_key]
        query = _query(request.url)
        params: list[tuple[str, str]] = []
        if "bodySHA256" in query:
            body_hash = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(body_hash, query["bodySHA256"].lower()):
                raise SignatureInvalid("body does not match bodySHA256")
        elif request.method.upper() == "POST":
            try:
                params = request.form
            except PayloadInvalid:
                raise SignatureInvalid("body is not form data that can be verified") from None
        urls = _url_variants(request.url)
        given = signature.strip().encode()
        matched = False
        for key in keys:
            for url in urls:
                expected = compute_signature(key, url, params, algorithm).encode()
                matched |= hmac.compare_digest(expected, given)
        if not matched:
            raise SignatureInvalid("X-Twilio-Signature does not match the URL and parameters")

    # -- parsing -----------------------------------------------------------------------------

    def _params(self, request: WebhookRequest) -> tuple[dict[str, str], dict[str, Any]]:
        """First value of each parameter, and the raw parameters (repeated names as lists)."""
        if "bodySHA256" in _query(request.url):
            body = request.json()
            if not isinstance(body, dict):
                raise PayloadInvalid("body must be a JSON object")
            return {k: str(v) for k, v in body.items() if v is not None}, body
        pairs = request.form if request.method.upper() == "POST" else list(request.query)
        first: dict[str, str] = {}
        raw: dict[str, Any] = {}
        for name, value in pairs:
            first.setdefault(name, value)
            if name in raw:
                prev = raw[name]
                raw[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                raw[name] = value
        return first, raw

    def parse(self, request: WebhookRequest) -> list[CallEvent]:
        params, raw = self._params(request)
        if "TranscriptionSid" in params:
            return self._transcription(request, params, raw)
        if "RecordingSid" in params and "RecordingStatus" in params:
            return self._recording(request, params, raw)
        if "CallStatus" in params:
            return self._status(request, params, raw)
        if "CallSid" not in params:
            raise PayloadInvalid(
                "not a Twilio voice callback",
                details=[{"field": "CallSid", "error": "is required"}],
            )
        return []

    def _base(self, params: Mapping[str, str], raw: dict[str, Any]) -> dict[str, Any]:
        call_sid = require_str(params, "CallSid")
        return {
            "provider": self.name,
            "call_id": get_str(params, "ParentCallSid") or call_sid,
            "provider_account": get_str(params, "AccountSid"),
            "raw": raw,
        }

    def _status(
        self, request: WebhookRequest, params: Mapping[str, str], raw: dict[str, Any]
    ) -> list[CallEvent]:
        call_sid = require_str(params, "CallSid")
        status = require_str(params, "CallStatus").lower()
        sequence_text = get_str(params, "SequenceNumber")
        try:
            sequence = int(sequence_text) if sequence_text is not None else None
        except ValueError:
            raise PayloadInvalid(
                "invalid field 'SequenceNumber'",
                details=[{"field": "SequenceNumber", "error": "must be an integer"}],
            ) from None
        at = from_rfc2822(params, "Timestamp")
        occurred = event_time(request, at)
        child = get_str(params, "ParentCallSid") is not None
        answered_by = (get_str(params, "AnsweredBy") or "").lower()
        machine = answered_by.startswith("machine") or answered_by == "fax"
        fields = self._base(params, raw)
        fields.update(
            # each status happens once per leg; the sequence number tells repeats apart if any
            event_id=":".join(p for p in (call_sid, status, sequence_text) if p is not None),
            occurred_at=occurred,
            sequence=sequence,
        )
        from_, to = get_str(params, "From"), get_str(params, "To")
        if not child:
            direction, agent = self._root_direction(params.get("Direction", ""), from_)
            customer, line = parties(direction, from_, to, self._region)
            if direction is Direction.OUTBOUND and agent is not None:
                line = None  # the Voice SDK leg's From is the agent, not a line
            fields.update(
                direction=direction, customer_number=customer, line_number=line, agent=agent
            )
        else:
            fields["agent"] = _client_agent(to)

        if status in {"queued", "initiated", "ringing"}:
            kind = EventType.STARTED if status != "ringing" else EventType.RINGING
            return [build_event(type=kind, started_at=at, **fields)]
        if status == "in-progress":
            # Child leg: the dialled agent (or customer) picked up. Root leg: only an
            # outbound-API call answered by a person counts; Voice SDK calls wait for the child.
            callee_answered = fields.get("direction") is Direction.OUTBOUND and not fields["agent"]
            if (child or callee_answered) and not machine:
                return [build_event(type=EventType.ANSWERED, answered_at=at, **fields)]
            return [build_event(type=EventType.UPDATED, **fields)]
        if status == "completed" or status in _TERMINAL_OUTCOME:
            duration = seconds(params, "CallDuration")
            if child:
                talk = duration if status == "completed" else None
                return [build_event(type=EventType.UPDATED, talk_time=talk, **fields)]
            if machine:
                return [
                    build_event(
                        type=EventType.VOICEMAIL,
                        outcome=CallOutcome.VOICEMAIL,
                        ended_at=at,
                        duration=duration,
                        **fields,
                    )
                ]
            outcome = _TERMINAL_OUTCOME.get(status)
            kind = EventType.ENDED if outcome is None else EventType.MISSED
            return [
                build_event(type=kind, outcome=outcome, ended_at=at, duration=duration, **fields)
            ]
        return [build_event(type=EventType.UPDATED, **fields)]

    @staticmethod
    def _root_direction(value: str, from_: str | None) -> tuple[Direction | None, Agent | None]:
        agent = _client_agent(from_)
        if value == "inbound":
            return (Direction.OUTBOUND, agent) if agent else (Direction.INBOUND, None)
        if value.startswith("outbound"):
            return Direction.OUTBOUND, None
        return None, agent

    def _recording(
        self, request: WebhookRequest, params: Mapping[str, str], raw: dict[str, Any]
    ) -> list[CallEvent]:
        status = require_str(params, "RecordingStatus").lower()
        if status != "completed":
            return []  # in-progress / absent / failed: nothing to attach
        recording_sid = require_str(params, "RecordingSid")
        url = require_str(params, "RecordingUrl")
        started = from_rfc2822(params, "RecordingStartTime")
        length = seconds(params, "RecordingDuration")
        ended = started if started is None or length is None else _plus(started, length)
        fields = self._base(params, raw)
        voicemail = params.get("RecordingSource") == "RecordVerb"
        return [
            build_event(
                event_id=f"{require_str(params, 'CallSid')}:recording:{recording_sid}",
                type=EventType.VOICEMAIL if voicemail else EventType.RECORDING_READY,
                occurred_at=event_time(request, ended, started),
                recording_url=url,
                **fields,
            )
        ]

    def _transcription(
        self, request: WebhookRequest, params: Mapping[str, str], raw: dict[str, Any]
    ) -> list[CallEvent]:
        status = (get_str(params, "TranscriptionStatus") or "completed").lower()
        text = get_str(params, "TranscriptionText")
        if status != "completed" or not text:
            return []
        sid = require_str(params, "TranscriptionSid")
        fields = self._base(params, raw)
        return [
            build_event(
                event_id=f"{require_str(params, 'CallSid')}:transcription:{sid}",
                type=EventType.TRANSCRIPT_READY,
                occurred_at=event_time(request),
                transcript=[Utterance(text=text)],
                recording_url=get_str(params, "RecordingUrl"),
                **fields,
            )
        ]


def _client_agent(address: str | None) -> Agent | None:
    """``client:alice`` / ``sip:alice@pbx`` -> the agent ``alice``; a phone number -> None."""
    if not address:
        return None
    scheme, sep, rest = address.partition(":")
    if sep and scheme.lower() in {"client", "sip"} and rest:
        return Agent(id=rest.split("@", 1)[0] if scheme.lower() == "sip" else rest)
    return None


def _plus(start: datetime, length: float) -> datetime:
    return start + timedelta(seconds=length)
