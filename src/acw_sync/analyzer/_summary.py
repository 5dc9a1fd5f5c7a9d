"""The extractive summary: reason for calling, what was done, what happens next.

Every sentence of the summary is copied verbatim from a note or a transcript turn (see
:class:`~acw_sync.analyzer._text.Segment`), so a supervisor can trace each one; the summary
never exceeds its character budget. When even the reason does not fit, it is cut at a word
boundary (still a verbatim prefix of the source, never a reworded one).
"""

from __future__ import annotations

import re

from acw_sync.analyzer._actions import FoundAction
from acw_sync.analyzer._text import Segment, ends_sentence
from acw_sync.model import Speaker

__all__ = ["extractive_summary"]

_SMALL_TALK = re.compile(
    r"^(?:(?:hi|hello|hey|good (?:morning|afternoon|evening)|morning)(?:[, ]+[a-z.]+){0,2}[.!,]*$|"
    r".*\b(?:speaking|this is [a-z]+|here)\.?$|.*how (?:can|may) i help|.*thanks for calling|"
    r".*(?:anything else|have a (?:nice|great|good) day|you're welcome|bye)\b)",
)
_DONE_CUE = re.compile(
    r"\b(?:i've|i have|we've|we have|i just|i'm (?:escalating|transferring|going to escalate)|"
    r"done|booked|processed|refunded|cancelled|credited|reset|unlocked|logged|raised|escalat\w*|"
    r"transferr\w*|reproduced|sent|applied|updated|blocked|passed|opened)\b"
)
_FILLER = re.compile(r"^(?:let me|one moment|just a (?:moment|second)|i see\b|okay\b|sure\b)|.*\?$")
_MIN_WORDS = 4


def _substantive(segment: Segment) -> bool:
    return len(segment.text.split()) >= _MIN_WORDS and not _SMALL_TALK.match(segment.lower)


def _pick_reason(segments: list[Segment], has_speakers: bool) -> Segment | None:
    # Agents write the reason first in their notes; customers say it in their first real turn.
    notes = [s for s in segments if s.source == "note" and _substantive(s)]
    if notes:
        return notes[0]
    customer = [s for s in segments if s.speaker is Speaker.CUSTOMER] if has_speakers else segments
    candidates = [s for s in customer if _substantive(s)] or [
        s for s in segments if _substantive(s)
    ]
    if not candidates:
        return None
    return candidates[0]


def _fits(chosen: list[Segment], extra: Segment, budget: int) -> bool:
    if any(s.text == extra.text for s in chosen):
        return False  # the same words said twice are summarised once
    return sum(len(s.text) + 1 for s in chosen) + len(extra.text) <= budget


def extractive_summary(
    segments: list[Segment], actions: list[FoundAction], *, has_speakers: bool, budget: int
) -> str:
    """A faithful summary of at most ``budget`` characters."""
    if not segments:
        return ""
    reason = _pick_reason(segments, has_speakers)
    chosen: list[Segment] = []
    if reason is not None:
        if len(reason.text) > budget:
            return _cut(reason.text, budget)
        chosen.append(reason)

    if reason is not None and reason.source == "transcript":
        # The reason often runs over two sentences of the same turn ("My internet is down.
        # This is the third time I call."); keep the second when it is short enough.
        follow = next((s for s in segments if s.position == reason.position + 1), None)
        if (
            follow is not None
            and follow.turn == reason.turn
            and _substantive(follow)
            and (len(reason.text) + len(follow.text) + 1 <= budget * 0.45)
        ):
            chosen.append(follow)

    next_steps = [a.segment for a in actions if a.segment is not reason]
    done = [
        s
        for s in segments
        if s.speaker is not Speaker.CUSTOMER
        and s is not reason
        and _substantive(s)
        and _DONE_CUE.search(s.lower)
        and s not in next_steps
    ]
    notes = [s for s in segments if s.source == "note" and s is not reason]
    # Priority: reason, the first promise, what was done, then the rest of the agent's notes.
    for candidate in [*next_steps[:1], *done[:2], *next_steps[1:], *notes]:
        if candidate not in chosen and _fits(chosen, candidate, budget):
            chosen.append(candidate)
    if reason is not None and not done:
        # Nothing was done: add the agent's first real answer (not a question, not "let me
        # check"), if it fits.
        answer = next(
            (
                s
                for s in segments
                if s.position > reason.position
                and s.speaker is Speaker.AGENT
                and _substantive(s)
                and not _FILLER.match(s.lower)
            ),
            None,
        )
        if answer is not None and answer not in chosen and _fits(chosen, answer, budget):
            chosen.append(answer)
    chosen.sort(key=lambda s: (_role(s, reason, next_steps), s.position))
    return _join([s.text for s in chosen])


def _join(sentences: list[str]) -> str:
    """Sentences joined by a space, or a line break after one with no final punctuation (so
    "cb tmrw" and "re invoice" stay two traceable lines instead of one invented sentence)."""
    out = ""
    for sentence in sentences:
        if out:
            out += " " if ends_sentence(out) else "\n"
        out += sentence
    return out


def _role(segment: Segment, reason: Segment | None, next_steps: list[Segment]) -> int:
    if (
        reason is not None
        and segment.turn == reason.turn
        and segment.position <= reason.position + 1
    ):
        return 0
    if segment in next_steps:
        return 2
    return 1


def _cut(text: str, budget: int) -> str:
    head = text[:budget]
    if len(text) > budget and " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:")
