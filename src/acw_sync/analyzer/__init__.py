"""ACW intelligence: the agent's wrap-up, written for them.

:class:`OfflineAnalyzer` (the default) fills :class:`~acw_sync.model.Analysis` from the notes
and the transcript: an extractive summary, the outcome, the customer's sentiment, categories
and action items with due times in the centre's timezone. :class:`LLMAnalyzer` asks an
OpenAI-compatible endpoint for an abstractive summary and falls back to the offline analyzer.
:func:`report` aggregates talk, hold, ACW and handle time per agent or team;
:func:`render_report` and :func:`write_chart` show it.

This package reads call records and returns values; it does no CRM, queue or Redis work.
"""

import logging
from collections.abc import Callable

from acw_sync.analyzer._base import AnalysisContext, Analyzer
from acw_sync.analyzer._due import DueTime, resolve_due
from acw_sync.analyzer._figures import CallFigures, ReportRow, call_figures, parse_since, report
from acw_sync.analyzer._llm import LLMAnalyzer, LLMUnavailable
from acw_sync.analyzer._metrics import CallMetrics, observe_call
from acw_sync.analyzer._offline import OfflineAnalyzer
from acw_sync.analyzer._render import render_report, write_chart
from acw_sync.analyzer._settings import DEFAULT_TAXONOMY, AnalyzerSettings, LLMSettings
from acw_sync.model import Analysis, CallRecord

__all__ = [
    "DEFAULT_TAXONOMY",
    "AnalysisContext",
    "Analyzer",
    "AnalyzerSettings",
    "CallFigures",
    "CallMetrics",
    "DueTime",
    "LLMAnalyzer",
    "LLMSettings",
    "LLMUnavailable",
    "OfflineAnalyzer",
    "ReportRow",
    "analyze_function",
    "analyzer_from_settings",
    "call_figures",
    "observe_call",
    "parse_since",
    "render_report",
    "report",
    "resolve_due",
    "write_chart",
]

_log = logging.getLogger(__name__)


def analyze_function(
    settings: AnalyzerSettings | None = None,
) -> Callable[[CallRecord], Analysis | None]:
    """``record -> Analysis`` for the worker (``acw_sync.sync.Analyze``), built once.

    Due times count from each call's end, in the centre's timezone from ``settings``. A bug in
    the analyzer must not stop the call from reaching the CRM: it is logged and the record goes
    on without an analysis (``None``).
    """
    settings = settings or AnalyzerSettings()
    analyzer = analyzer_from_settings(settings)
    ctx = AnalysisContext.from_settings(settings)

    def analyze(record: CallRecord) -> Analysis | None:
        try:
            return analyzer.analyze(record, ctx)
        except Exception:
            _log.exception(
                "analyzer failed; the call is synced without its wrap-up",
                extra={"call_key": record.key},
            )
            return None

    return analyze


def analyzer_from_settings(settings: AnalyzerSettings) -> Analyzer:
    """The analyzer the config asks for: the LLM one when ``llm`` is set, else offline."""
    if settings.llm is not None:
        return LLMAnalyzer(settings.llm)
    return OfflineAnalyzer()
