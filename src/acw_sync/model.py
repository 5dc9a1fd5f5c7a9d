"""The canonical call model: the one contract shared by providers, the core and connectors.

Providers turn a platform's webhook into :class:`CallEvent` objects. The core merges every event
of one call into a :class:`CallRecord` (see :mod:`acw_sync.merge`), derives the agent's wrap-up
into :class:`Analysis`, and hands the record to connectors, which write a call activity and
:class:`FollowUp` tasks into a CRM and answer with :class:`CustomerRef` / :class:`CrmObjectRef`.

Conventions, enforced by validation:

* phone numbers are E.164 strings (``+14155550100``), normalised with ``phonenumbers``;
  a value that is not a dialable number (``anonymous``, ``client:alice``) is kept as ``None``
  on the typed field and survives in ``raw``;
* times are timezone-aware UTC ``datetime`` objects (naive input is rejected);
* durations are seconds, as floats.

This module owns data shapes only: no I/O, no Redis, no HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from acw_sync.phone import to_e164

__all__ = [
    "Agent",
    "Analysis",
    "CallEvent",
    "CallFacts",
    "CallOutcome",
    "CallRecord",
    "CrmObjectRef",
    "CustomerRef",
    "Direction",
    "EventType",
    "FollowUp",
    "Note",
    "Priority",
    "Resolution",
    "Sentiment",
    "Speaker",
    "TaskType",
    "Utterance",
    "call_key",
]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (UTC)")
    return value.astimezone(UTC)


def _e164(value: str | None) -> str | None:
    if value is None:
        return None
    normalised = to_e164(value)
    if normalised is None:
        raise ValueError(f"not a phone number: {value!r}")
    return normalised


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""A timezone-aware datetime, stored in UTC."""

E164 = Annotated[str, AfterValidator(_e164)]
"""A phone number in E.164 form. Providers normalise with a default region before building."""

Seconds = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class EventType(StrEnum):
    """What one platform event says happened to a call."""

    STARTED = "started"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"
    MISSED = "missed"
    VOICEMAIL = "voicemail"
    RECORDING_READY = "recording_ready"
    TRANSCRIPT_READY = "transcript_ready"
    NOTE_ADDED = "note_added"
    TAGGED = "tagged"
    DISPOSITION_SET = "disposition_set"
    WRAPUP_ENDED = "wrapup_ended"
    TRANSFERRED = "transferred"
    UPDATED = "updated"
    """Any other event that carries call data (hold, assignment, a platform's summary)."""


#: Events after which the call is over and can be synced.
TERMINAL_EVENTS = frozenset({EventType.ENDED, EventType.MISSED, EventType.VOICEMAIL})


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class CallOutcome(StrEnum):
    """How the call ended, as the telephony platform saw it."""

    COMPLETED = "completed"
    MISSED = "missed"
    VOICEMAIL = "voicemail"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no_answer"
    ABANDONED = "abandoned"

    @property
    def connected(self) -> bool:
        return self is CallOutcome.COMPLETED


class Resolution(StrEnum):
    """The business outcome an agent would record (derived by the analyzer)."""

    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    CALLBACK_PROMISED = "callback_promised"
    ESCALATED = "escalated"
    VOICEMAIL = "voicemail"
    MISSED = "missed"


class Sentiment(StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"


class Speaker(StrEnum):
    AGENT = "agent"
    CUSTOMER = "customer"
    UNKNOWN = "unknown"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class TaskType(StrEnum):
    CALL = "call"
    EMAIL = "email"
    TODO = "todo"


class Agent(_Model):
    """The agent who handled the call, as the platform identifies them."""

    id: str | None = None
    email: str | None = None
    name: str | None = None
    team: str | None = None

    def is_empty(self) -> bool:
        return not (self.id or self.email or self.name or self.team)


class Note(_Model):
    """A note typed on the call (Aircall comment, disposition note, CRM-bound remark)."""

    text: str = Field(min_length=1)
    id: str | None = None
    author: str | None = None
    created_at: UtcDatetime | None = None

    @property
    def identity(self) -> str:
        """Two notes with the same identity are the same note delivered twice."""
        return f"id:{self.id}" if self.id else f"text:{self.text.strip()}"


class Utterance(_Model):
    """One turn of a transcript."""

    speaker: Speaker = Speaker.UNKNOWN
    text: str
    offset: Seconds | None = None
    """Seconds from the start of the recording, where the platform gives it."""


class CallFacts(_Model):
    """What a platform can tell about a call: shared by :class:`CallEvent` (what one event
    said) and :class:`CallRecord` (what all events said, merged)."""

    provider_account: str | None = None

    direction: Direction | None = None
    customer_number: E164 | None = None
    line_number: E164 | None = None
    """The centre's number the call came in on or went out from."""
    agent: Agent | None = None

    started_at: UtcDatetime | None = None
    answered_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    duration: Seconds | None = None
    talk_time: Seconds | None = None
    hold_time: Seconds | None = None
    wrapup_time: Seconds | None = None

    outcome: CallOutcome | None = None
    disposition: str | None = None
    recording_url: str | None = None
    transcript: list[Utterance] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        return [t.strip() for t in tags if t and t.strip()]


class CallEvent(CallFacts):
    """One event of one call, as a platform reported it, normalised.

    Every field but the identity and ``type`` is optional: an event carries what its platform
    sent and nothing else. ``raw`` keeps the platform's payload for audit; nothing is dropped.
    """

    event_id: str = Field(min_length=1, max_length=512)
    """Unique per event; redeliveries of the same event carry the same id."""
    provider: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")
    call_id: str = Field(min_length=1, max_length=256)
    """The platform's id of the (root) call; all events of one call share it."""
    type: EventType
    occurred_at: UtcDatetime
    sequence: int | None = None
    """Ordering hint where the platform sends one (Twilio SequenceNumber, RingCentral sequence)."""
    removed_tags: list[str] = Field(default_factory=list)
    """Tags the platform reports as removed."""
    tags_complete: bool = False
    """True when ``tags`` is the platform's whole current tag set (Aircall ``call.untagged``
    sends the call with its remaining tags): merged tags missing from it were removed."""

    raw: dict[str, Any] = Field(default_factory=dict)

    @field_validator("removed_tags")
    @classmethod
    def _clean_removed(cls, tags: list[str]) -> list[str]:
        return [t.strip() for t in tags if t and t.strip()]

    @property
    def call_key(self) -> str:
        return call_key(self.provider, self.call_id)


class Analysis(_Model):
    """What a good agent would have written after the call (see :mod:`acw_sync.analyzer`)."""

    summary: str = ""
    resolution: Resolution | None = None
    sentiment: Sentiment | None = None
    sentiment_score: float | None = Field(default=None, ge=-1, le=1)
    categories: list[str] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    analyzer: str = "offline"


class ActionItem(_Model):
    """A promise found in the call, with the moment it is due."""

    text: str
    due_at: UtcDatetime | None = None
    kind: TaskType = TaskType.CALL


class CallRecord(CallFacts):
    """Everything known about one call, merged from all its events.

    Built only by :func:`acw_sync.merge.merge_events`; a record is a pure function of the set
    of its events, so any order or repetition of delivery gives the same record.
    """

    key: str
    provider: str
    call_id: str

    ended: bool = False
    """True once a terminal event (ended, missed, voicemail) has arrived."""
    event_ids: list[str] = Field(default_factory=list)
    """Ids of the merged events, sorted; the raw payloads stay on the stored events."""
    last_event_at: UtcDatetime | None = None

    analysis: Analysis | None = None

    @property
    def handle_time(self) -> float | None:
        """AHT = talk + hold + wrap-up, in seconds (None when talk time is unknown)."""
        if self.talk_time is None:
            return None
        return self.talk_time + (self.hold_time or 0.0) + (self.wrapup_time or 0.0)

    @property
    def missed(self) -> bool:
        return self.outcome is not None and not self.outcome.connected

    def text_corpus(self) -> str:
        """Notes and transcript as one text, for rules and the analyzer."""
        parts = [n.text for n in self.notes] + [u.text for u in self.transcript]
        return "\n".join(parts)


class CustomerRef(_Model):
    """A customer record in a CRM (Contact, Lead, Account, HubSpot contact, sandbox row)."""

    object_type: str
    id: str
    name: str | None = None
    phone: str | None = None
    owner_id: str | None = None
    account_id: str | None = None
    """The company the customer belongs to, where the CRM links one."""
    url: str | None = None
    created_by_acw: bool = False


class CrmObjectRef(_Model):
    """An object acw-sync wrote into a CRM: the call activity or a follow-up task."""

    object_type: str
    id: str
    url: str | None = None
    created: bool = True
    """False when the write updated an object that already existed."""


class FollowUp(_Model):
    """A follow-up task a rule decided to create for one call."""

    rule: str = Field(min_length=1)
    """The rule's id; one rule fires at most once per call and connector instance."""
    call_key: str
    subject: str = Field(min_length=1, max_length=255)
    body: str = ""
    due_at: UtcDatetime
    type: TaskType = TaskType.CALL
    priority: Priority = Priority.NORMAL
    owner_id: str | None = None
    """A CRM owner/user id; None means the agent's owner, else the connector's default."""
    reminder_at: UtcDatetime | None = None

    @property
    def key(self) -> str:
        """The idempotency key of this task: one per rule per call."""
        return f"{self.call_key}#{self.rule}"


def call_key(provider: str, call_id: str) -> str:
    """The stable key of one call across the system: ``provider:call_id``."""
    return f"{provider}:{call_id}"


def utcnow() -> datetime:
    return datetime.now(UTC)


Analysis.model_rebuild()
