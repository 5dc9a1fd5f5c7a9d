"""ACW intelligence: the agent's wrap-up, written for them.

:class:`OfflineAnalyzer` (the default) fills :class:`~acw_sync.model.Analysis` from the notes
and the transcript: an extractive summary, the outcome, the customer's sentiment, categories
and action items with due times in the centre's timezone. :class:`LLMAnalyzer` asks an
OpenAI-compatible endpoint for an abstractive summary and falls back to the offline analyzer.
:func:`report` aggregates talk, hold, ACW and handle time per agent or team.

This package reads call records and returns values; it does no CRM, queue or Redis work.
"""

from acw_sync.analyzer._base import AnalysisContext, Analyzer
from acw_sync.analyzer._due import DueTime, resolve_due
from acw_sync.analyzer._offline import OfflineAnalyzer
from acw_sync.analyzer._settings import DEFAULT_TAXONOMY, AnalyzerSettings, LLMSettings

__all__ = [
    "DEFAULT_TAXONOMY",
    "AnalysisContext",
    "Analyzer",
    "AnalyzerSettings",
    "DueTime",
    "LLMSettings",
    "OfflineAnalyzer",
    "resolve_due",
]
