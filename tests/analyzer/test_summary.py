"""The summary is faithful (every sentence verbatim from a source) and within its budget."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acw_sync.analyzer import AnalysisContext, OfflineAnalyzer
from acw_sync.analyzer._text import split_sentences
from acw_sync.model import CallRecord
from tests.analyzer.builders import BERLIN, make_call

_WORDS = st.sampled_from(
    [
        "I",
        "my",
        "you",
        "we",
        "the",
        "a",
        "invoice",
        "refund",
        "router",
        "is",
        "not",
        "working",
        "call",
        "back",
        "tomorrow",
        "at",
        "3",
        "Friday",
        "please",
        "thanks",
        "sorry",
        "have",
        "sent",
        "booked",
        "escalate",
        "it's",
        "still",
        "broken",
        "Dr.",
        "Mr.",
        "e.g.",
        "?",
        "!",
        ".",
        ",",
        ";",
        "10:30",
        "5th",
        "€20",
        "order",
        "4471",
        "ok",
    ]
)
_SENTENCE = st.lists(_WORDS, min_size=1, max_size=25).map(" ".join)
_TURN = st.tuples(st.sampled_from(["agent", "customer", "unknown"]), _SENTENCE)


def sources(call: CallRecord) -> list[str]:
    return [n.text for n in call.notes] + [u.text for u in call.transcript]


def assert_faithful(summary: str, call: CallRecord, budget: int) -> None:
    assert len(summary) <= budget
    for sentence in split_sentences(summary):
        assert any(sentence in src for src in sources(call)), sentence


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=st.lists(_TURN, max_size=12),
    notes=st.lists(_SENTENCE.filter(lambda s: s.strip() != ""), max_size=3),
    budget=st.integers(min_value=80, max_value=600),
)
def test_summary_is_faithful_and_within_budget(
    turns: list[tuple[str, str]], notes: list[str], budget: int
) -> None:
    call = make_call(turns, notes=notes)
    summary = (
        OfflineAnalyzer()
        .analyze(call, AnalysisContext(timezone=BERLIN, summary_budget=budget))
        .summary
    )
    assert_faithful(summary, call, budget)


def test_summary_order_reason_done_next() -> None:
    call = make_call(
        [
            ("agent", "Thanks for calling, this is Sam."),
            ("customer", "My internet has been down since this morning."),
            ("agent", "I've reset your line from our side."),
            ("agent", "I'll call you back tomorrow at 10 to make sure it's stable."),
            ("customer", "Great, thanks a lot."),
        ]
    )
    summary = OfflineAnalyzer().analyze(call, AnalysisContext(timezone=BERLIN)).summary
    assert summary == (
        "My internet has been down since this morning. I've reset your line from our side. "
        "I'll call you back tomorrow at 10 to make sure it's stable."
    )


def test_long_reason_is_cut_to_a_verbatim_prefix() -> None:
    long = "My account " + "really " * 80 + "needs attention."
    call = make_call([("customer", long)])
    summary = (
        OfflineAnalyzer()
        .analyze(call, AnalysisContext(timezone=BERLIN, summary_budget=100))
        .summary
    )
    assert 0 < len(summary) <= 100 and long.startswith(summary)


def test_no_text_no_summary() -> None:
    assert OfflineAnalyzer().analyze(make_call(), AnalysisContext()).summary == ""
