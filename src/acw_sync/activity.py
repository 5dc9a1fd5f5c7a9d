"""The default wording of a call activity, shared by every connector's mapping.

What an agent would write: a subject line, then a body with the summary, the notes, an excerpt
of the transcript and the recording link. Connectors call these for their default mapping;
admins override any field with templates. Pure functions, no I/O.
"""

from __future__ import annotations

import html

from acw_sync.model import CallOutcome, CallRecord, Direction

__all__ = ["activity_body", "activity_body_html", "activity_subject", "transcript_excerpt"]

_OUTCOME_WORDS = {
    CallOutcome.COMPLETED: "call",
    CallOutcome.MISSED: "missed call",
    CallOutcome.VOICEMAIL: "voicemail",
    CallOutcome.BUSY: "call (busy)",
    CallOutcome.FAILED: "call (failed)",
    CallOutcome.NO_ANSWER: "call (no answer)",
    CallOutcome.ABANDONED: "call (abandoned)",
}
TRANSCRIPT_EXCERPT_CHARS = 1000


def activity_subject(call: CallRecord) -> str:
    """``Inbound call from +1415...`` / ``Missed call from ...`` / ``Outbound call to ...``."""
    what = _OUTCOME_WORDS.get(call.outcome, "call") if call.outcome else "call"
    direction = call.direction or Direction.INBOUND
    if direction is Direction.OUTBOUND:
        prefix, prep = "Outbound", "to"
    elif direction is Direction.INTERNAL:
        prefix, prep = "Internal", "with"
    else:
        prefix, prep = "Inbound", "from"
    who = call.customer_number or "unknown number"
    text = f"{prefix} {what} {prep} {who}"
    if what in {"missed call", "voicemail"}:
        text = f"{what[0].upper()}{what[1:]} {prep} {who}"
    return text[:255]


def transcript_excerpt(call: CallRecord, limit: int = TRANSCRIPT_EXCERPT_CHARS) -> str:
    lines = []
    for utterance in call.transcript:
        who = utterance.speaker.value.capitalize()
        lines.append(f"{who}: {utterance.text}")
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _sections(call: CallRecord) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    analysis = call.analysis
    if analysis and analysis.summary:
        sections.append(("Summary", analysis.summary))
    facts = []
    if analysis and analysis.resolution:
        facts.append(f"Outcome: {analysis.resolution.value.replace('_', ' ')}")
    elif call.outcome:
        facts.append(f"Outcome: {call.outcome.value.replace('_', ' ')}")
    if analysis and analysis.sentiment:
        facts.append(f"Customer sentiment: {analysis.sentiment.value}")
    if call.disposition:
        facts.append(f"Disposition: {call.disposition}")
    if call.duration is not None:
        facts.append(f"Duration: {round(call.duration)} s")
    if call.agent and (call.agent.name or call.agent.email):
        facts.append(f"Agent: {call.agent.name or call.agent.email}")
    tags = list(dict.fromkeys([*(analysis.categories if analysis else []), *call.tags]))
    if tags:
        facts.append(f"Tags: {', '.join(tags)}")
    if facts:
        sections.append(("Details", "\n".join(facts)))
    if call.notes:
        sections.append(("Notes", "\n".join(f"- {n.text}" for n in call.notes)))
    excerpt = transcript_excerpt(call)
    if excerpt:
        sections.append(("Transcript (excerpt)", excerpt))
    if call.recording_url:
        sections.append(("Recording", call.recording_url))
    return sections


def activity_body(call: CallRecord) -> str:
    """The activity's description as plain text."""
    return "\n\n".join(f"{title}:\n{text}" for title, text in _sections(call))


def activity_body_html(call: CallRecord) -> str:
    """The activity's description as simple HTML (HubSpot's ``hs_call_body``)."""
    parts = []
    for title, text in _sections(call):
        body = html.escape(text).replace("\n", "<br>")
        if title == "Recording":
            url = html.escape(text, quote=True)
            body = f'<a href="{url}">{body}</a>'
        parts.append(f"<p><strong>{html.escape(title)}</strong><br>{body}</p>")
    return "".join(parts)
