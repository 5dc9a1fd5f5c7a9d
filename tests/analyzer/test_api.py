"""The package's public surface and settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import acw_sync.analyzer as analyzer
from acw_sync.analyzer import AnalyzerSettings


def test_exports_are_pinned() -> None:
    assert sorted(analyzer.__all__) == sorted(
        [
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
    )
    for name in analyzer.__all__:
        assert getattr(analyzer, name) is not None


def test_offline_and_llm_satisfy_the_interface() -> None:
    assert isinstance(analyzer.OfflineAnalyzer(), analyzer.Analyzer)


def test_settings_validate_timezone_and_budget() -> None:
    with pytest.raises(ValidationError, match="unknown timezone"):
        AnalyzerSettings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        AnalyzerSettings(summary_budget=10)
    with pytest.raises(ValidationError):
        AnalyzerSettings.model_validate({"summary_budjet": 300})


def test_settings_from_yaml_shape() -> None:
    settings = AnalyzerSettings.model_validate(
        {
            "summary_budget": 300,
            "timezone": "Europe/Berlin",
            "categories": {"billing": ["dunning letter"]},
        }
    )
    taxonomy = settings.taxonomy()
    assert "dunning letter" in taxonomy["billing"] and "invoice" in taxonomy["billing"]
    assert settings.zone().key == "Europe/Berlin"


def test_analyze_function_for_the_worker() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from tests.analyzer.builders import make_call

    ny = ZoneInfo("America/New_York")
    analyze = analyzer.analyze_function(AnalyzerSettings(timezone="America/New_York"))
    call = make_call(
        [("agent", "I'll call you back tomorrow at 2.")],
        ended=datetime(2026, 6, 10, 16, 0, tzinfo=ny),
    )
    result = analyze(call)
    assert result is not None
    assert result.action_items[0].due_at == datetime(2026, 6, 11, 14, 0, tzinfo=ny)


def test_metrics_observe_a_call() -> None:
    from prometheus_client import CollectorRegistry

    from acw_sync.model import Agent, Analysis, Resolution
    from tests.analyzer.builders import make_call

    registry = CollectorRegistry()
    metrics = analyzer.CallMetrics(registry)
    call = make_call(agent=Agent(name="Anna", team="Support"), talk=300, hold=30, wrapup=90)
    call.analysis = Analysis(resolution=Resolution.RESOLVED)
    metrics.observe(call)
    assert registry.get_sample_value("acw_call_handle_seconds_sum", {"team": "Support"}) == 420
    assert registry.get_sample_value("acw_call_wrapup_seconds_count", {"team": "Support"}) == 1
    assert (
        registry.get_sample_value(
            "acw_calls_analyzed_total", {"team": "Support", "resolution": "resolved"}
        )
        == 1
    )


def test_analyze_function_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.analyzer.builders import make_call

    def boom(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(analyzer.OfflineAnalyzer, "analyze", boom)
    assert (
        analyzer.analyze_function()(make_call([("customer", "Hello there, my bill is wrong.")]))
        is None
    )
    assert "analyzer failed" in caplog.text
