"""Any order and any repetition of a call's events yields the same merged record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_aircall import parse_all as aircall_events
from test_dialpad import parse_all as dialpad_events
from test_ringcentral import parse_all as ringcentral_events
from test_twilio import parse_all as twilio_events
from test_vonage import parse_all as vonage_events
from test_zoom import parse_all as zoom_events

from acw_sync.merge import merge_events
from acw_sync.model import (
    Agent,
    CallEvent,
    CallOutcome,
    CallRecord,
    Direction,
    EventType,
    Note,
    Utterance,
)

LIFECYCLES: dict[str, Callable[[], list[CallEvent]]] = {
    "twilio answered": lambda: twilio_events("twilio_inbound_answered.json"),
    "twilio voicemail": lambda: twilio_events("twilio_inbound_voicemail.json"),
    "aircall": lambda: aircall_events("aircall_inbound_answered.json"),
    "dialpad": lambda: dialpad_events("dialpad_callcenter_answered.json"),
    "ringcentral": lambda: ringcentral_events("ringcentral_inbound_answered.json"),
    "zoom": lambda: zoom_events("zoom_inbound_queue_answered.json"),
    "vonage": lambda: vonage_events("vonage_inbound_connected.json"),
}


def snapshot(record: CallRecord) -> dict[str, object]:
    return record.model_dump(mode="json")


@st.composite
def shuffled_with_repeats(draw: st.DrawFn, events: list[CallEvent]) -> list[CallEvent]:
    order = draw(st.permutations(events))
    repeats = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    combined = list(order) + repeats
    return draw(st.permutations(combined))


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
def test_platform_lifecycles_merge_the_same_in_any_order(name: str) -> None:
    events = LIFECYCLES[name]()
    expected = snapshot(merge_events(events))

    @settings(max_examples=60, deadline=None)
    @given(shuffled_with_repeats(events))
    def check(delivered: list[CallEvent]) -> None:
        assert snapshot(merge_events(delivered)) == expected

    check()


T0 = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
times = st.integers(min_value=0, max_value=600).map(lambda s: T0 + timedelta(seconds=s))
maybe = st.none() | st.just(None)
numbers = st.sampled_from(["+14155550100", "+442071838750", "+14155550199"])
words = st.sampled_from(["billing", "refund", "vip", "churn-risk"])


@st.composite
def call_events(draw: st.DrawFn) -> CallEvent:
    """Arbitrary events of one call, with a small pool of ids so that ids collide."""
    return CallEvent(
        event_id=f"e{draw(st.integers(0, 8))}",
        provider="prop",
        call_id="c1",
        type=draw(st.sampled_from(list(EventType))),
        occurred_at=draw(times),
        sequence=draw(st.none() | st.integers(0, 5)),
        direction=draw(st.none() | st.sampled_from(list(Direction))),
        customer_number=draw(st.none() | numbers),
        line_number=draw(st.none() | numbers),
        agent=draw(
            st.none()
            | st.builds(
                Agent,
                id=st.none() | st.sampled_from(["a1", "a2"]),
                name=st.none() | st.sampled_from(["Alice", "Bob"]),
            )
        ),
        started_at=draw(st.none() | times),
        answered_at=draw(st.none() | times),
        ended_at=draw(st.none() | times),
        duration=draw(st.none() | st.floats(0, 500)),
        talk_time=draw(st.none() | st.floats(0, 500)),
        outcome=draw(st.none() | st.sampled_from(list(CallOutcome))),
        disposition=draw(st.none() | st.sampled_from(["sale", "no-sale"])),
        recording_url=draw(st.none() | st.sampled_from(["https://r/1", "https://r/2"])),
        transcript=draw(st.lists(st.builds(Utterance, text=words), max_size=2)),
        notes=draw(
            st.lists(
                st.builds(Note, text=words, id=st.none() | st.sampled_from(["n1", "n2"])),
                max_size=2,
            )
        ),
        tags=draw(st.lists(words, max_size=3)),
        removed_tags=draw(st.lists(words, max_size=1)),
        tags_complete=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(call_events(), min_size=1, max_size=10), st.data())
def test_any_event_set_merges_the_same_in_any_order_and_repetition(
    events: list[CallEvent], data: st.DataObject
) -> None:
    expected = snapshot(merge_events(events))
    delivered = data.draw(shuffled_with_repeats(events))
    assert snapshot(merge_events(delivered)) == expected


def test_a_later_event_never_erases_and_notes_tags_accumulate() -> None:
    first = CallEvent(
        event_id="1",
        provider="p",
        call_id="c",
        type=EventType.NOTE_ADDED,
        occurred_at=T0,
        customer_number="+14155550100",
        notes=[Note(text="Wants a refund")],
        tags=["billing"],
        recording_url="https://r/1",
    )
    later = CallEvent(
        event_id="2",
        provider="p",
        call_id="c",
        type=EventType.TAGGED,
        occurred_at=T0 + timedelta(seconds=5),
        notes=[Note(text="Wants a refund ")],
        tags=["billing", "vip"],
    )
    record = merge_events([later, first, later])
    assert record.customer_number == "+14155550100"
    assert record.recording_url == "https://r/1"
    assert [n.text for n in record.notes] == ["Wants a refund"]
    assert record.tags == ["billing", "vip"]


def _event(event_id: str, seconds: int, type_: EventType, **fields: object) -> CallEvent:
    return CallEvent(
        event_id=event_id,
        provider="p",
        call_id="c",
        type=type_,
        occurred_at=T0 + timedelta(seconds=seconds),
        **fields,  # type: ignore[arg-type]
    )


def test_the_first_leg_says_who_the_customer_is() -> None:
    """A later leg (the agent's mobile rung by a connect/transfer) never becomes the customer."""
    customer_leg = _event(
        "in", 0, EventType.STARTED, direction=Direction.INBOUND,
        customer_number="+441234567890", line_number="+442038297050",
    )  # fmt: skip
    agent_leg = _event(
        "out", 5, EventType.ANSWERED, direction=Direction.OUTBOUND,
        customer_number="+447700900123", line_number="+442038297050",
    )  # fmt: skip
    record = merge_events([agent_leg, customer_leg])
    assert record.direction is Direction.INBOUND
    assert record.customer_number == "+441234567890"


def test_the_agent_who_answered_wins_and_is_never_mixed_with_another() -> None:
    answered = _event("a", 5, EventType.ANSWERED, agent=Agent(id="alice"))
    alice_end = _event("e", 90, EventType.ENDED, agent=Agent(id="alice", email="alice@example.com"))
    bob_missed_later = _event("m", 95, EventType.UPDATED, agent=Agent(id="bob", name="Bob Stone"))
    record = merge_events([bob_missed_later, alice_end, answered])
    assert record.agent == Agent(id="alice", email="alice@example.com")
    # nobody answered: the agents rung are folded in order
    rung = merge_events([_event("r1", 1, EventType.RINGING, agent=Agent(id="bob", name="Bob"))])
    assert rung.agent == Agent(id="bob", name="Bob")
