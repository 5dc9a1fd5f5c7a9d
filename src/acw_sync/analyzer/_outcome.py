"""The business outcome of a call (:class:`~acw_sync.model.Resolution`) and its categories.

Outcome precedence, first match wins (documented in the README):

1. the telephony outcome: not connected -> ``missed``; voicemail -> ``voicemail``;
2. the disposition, then the tags, when they name an outcome ("Escalated", "Resolved", ...);
3. the words: a hand-over ("I'm escalating this", "transferring you to", "passed it to our
   fraud team") -> ``escalated``; a confirmed fix ("it's working now", "that fixed it") ->
   ``resolved``; a call-back the centre owes -> ``callback_promised``; then whichever comes
   last of a problem left open ("still not working", "I can't fix that from here", "not
   resolved") -> ``unresolved`` and a remedy done or booked ("I've refunded", "we'll send a
   replacement") -> ``resolved``; a call with neither (a question answered) -> ``resolved``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from acw_sync.analyzer._actions import FoundAction
from acw_sync.analyzer._text import Segment, is_negated
from acw_sync.model import CallOutcome, CallRecord, Resolution, Speaker, TaskType

__all__ = ["INTENT_CATEGORIES", "categorize", "normalise_tag", "resolve_outcome"]

#: Categories that state an intent or a feeling, which a negation reverses.
INTENT_CATEGORIES = frozenset({"cancellation_risk", "sales_opportunity", "complaint"})

_LABELS: list[tuple[re.Pattern[str], Resolution]] = [
    (re.compile(r"voice ?mail|\bvm\b"), Resolution.VOICEMAIL),
    (re.compile(r"\bmissed\b|no[ _-]?answer|abandon"), Resolution.MISSED),
    (re.compile(r"escalat|tier ?2|second[ -]level"), Resolution.ESCALATED),
    (re.compile(r"call ?back|follow[ -]?up"), Resolution.CALLBACK_PROMISED),
    (re.compile(r"unresolved|not resolved|open|pending|unsolved"), Resolution.UNRESOLVED),
    (re.compile(r"resolved|solved|fixed|closed|\bdone\b"), Resolution.RESOLVED),
]

_HANDOVER = re.compile(
    r"\b(?:escalat(?:e|ed|ing)|transferr(?:ed|ing)\s+(?:you|this|it|the call|your call)|"
    r"transfer\s+(?:you|this|it|your call)\b|send(?:ing)?\s+(?:this|it)\s+(?:on\s+)?to\s+(?:my|our|the)\b|"
    r"to\s+(?:my|our|the)\s+(?:\w+\s+)?(?:supervisor|manager|team leader)\b|put(?:ting)? you through to|"
    # "passed your claim to our fraud team" hands over; "I'll pass it on to her" relays thanks
    r"pass(?:ed|ing)?\s+(?!(?:it|that|this|the message)\s+on\s+to\b|your (?:thanks|feedback|"
    r"compliments|comments|kind words)\b)(?:\w+\s+){0,3}?(?:on\s+)?to\s+(?:my|our|the|a|him|her|them)\b|"
    r"(?:need|needs|requires?)\s+(?:\w+\s+)?(?:approval|sign-off|authori[sz]ation)\s+from|"
    r"hand(?:ed|ing)?\s+(?:\w+\s+){0,3}?over\s+to|refer(?:red|ring)?\s+(?:\w+\s+){0,3}?to\s+(?:my|our|the)|"
    r"raised\s+(?:it|this|that|a ticket|a case)\s+with|"
    r"(?:open(?:ed|ing|s)?|log(?:ged|ging|s)?|creat(?:e|ed|es|ing)|rais(?:e|ed|es|ing)|"
    r"fil(?:e|ed|es|ing))\s+(?:a|an|the)?\s*(?:\w+\s+)?(?:ticket|bug|case|incident|investigation|claim|complaint|request)(?:\s+[\w#\-]+)?\s+with|"
    r"(?:manager|supervisor)\s+will|tier ?2|second[- ]level support)"
)
_FIXED = re.compile(
    r"\b(?:(?:it's|it is|its|that's|everything's|everything is|all)\s+(?:(?!not\b|never\b)\w+\s+)?working(?:\s+(?:now|again|fine))|"
    r"working again|that fixed it|that's fixed|it's fixed|problem solved|issue (?:is )?resolved|"
    r"(?:is|has been|was) resolved|all sorted|sorted now|i'm in\b|that did the trick|works now|"
    r"works again|(?:it|that) worked|it works)"
)
_OPEN = re.compile(
    r"\b(?:still (?:not|isn't|doesn't|don't|won't|can't|cannot|hasn't|haven't|no|broken|down|"
    r"waiting)|not (?:resolved|fixed|solved|working)|isn't (?:fixed|resolved|working)|"
    r"(?:can't|cannot|couldn't|unable to) (?:fix|solve|resolve|change|help)|out of ideas|"
    r"no (?:solution|fix)|didn't (?:help|work)|doesn't (?:help|work)|let us know if it happens|"
    r"try (?:again|reinstalling|restarting|a wired)|working on it|investigating|"
    r"no idea (?:why|when)|(?:is|are) down|(?:expect|hope|hoping)\s+(?:it|this|that)\s+to\s+be\s+"
    r"(?:fixed|resolved|back)|(?:is|are) aware of|known (?:issue|problem|fault|incident|outage)|"
    r"nothing (?:more |else )?(?:i|we) can do|live with it|put up with it)\b"
)
_REMEDY = re.compile(
    r"\b(?:(?:i|we)(?:'ve| have)\s+(?:just\s+|now\s+|also\s+)?(?:processed|issued|refunded|"
    r"cancelled|canceled|credited|unlocked|applied|updated|booked|sent|moved|reset|changed|"
    r"added|waived|replaced|fixed|sorted|corrected|reissued|blocked|marked|arranged|"
    r"scheduled|ordered|activated|restored|removed)|done,|done\.|you're booked|you are booked|"
    r"is now|are now|has been (?:processed|sent|refunded|credited|fixed|booked)|"
    r"(?:it|that) applies)"
)


def normalise_tag(tag: str) -> str:
    """A platform tag as a category name: ``"Technical Issue"`` -> ``"technical_issue"``."""
    return re.sub(r"[^a-z0-9]+", "_", tag.strip().lower()).strip("_")


def _label(texts: Iterable[str | None]) -> Resolution | None:
    for text in texts:
        if not text:
            continue
        lowered = text.lower()
        for pattern, resolution in _LABELS:
            if pattern.search(lowered):
                return resolution
    return None


_CONDITIONAL = re.compile(r"\b(?:if|once|when|until|unless|as soon as|in case)\s+(?:\w+\s+)?$")


def _last(
    pattern: re.Pattern[str],
    segments: list[Segment],
    *,
    negatable: bool = True,
    conditional_ok: bool = True,
) -> int:
    """Position of the last segment with an un-negated (and, if asked, unconditional) match."""
    found = -1
    for segment in segments:
        for m in pattern.finditer(segment.lower):
            if not conditional_ok and _CONDITIONAL.search(
                segment.lower[max(0, m.start() - 24) : m.start()]
            ):
                continue
            if not negatable or not is_negated(segment.lower, m.start(), window=2):
                found = segment.position
    return found


def resolve_outcome(
    call: CallRecord, segments: list[Segment], actions: list[FoundAction]
) -> Resolution:
    if call.outcome is CallOutcome.VOICEMAIL:
        return Resolution.VOICEMAIL
    if call.outcome is not None and not call.outcome.connected:
        return Resolution.MISSED
    if (label := _label([call.disposition])) is not None:
        return label
    if (label := _label(call.tags)) is not None and label is not Resolution.CALLBACK_PROMISED:
        return label
    if not segments:
        return (
            Resolution.MISSED
            if call.outcome is None and not call.talk_time
            else Resolution.RESOLVED
        )
    if _last(_HANDOVER, segments) >= 0:
        return Resolution.ESCALATED
    # The pattern carries its own subject ("it's working now"), so a "No, no," before it is
    # an answer to "is it still broken?", not a negation of the fix; "if it's fixed" is not one.
    fixed = _last(_FIXED, segments, negatable=False, conditional_ok=False)
    if fixed >= 0:
        return Resolution.RESOLVED
    if any(a.item.kind is TaskType.CALL for a in actions):
        return Resolution.CALLBACK_PROMISED
    still_open = _last(_OPEN, segments)
    remedy = max(
        _last(_REMEDY, [s for s in segments if s.speaker is not Speaker.CUSTOMER]),
        # A dated delivery, visit or credit is a remedy; a promised update is not.
        max(
            (
                a.segment.position
                for a in actions
                if a.due is not None and a.item.kind is TaskType.TODO
            ),
            default=-1,
        ),
    )
    return Resolution.UNRESOLVED if still_open > remedy else Resolution.RESOLVED


def categorize(
    segments: list[Segment], tags: Iterable[str], taxonomy: Mapping[str, list[str]]
) -> list[str]:
    """Taxonomy categories whose phrases occur, then the platform's tags.

    For intent categories (:data:`INTENT_CATEGORIES`) a negated phrase does not count ("I'm not
    going to cancel"); a topic stays a topic under negation ("I haven't had my refund" is
    still about billing).
    """
    compiled = _compile(taxonomy)
    found: list[str] = []
    for name, pattern in compiled:
        intent = name in INTENT_CATEGORIES
        for segment in segments:
            if any(
                not (intent and is_negated(segment.lower, m.start()))
                for m in pattern.finditer(segment.lower)
            ):
                found.append(name)
                break
    for tag in tags:
        name = normalise_tag(tag)
        if name and name not in found:
            found.append(name)
    return found


_CACHE: dict[int, tuple[Mapping[str, list[str]], list[tuple[str, re.Pattern[str]]]]] = {}


def _compile(taxonomy: Mapping[str, list[str]]) -> list[tuple[str, re.Pattern[str]]]:
    cached = _CACHE.get(id(taxonomy))
    if cached is not None and cached[0] is taxonomy:
        return cached[1]
    compiled = [
        (
            name,
            re.compile(
                r"\b(?:"
                + "|".join(re.escape(p.lower()) for p in sorted(phrases, key=len, reverse=True))
                + r")\b"
            ),
        )
        for name, phrases in taxonomy.items()
        if phrases
    ]
    _CACHE[id(taxonomy)] = (taxonomy, compiled)
    return compiled
