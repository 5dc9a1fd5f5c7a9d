"""The analyzer seam: one method, ``analyze(call, ctx) -> Analysis``.

An analyzer reads a :class:`~acw_sync.model.CallRecord` and returns what a good agent would
have written after the call. It must not mutate the record, do CRM or queue work, or block
without a bound; the worker stores the result in ``CallRecord.analysis``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from acw_sync.analyzer._settings import DEFAULT_TAXONOMY, AnalyzerSettings
from acw_sync.model import Analysis, CallRecord

__all__ = ["AnalysisContext", "Analyzer"]


@dataclass(frozen=True, slots=True)
class AnalysisContext:
    """What an analyzer needs besides the call."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    """The centre's timezone: "tomorrow at 3" means 15:00 there."""
    reference: datetime | None = None
    """The moment relative dates count from; None means the call's end (else now)."""
    summary_budget: int = 400
    taxonomy: Mapping[str, list[str]] = field(default_factory=lambda: DEFAULT_TAXONOMY)

    @classmethod
    def from_settings(
        cls, settings: AnalyzerSettings, reference: datetime | None = None
    ) -> AnalysisContext:
        return cls(
            timezone=settings.zone(),
            reference=reference,
            summary_budget=settings.summary_budget,
            taxonomy=settings.taxonomy(),
        )

    def reference_for(self, call: CallRecord) -> datetime:
        """The reference moment for one call: explicit, else its end, else now."""
        if self.reference is not None:
            return self.reference
        if call.ended_at is not None:
            return call.ended_at
        if call.started_at is not None and call.duration is not None:
            return call.started_at + timedelta(seconds=call.duration)
        return datetime.now(UTC)


@runtime_checkable
class Analyzer(Protocol):
    """Fills :class:`~acw_sync.model.Analysis` for one call."""

    name: str

    def analyze(self, call: CallRecord, ctx: AnalysisContext) -> Analysis:
        """Derive the wrap-up of ``call``. Must return within a bounded time."""
        ...
