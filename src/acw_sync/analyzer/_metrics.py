"""Prometheus metrics of the wrap-up: talk, hold, ACW and handle time, outcomes, follow-ups.

Labelled by team only (``(no team)`` when the platform names none): per-agent figures belong
in ``acw-sync report``, where their cardinality costs nothing. Call :func:`observe_call` once
per analysed call (the worker does it after the analysis is stored).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from acw_sync.analyzer._figures import NO_TEAM, call_figures
from acw_sync.model import CallRecord

__all__ = ["CallMetrics", "observe_call"]

_BUCKETS = (15, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)


class CallMetrics:
    """The collectors, registered once per registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        def seconds(name: str, what: str) -> Histogram:
            return Histogram(name, what, ["team"], buckets=_BUCKETS, registry=registry)

        self.talk = seconds("acw_call_talk_seconds", "Talk time of handled calls.")
        self.hold = seconds(
            "acw_call_hold_seconds", "Hold time of handled calls, where the platform gives it."
        )
        self.wrapup = seconds(
            "acw_call_wrapup_seconds", "After-call work (wrap-up) time of handled calls."
        )
        self.handle = seconds(
            "acw_call_handle_seconds", "Handle time (AHT = talk + hold + ACW) of handled calls."
        )
        self.calls = Counter(
            "acw_calls_analyzed_total",
            "Calls analysed, by outcome.",
            ["team", "resolution"],
            registry=registry,
        )
        self.action_items = Counter(
            "acw_action_items_total",
            "Action items found in calls, by kind.",
            ["team", "kind"],
            registry=registry,
        )

    def observe(self, call: CallRecord) -> None:
        team = (call.agent.team if call.agent else None) or NO_TEAM
        figures = call_figures(call)
        for histogram, value in (
            (self.talk, figures.talk),
            (self.hold, figures.hold),
            (self.wrapup, figures.acw),
            (self.handle, figures.handle),
        ):
            if value is not None and not call.missed:
                histogram.labels(team=team).observe(value)
        analysis = call.analysis
        resolution = analysis.resolution.value if analysis and analysis.resolution else "unknown"
        self.calls.labels(team=team, resolution=resolution).inc()
        for item in analysis.action_items if analysis else []:
            self.action_items.labels(team=team, kind=item.kind.value).inc()


_default: CallMetrics | None = None


def observe_call(call: CallRecord) -> None:
    """Record one analysed call in the process-wide registry."""
    global _default
    if _default is None:
        _default = CallMetrics()
    _default.observe(call)
