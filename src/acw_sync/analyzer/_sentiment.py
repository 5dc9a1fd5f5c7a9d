"""The customer's sentiment: positive, neutral or negative, with a score in [-1, 1].

VADER scores each of the customer's sentences (all sentences when the transcript does not say
who speaks). Three corrections make it fit call-centre speech:

* formulaic politeness ("thanks", "please", "have a nice day") is removed before scoring, so
  "Right. Thanks, I suppose." is not a happy customer;
* polite anger and sarcasm ("thanks for nothing", "thank you ever so much for keeping me on
  hold", "Oh great, just great", a lone "Wonderful." in an unhappy call) and repeated contact
  ("this is the third time I call") count as clearly negative;
* milder irritation ("it still hasn't arrived", "it's been six weeks") counts a little, and
  as anger once three such remarks pile up;
* later sentences weigh more than earlier ones (how the call ends is what a supervisor reads),
  and negative sentences weigh a little more than positive ones.
"""

from __future__ import annotations

import re
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from acw_sync.analyzer._text import Segment
from acw_sync.model import Sentiment, Speaker

__all__ = ["NEGATIVE_THRESHOLD", "POSITIVE_THRESHOLD", "customer_sentiment"]

POSITIVE_THRESHOLD = 0.25
NEGATIVE_THRESHOLD = -0.2

_FORMULAS = re.compile(
    r"\b(?:thank(?:s| you) for (?:calling|holding|waiting|your patience)|how (?:can|may) i help"
    r"(?: you)?|"
    # plain thanks is a formula; "thanks so much", "thanks heaps" are gratitude and stay
    r"thank you(?! so much| very much| ever so| a lot)|thanks(?! a lot| so much| heaps| a million)|"
    r"cheers|"
    r"please|bye|goodbye|have a (?:nice|good|great) (?:day|evening|weekend)|you're welcome|"
    r"good (?:morning|afternoon|evening)|hello|hi|hey|okay|ok|alright|sure|right|"
    r"sounds good|that's fine|it's fine|that works|fair enough|no problem|got it|of course|"
    r"merry christmas|happy (?:new year|holidays|easter)|season's greetings)\b[,.!]?",
    re.IGNORECASE,
)
_ANGER = re.compile(
    r"\b(?:thanks for nothing|thank you for nothing|thanks? (?:you )?(?:ever )?so much for "
    r"(?:keeping|wasting|making|leaving|nothing)|(?:oh|just) (?:great|wonderful|perfect|lovely|"
    r"brilliant|fantastic)|great\. just great|really lovely|yeah,? right|of course (?:it|they) "
    r"(?:was|were|did|is)|whatever|i suppose|can't wait\.|how (?:lovely|nice|wonderful)|"
    r"(?:third|fourth|fifth|sixth|\d+(?:st|nd|rd|th)) time|"
    r"(?:called|explained|asked|phoned|rung|written|emailed)\s+(?:\w+\s+){0,3}?(?:three|four|five|"
    r"six|several|many|multiple|\d+) times|nobody (?:listens|is telling|tells|cares|calls)|"
    r"losing (?:my )?patience|fed up|not good enough|unacceptable|had better|wasted|waste of|"
    r"this is (?:a joke|ridiculous|absurd)|not happy|kept me on hold|on hold for|ugh|argh|"
    r"(?:make|file|lodge|raise|register) a (?:formal )?complaint|"
    r"been waiting (?:for )?(?:\w+ )?(?:days|weeks|hours|months|ages)|sick (?:and tired )?of|"
    r"tired of|had enough|(?:nobody|no one|no-one|never) (?:called|rang|came|got back|phoned)|"
    r"trying to get through|(?:have to|just) (?:live|put up) with it|"
    # distress is a negative mood too, however politely put
    r"funeral|emergency|desperate|stranded|(?:really|very|extremely) (?:important|urgent)|"
    r"i'm (?:really )?(?:worried|scared|panicking)|please hurry|hurry up|unbelievable|"
    r"i'll believe it when i see it|(?:nobody|no one|no-one) (?:has |have )?(?:did|come|came|"
    r"turned up|shown up|showed up|called|rung|got back))\b"
)
#: Weaker signs of frustration: alone they describe a problem, together they are a mood.
_IRRITATION = re.compile(
    r"\b(?:it's been (?:\w+ )?(?:weeks|months)|"
    r"still (?:hasn't|haven't|hasnt|havent|not|isn't|doesn't|don't|won't|can't|no)|"
    r"(?:actually|finally|hopefully|better)\b[^.!?]{0,40}\bthis time|again\b[.!?]|in a row|"
    r"(?:second|2nd) (?:time|night|day|week)|even though i)"
)
_IRRITATION_SCORE = -0.15
_NOTED_MOOD = re.compile(
    r"\b(?:happy|pleased|satisfied|delighted|grateful|thankful|relieved|angry|upset|frustrated|"
    r"annoyed|furious|irate|unhappy|disappointed|rude|abusive|aggressive|shouting|swearing|"
    r"complain\w*|calm|polite|friendly|impatient|distressed|worried|anxious|in tears|crying)\b"
)
_IRRITATION_LIMIT = 3
_SARCASTIC_SHORT = re.compile(
    r"^(?:oh,? )?(?:great|wonderful|lovely|perfect|brilliant|fantastic|marvellous|super|"
    r"terrific|sure|fine|whatever)[.!]*$"
)
_ANGER_SCORE = -0.6


#: Words VADER scores that, on a support line, name the request or the problem rather than the
#: caller's mood ("the export fails with an error", "I'd like to cancel", "the room is free").
_NOT_MOOD = (
    "error",
    "errors",
    "fail",
    "fails",
    "failed",
    "failing",
    "failure",
    "broken",
    "problem",
    "problems",
    "issue",
    "issues",
    "fault",
    "crash",
    "crashed",
    "crashing",
    "dispute",
    "disputes",
    "disputed",
    "cancel",
    "cancelled",
    "canceled",
    "stuck",
    "lost",
    "missing",
    "block",
    "blocked",
    "damage",
    "damaged",
    "dead",
    "late",
    "freeze",
    "frozen",
    "fine",
    "free",
    "like",
    "help",
    "ready",
    "ok",
    "okay",
    "yes",
    "no",
    "sure",
    "want",
    "pay",
    "charged",
    "charge",
    "debt",
    "owe",
    "fraud",
    "leave",
    "drop",
    "drops",
    "dropping",
    "share",
    "interested",
    "promotion",
    "credit",
    "refund",
    "care",
    "well",
    "wrong",
    "broke",
    "stopped",
    "stop",
    "promise",
    "promised",
    "please",
    "mistake",
    "rejected",
    "declined",
    "denied",
    "understand",
    "helps",
    "helped",
    "grand",
    "increase",
    "increased",
    "decrease",
    "decreased",
    "yep",
    "yeah",
    "hope",
    "hoping",
    # first names VADER reads as words
    "rob",
    "joy",
    "grace",
    "faith",
)


@lru_cache(maxsize=1)
def _vader() -> SentimentIntensityAnalyzer:
    analyzer = SentimentIntensityAnalyzer()
    for word in _NOT_MOOD:
        analyzer.lexicon.pop(word, None)
    return analyzer


def _score_sentence(text: str) -> float:
    stripped = _FORMULAS.sub(" ", text).strip(" ,.!")
    if len(stripped) < 2:
        return 0.0
    return float(_vader().polarity_scores(stripped)["compound"])


def customer_sentiment(segments: list[Segment], *, has_speakers: bool) -> tuple[Sentiment, float]:
    """Label and score of the customer's mood over the call."""
    voice = [s for s in segments if s.speaker is Speaker.CUSTOMER] if has_speakers else segments
    if voice and all(s.source == "note" for s in voice):
        # The agent's notes record facts ("agreed to call back", "refund issued"); they speak
        # of the customer's mood only when they say so ("cust happy", "very upset").
        voice = [s for s in voice if _NOTED_MOOD.search(s.lower)]
    if not voice:
        return Sentiment.NEUTRAL, 0.0
    scores = [_score_sentence(s.text) for s in voice]
    anger = [bool(_ANGER.search(s.lower)) for s in voice]
    unhappy = (
        any(anger)
        or any(score <= -0.3 for score in scores)
        or any(_IRRITATION.search(s.lower) for s in voice)
    )
    fed_up = sum(len(_IRRITATION.findall(s.lower)) for s in voice) >= _IRRITATION_LIMIT
    total = weight_sum = 0.0
    for index, (segment, raw, angry) in enumerate(zip(voice, scores, anger, strict=True)):
        score = raw
        if angry or (unhappy and _SARCASTIC_SHORT.match(segment.lower.strip())):
            score = min(raw, 0.0) + _ANGER_SCORE
        elif irritations := len(_IRRITATION.findall(segment.lower)):
            # One "still hasn't arrived" describes a problem; three such remarks are a mood.
            per_hit = _ANGER_SCORE if fed_up else _IRRITATION_SCORE
            score = min(raw, 0.0) + per_hit * irritations
        if score == 0.0:
            continue
        weight = (1.0 + index / max(1, len(voice) - 1)) * (1.3 if score < 0 else 1.0)
        total += weight * score
        weight_sum += weight
    value = max(-1.0, min(1.0, total / weight_sum)) if weight_sum else 0.0
    if value >= POSITIVE_THRESHOLD:
        return Sentiment.POSITIVE, round(value, 3)
    if value <= NEGATIVE_THRESHOLD:
        return Sentiment.NEGATIVE, round(value, 3)
    return Sentiment.NEUTRAL, round(value, 3)
