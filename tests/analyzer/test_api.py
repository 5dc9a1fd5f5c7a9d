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
            "DueTime",
            "LLMAnalyzer",
            "LLMSettings",
            "LLMUnavailable",
            "OfflineAnalyzer",
            "ReportRow",
            "analyzer_from_settings",
            "call_figures",
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
