"""Finding the follow-ups the centre owes the customer, with their due moments.

An action item is a promise made for the centre ("I'll call you back tomorrow at 3", "we'll
send a replacement by Friday", "a technician will come on Monday", a note saying "promised
callback tmrw 10am") or a customer's request to be contacted ("can you call me next week?").
The customer's own promises ("I'll send you the photos") are not ours to follow up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from acw_sync.analyzer._due import DueTime, resolve_due
from acw_sync.analyzer._text import Segment, is_negated
from acw_sync.model import ActionItem, Speaker, TaskType

__all__ = ["FoundAction", "find_actions"]

_SUBJECT = (
    r"(?:i|we|she|he|they|someone|somebody|one of us|(?:[a-z.\-]+(?:'s)?\s+){0,4}?"
    r"(?:team|nurse|doctor|dr\.? [a-z]+|technician|engineer|driver|manager|supervisor|"
    r"pharmacist|specialist|colleague|department|support|finance|security|courier|crew|agent|"
    r"accounts|billing|sales|t2|tier 2|maintenance|housekeeping|reception|concierge|office|"
    r"branch|underwriter|adjuster|assessor|inspector|installer|fitter|plumber|electrician|vet|"
    r"advisor|adviser|consultant|representative|rep|staff|person|desk|lead|leader|"
    r"coordinator|planner|dispatcher|surveyor))"
)
_FUTURE = r"(?:'ll|\s+will|\s+shall|(?:\s+(?:am|is|are)|'m|'re|'s)\s+going\s+to)"
_PROMISE = re.compile(
    rf"\b{_SUBJECT}{_FUTURE}\s+(?:(?:also|then|just|definitely|personally|\w+ly)\s+)?(?P<verb>[a-z\-']+)"
)
#: "A new card will be sent", "a new bill will be issued": the centre acts, in the passive.
_PASSIVE = re.compile(
    r"\bwill\s+be\s+(?:sent|shipped|delivered|posted|mailed|emailed|e-mailed|credited|refunded|"
    r"replaced|repaired|reviewed|dispatched|contacted|called|in touch|issued|reissued|processed|"
    r"corrected|fixed|collected|picked up|installed|activated|applied|updated|scheduled|"
    r"arranged|reassessed|investigated|returned|paid|transferred|couriered)\b"
)
#: Verbs after "I'll" that are done on the spot, not followed up ("I'll be back in a minute").
_IMMEDIATE = frozenset(
    {"wait", "stay", "hold", "put", "transfer", "just", "need", "see", "explain"}
)
#: "Your delivery is scheduled for tomorrow between 9 and 11": a dated visit, said as a fact.
_SCHEDULED = re.compile(
    r"\b(?:delivery|visit|collection|pick-?up|installation|repair|engineer|technician|driver|"
    r"courier)\s+(?:is|has been)\s+(?:scheduled|booked|planned|arranged|confirmed)\b"
)
#: "I've rebooked him for Saturday morning", "I've booked an engineer for Thursday": a dated
#: visit the centre arranged is a follow-up even though the verb is in the past.
_ARRANGED = re.compile(
    r"\b(?:i've|i have|we've|we have)\s+(?:just\s+|now\s+)?(?:re)?(?:booked|scheduled|arranged)\s+"
    r"(?:him|her|them|(?:an?|the|your)\s+(?:\w+\s+)?(?:engineer|technician|plumber|electrician|"
    r"visit|appointment|delivery|collection|pick-?up|installation|repair|driver|courier|fitter)|"
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow)\b)"
)
#: Promises worded from the customer's side or in the present tense ("you'll hear from us by
#: Friday", "expect a call on Monday", "we're sending an engineer tomorrow").
_OTHER_PROMISE = re.compile(
    r"\b(?:expect (?:a|an|our|my) (?:call|phone call|ring|email|e-mail|visit|update|reply|delivery)|"
    r"you(?:'ll| will) (?:hear (?:back )?from|receive|get) (?:us|me|him|her|them|a|an|the|your)\b)"
)
_PROGRESSIVE = re.compile(
    r"\b(?:i'm|i am|we're|we are)\s+(?:sending|shipping|calling|ringing|emailing|posting|"
    r"dispatching|arranging|booking)\b"
)
_NOTE_PROMISE = re.compile(
    r"\b(?:promised|follow[- ]?up|callback|call back|cb|(?:to|will|shall)\s+(?:call|ring|phone|"
    r"e-?mail|send|contact|visit|ship|get back))\b"
)
_REQUEST = re.compile(
    r"\b(?:call|ring|phone|email|e-mail|contact|text)\s+(?:me|us)\b(?:\s+back)?|"
    r"\b(?:call|ring|phone)\s+back\b|\bget back to me\b"
)
_NO_SUBJECT = re.compile(r"^(?:it|this|that|there|you|it's|which)\b")
#: Verbs that, after "I'll"/"we will", make a promise to act for the customer.
_ACTION_VERBS = frozenset(
    {
        "call",
        "ring",
        "phone",
        "email",
        "e-mail",
        "mail",
        "text",
        "send",
        "ship",
        "deliver",
        "get",
        "follow",
        "contact",
        "come",
        "visit",
        "credit",
        "refund",
        "review",
        "have",
        "finish",
        "post",
        "arrange",
        "update",
        "let",
        "be",
        "reach",
        "give",
        "check",
        "try",
        "sort",
        "fix",
        "replace",
        "repair",
        "process",
        "investigate",
        "look",
        "confirm",
        "reissue",
        "forward",
        "book",
        "schedule",
        "install",
        "pick",
        "collect",
        "waive",
        "transfer",
        "put",
        "prepare",
        "write",
        "issue",
        "reply",
        "respond",
        "make",
        "ensure",
    }
)
#: Verbs that promise a follow-up only with a contact word ("I'll make sure she calls you").
_NOT_FOLLOW_UPS = frozenset(
    {"let", "look", "check", "try", "put", "prepare", "transfer", "make", "ensure"}
)
_CALL_WORDS = re.compile(
    r"\b(?:call|calls|calling|ring|phone|callback|cb|get back to|be in touch|check in|"
    r"follow[- ]?up|contact|reach out|try you again|speak|let you know|hear (?:back )?from)\b"
)
_EMAIL_WORDS = re.compile(r"\b(?:e-?mail|e-?mailed|emails|inbox)\b")
_FOLLOW_VERB = (
    r"(?:call|ring|phone|email|e-mail|send|check in|follow up|get back|visit|ship|deliver|"
    r"confirm|let you know|text)\b"
)
_CLAUSE = re.compile(
    r"\s*;\s*|,?\s+(?:and|but|then)\s+(?=(?:i|we|she|he|they|you|someone|our|my|the)\b)|"
    rf",?\s+(?:and|then)\s+(?:also\s+)?(?={_FOLLOW_VERB})"
)
#: A clause that continues a promise without repeating its subject ("... today and check in
#: with you on Monday").
_CONTINUATION = re.compile(rf"^{_FOLLOW_VERB}")
#: "If it isn't, call us and we'll send a new one": the customer triggers it, nothing to track.
_CUSTOMER_TRIGGERED = re.compile(
    r"\bif\b.*\b(?:call|contact|email|ring|phone) us\b|\blet us know if\b"
)


@dataclass(frozen=True, slots=True)
class FoundAction:
    """An action item and the sentence it was read from."""

    item: ActionItem
    segment: Segment
    due: DueTime | None
    requested: bool
    """True when it came from the customer's request rather than the centre's promise."""


def _kind(text: str) -> TaskType:
    if _EMAIL_WORDS.search(text):
        return TaskType.EMAIL
    if _CALL_WORDS.search(text):
        return TaskType.CALL
    return TaskType.TODO


_RIGHT_NOW = re.compile(r"\b(?:a|one|two|few|just a) (?:moment|minute|second|sec)s?\b")


def _has_later_due(clause: str, due: DueTime | None) -> bool:
    return due is not None and not _RIGHT_NOW.search(clause)


def _is_promise(clause: str, segment: Segment, due: DueTime | None = None) -> bool:
    if segment.source == "note" and _NOTE_PROMISE.search(clause):
        return True
    other = _OTHER_PROMISE.search(clause)
    if other is not None and not is_negated(clause, other.start(), window=2):
        return True
    passive = _PASSIVE.search(clause)
    if passive is not None and not is_negated(clause, passive.start()):
        return True
    if _RIGHT_NOW.search(clause):
        return False  # "I'll be back with you in a minute" is said, done and gone
    for m in _PROMISE.finditer(clause):
        verb = m["verb"]
        if verb not in _ACTION_VERBS and (verb in _IMMEDIATE or not _has_later_due(clause, due)):
            # Any verb makes a promise when it comes with a time that is not "right now"
            # ("we'll reassess the claim within five business days").
            continue
        if verb in _NOT_FOLLOW_UPS and not _CALL_WORDS.search(clause):
            continue
        if verb == "be" and not re.search(
            r"\bbe (?:in touch|there|with you|round|over|at your|on site|onsite|back (?:to|with) you)\b",
            clause,
        ):
            continue
        if verb == "have" and not re.search(r"\bhave\b.*\bto you\b", clause):
            continue
        if _NO_SUBJECT.match(clause[m.start() :]) or is_negated(
            clause, m.start() + len(m.group(0)) - len(verb), window=2
        ):
            continue
        return True
    return False


def _is_request(clause: str) -> bool:
    m = _REQUEST.search(clause)
    return m is not None and not is_negated(clause, m.start(), window=2)


def find_actions(
    segments: list[Segment], reference: datetime, zone: ZoneInfo, *, has_speakers: bool
) -> list[FoundAction]:
    """Action items in call order, one per distinct follow-up."""
    found: list[FoundAction] = []
    for segment in segments:
        from_customer = segment.speaker is Speaker.CUSTOMER
        previous_promise = False
        for clause in _CLAUSE.split(segment.lower):
            if not clause:
                continue
            clause_due = resolve_due(clause, reference, zone)
            continued = previous_promise and bool(_CONTINUATION.match(clause))
            # "I'll put the proposal together and call you on Friday": the second verb shares
            # the subject and the "will" of the first, promise or not.
            previous_promise = not from_customer and bool(_PROMISE.search(clause))
            if from_customer:
                if not _is_request(clause):
                    continue
                requested = True
            elif continued or _is_promise(clause, segment, clause_due):
                requested = False
            elif (
                _PROGRESSIVE.search(clause) or _ARRANGED.search(clause) or _SCHEDULED.search(clause)
            ) and clause_due is not None:
                requested = False  # "we're sending an engineer on Friday": dated, so a plan
            elif not has_speakers and _is_request(clause):
                requested = True
            else:
                continue
            previous_promise = previous_promise or not requested
            due = clause_due
            if due is None and clause != segment.lower:
                # "It's back in stock next month; I'll email you as soon as it is."
                due = resolve_due(segment.text, reference, zone)
            if due is None and _CUSTOMER_TRIGGERED.search(segment.lower):
                continue
            kind = _kind(clause)
            item = ActionItem(text=segment.text, due_at=due.at if due else None, kind=kind)
            found.append(FoundAction(item, segment, due, requested))
    return _deduplicate(found, zone)


def _adopt_requested_kind(found: list[FoundAction]) -> list[FoundAction]:
    """ "Could you email me the contract?" + "I'll send it over in 10 minutes" is one e-mail:
    a dated generic promise right after an undated request takes the request's kind."""
    out = list(found)
    for i, request in enumerate(found):
        if not request.requested or request.due is not None:
            continue
        for j in range(i + 1, len(found)):
            promise = found[j]
            if promise.segment.turn - request.segment.turn > 2:
                break
            if (
                not promise.requested
                and promise.due is not None
                and promise.item.kind is TaskType.TODO
            ):
                item = promise.item.model_copy(update={"kind": request.item.kind})
                out[j] = FoundAction(item, promise.segment, promise.due, False)
                break
    return out


def _deduplicate(found: list[FoundAction], zone: ZoneInfo) -> list[FoundAction]:
    found = _adopt_requested_kind(found)
    # Within one sentence, a dated clause makes the undated ones restatements of it.
    dated_segments = {f.segment.position for f in found if f.due is not None}
    found = [f for f in found if f.due is not None or f.segment.position not in dated_segments]
    kept: list[FoundAction] = []
    for action in found:
        twin = next((k for k in kept if _same_follow_up(k, action, zone)), None)
        if twin is None:
            kept.append(action)
            continue
        if _better(action, twin):
            kept[kept.index(twin)] = action
    # An undated item is dropped when a dated one of the same kind exists.
    dated_kinds = {k.item.kind for k in kept if k.due is not None}
    return [k for k in kept if k.due is not None or k.item.kind not in dated_kinds]


def _same_follow_up(a: FoundAction, b: FoundAction, zone: ZoneInfo) -> bool:
    if a.item.kind is not b.item.kind:
        return False
    if a.due is None or b.due is None:
        return a.due is None and b.due is None
    return a.due.at.astimezone(zone).date() == b.due.at.astimezone(zone).date()


def _better(new: FoundAction, old: FoundAction) -> bool:
    """Prefer the more precise mention; on a tie, the centre's promise over the request."""
    if new.due is None or old.due is None:
        return False
    if new.due.explicit_time != old.due.explicit_time:
        return new.due.explicit_time
    return old.requested and not new.requested
