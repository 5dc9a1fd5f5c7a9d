"""Splitting a call's notes and transcript into sentences that keep their origin.

Every :class:`Segment` is a verbatim slice of one note or one utterance, so anything built from
segments (the extractive summary above all) stays traceable to the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from acw_sync.model import CallRecord, Speaker

__all__ = ["NEGATIONS", "Segment", "ends_sentence", "is_negated", "segments_of", "split_sentences"]

_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "no",
        "nr",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "approx",
        "inc",
        "ltd",
        "jr",
        "sr",
        "prof",
        "mt",
        "ft",
        "dept",
        "ref",
        "tel",
        "p.m",
        "a.m",
    }
)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")

#: Words that negate a phrase that follows them closely ("not resolved", "don't want to cancel").
NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "don't",
        "doesn't",
        "didn't",
        "isn't",
        "wasn't",
        "aren't",
        "won't",
        "can't",
        "cannot",
        "couldn't",
        "haven't",
        "hasn't",
        "nor",
        "without",
        "dont",
        "didnt",
        "isnt",
        "wasnt",
        "wont",
        "cant",
        "hasnt",
        "havent",
        "neither",
    }
)
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True, slots=True)
class Segment:
    """One sentence of the call, verbatim, with where it came from."""

    text: str
    speaker: Speaker
    source: Literal["note", "transcript"]
    turn: int
    """Index of the note or utterance it came from (notes first, then the transcript)."""
    position: int
    """Order of the sentence in the whole call."""

    @property
    def lower(self) -> str:
        return self.text.lower().replace("\u2019", "'")


def split_sentences(text: str) -> list[str]:
    """Split into sentences; every returned string is a substring of ``text``."""
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start : match.start()].strip()
        last_word = candidate.rsplit(" ", 1)[-1].rstrip(".").lower() if candidate else ""
        if candidate and last_word in _ABBREVIATIONS and "\n" not in match.group(0):
            continue  # "Dr. Patel" is one sentence
        if candidate:
            pieces.append(candidate)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


def ends_sentence(text: str) -> bool:
    """True when :func:`split_sentences` would end a sentence after ``text``."""
    text = text.rstrip("\"')]")
    if not text.endswith((".", "!", "?")):
        return False
    last_word = text.split()[-1].rstrip(".").lower()
    return last_word not in _ABBREVIATIONS


def segments_of(call: CallRecord) -> list[Segment]:
    """Notes (as written by the agent) then transcript turns, split into sentences."""
    out: list[Segment] = []
    turn = 0
    for note in call.notes:
        for sentence in split_sentences(note.text):
            out.append(Segment(sentence, Speaker.AGENT, "note", turn, len(out)))
        turn += 1
    for utterance in call.transcript:
        for sentence in split_sentences(utterance.text):
            out.append(Segment(sentence, utterance.speaker, "transcript", turn, len(out)))
        turn += 1
    return out


def is_negated(lower_text: str, start: int, window: int = 3) -> bool:
    """True when one of the ``window`` words before ``start`` is a negation."""
    before = _WORD.findall(lower_text[:start])[-window:]
    return any(word in NEGATIONS or word.endswith("n't") for word in before)
