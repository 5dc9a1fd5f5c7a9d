"""The default analyzer: rules, a sentiment lexicon and date arithmetic; no network, no model.

About a millisecond per call, deterministic, and the fallback of every other analyzer.
"""

from __future__ import annotations

from acw_sync.analyzer._actions import find_actions
from acw_sync.analyzer._base import AnalysisContext
from acw_sync.analyzer._outcome import categorize, resolve_outcome
from acw_sync.analyzer._sentiment import customer_sentiment
from acw_sync.analyzer._summary import extractive_summary
from acw_sync.analyzer._text import segments_of
from acw_sync.model import Analysis, CallRecord, Speaker

__all__ = ["OfflineAnalyzer"]


class OfflineAnalyzer:
    """Extractive summary, outcome, customer sentiment, categories and dated action items."""

    name = "offline"

    def analyze(self, call: CallRecord, ctx: AnalysisContext) -> Analysis:
        segments = segments_of(call)
        has_speakers = any(u.speaker is not Speaker.UNKNOWN for u in call.transcript)
        reference = ctx.reference_for(call)
        actions = find_actions(segments, reference, ctx.timezone, has_speakers=has_speakers)
        sentiment, score = customer_sentiment(segments, has_speakers=has_speakers)
        return Analysis(
            summary=extractive_summary(
                segments, actions, has_speakers=has_speakers, budget=ctx.summary_budget
            ),
            resolution=resolve_outcome(call, segments, actions),
            sentiment=sentiment,
            sentiment_score=score,
            categories=categorize(segments, call.tags, ctx.taxonomy),
            action_items=[a.item for a in actions],
            analyzer=self.name,
        )
