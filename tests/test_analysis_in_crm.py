"""Issue 7's "done when": a call with a transcript lands in the CRM with its summary, outcome,
sentiment, categories and the promised follow-up task at the promised time (real Redis,
the sandbox CRM, the offline analyzer, the default rules)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from acw_connector_sandbox import SandboxStore
from acw_sync.analyzer import AnalyzerSettings, analyze_function
from acw_sync.config import AppConfig, ConnectorInstance
from acw_sync.model import (
    Agent,
    CallEvent,
    CallOutcome,
    Direction,
    EventType,
    Speaker,
    Utterance,
)
from acw_sync.store import StateStore
from acw_sync.sync import ConnectorPool, sync_call

# Tuesday 10 March 2026, 14:00 UTC = 10:00 in New York (EDT since 8 March).
T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)

TRANSCRIPT = [
    (Speaker.CUSTOMER, "Hi, I was charged twice for my March invoice and I'm really frustrated."),
    (Speaker.AGENT, "I'm sorry about that. I can see the duplicate charge on your account."),
    (Speaker.AGENT, "I've started the refund for the duplicate charge."),
    (Speaker.CUSTOMER, "This is the third time I call about this. It is not resolved yet."),
    (Speaker.AGENT, "I'll call you back tomorrow at 3 pm to confirm the refund went through."),
    (Speaker.CUSTOMER, "Fine."),
]


def test_a_call_with_a_transcript_lands_with_its_wrapup(store: StateStore, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    config = AppConfig(
        connectors={"crm": ConnectorInstance(type="sandbox", options={"path": str(db)})}
    )
    analyze = analyze_function(AnalyzerSettings(timezone="America/New_York"))
    base = {"provider": "generic", "call_id": "wrap-1"}
    store.add_event(
        CallEvent(
            event_id="wrap-1-a",
            type=EventType.ANSWERED,
            occurred_at=T0,
            direction=Direction.INBOUND,
            customer_number="+14155550111",
            agent=Agent(email="ana@example.com", name="Ana", team="billing"),
            started_at=T0,
            answered_at=T0,
            **base,  # type: ignore[arg-type]
        )
    )
    store.add_event(
        CallEvent(
            event_id="wrap-1-e",
            type=EventType.ENDED,
            occurred_at=T0 + timedelta(minutes=6),
            ended_at=T0 + timedelta(minutes=6),
            outcome=CallOutcome.COMPLETED,
            transcript=[Utterance(speaker=s, text=t) for s, t in TRANSCRIPT],
            **base,  # type: ignore[arg-type]
        )
    )
    result = sync_call(store, ConnectorPool(config), "crm", "generic:wrap-1", analyze=analyze)
    assert result.status == "synced"

    crm = SandboxStore(db)
    [activity] = crm.query("SELECT * FROM activities")
    assert activity["outcome"] == "completed"  # what the platform said
    body = activity["body"]
    assert body.startswith("Summary:")
    summary = body.split("\n\n")[0].removeprefix("Summary:\n")
    sources = " ".join(t for _, t in TRANSCRIPT)
    sentences = re.split(r"(?<=[.!?])\s+", summary.strip())
    assert len(sentences) >= 2 and all(s in sources for s in sentences)  # faithful: verbatim
    extra = json.loads(activity["fields"])
    assert extra["resolution"] == "callback_promised"  # what the agent would have written
    assert extra["sentiment"] == "negative"
    assert "billing" in extra["categories"]

    tasks = {t["key"].split("#")[1]: t for t in crm.query("SELECT * FROM tasks")}
    promised = tasks["callback-promised"]
    # "tomorrow at 3 pm" in New York = Wednesday 11 March 15:00 EDT = 19:00 UTC.
    assert promised["due_at"].startswith("2026-03-11T19:00")
