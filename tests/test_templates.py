"""Sandboxed templates: escapes refused before rendering, unknown fields refused, plain data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acw_sync.model import Agent, CallRecord, CustomerRef, Note
from acw_sync.templates import TemplateProblem, check_template, render, render_mapping

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace() }}",
    "{{ lipsum.__globals__ }}",
    "{{ call.__class__ }}",
    "{{ call['__class__'] }}",
    "{{ ''['__cla' ~ 'ss__'] }}",
    "{% set k = '_' ~ '_class_' ~ '_' %}{{ call[k] }}",
    "{{ call.notes | map(attribute='__class__') | list }}",
    "{{ call | attr('__class__') }}",
    "{{ call.key.format }}",
    "{{ range(10**9) | list }}",
    "{% for x in call.tags %}{{ x.__class__ }}{% endfor %}",
    "{{ 'a' * 10**10 }}",  # memory
    "{{ call.tags * 10**7 }}",
    "{{ 2 ** 100000 }}",  # CPU
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused(source: str) -> None:
    with pytest.raises(TemplateProblem):
        check_template(source)


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ call.custmer_number }}", 'did you mean "call.customer_number"'),
        ("{{ analysis.sentimen }}", 'did you mean "analysis.sentiment"'),
        ("{{ callr.key }}", 'did you mean "call"'),
        ("{{ call.key | shout }}", "no filter named 'shout'"),
        ("{{ call.tags.first }}", "is a list"),
        ("{{ call.key", "syntax error"),
    ],
)
def test_unknown_fields_are_refused_with_a_hint(source: str, words: str) -> None:
    with pytest.raises(TemplateProblem, match=words.replace("(", r"\(").replace('"', '"')):
        check_template(source)


def record() -> CallRecord:
    return CallRecord(
        key="generic:c1",
        provider="generic",
        call_id="c1",
        customer_number="+14155550100",
        agent=Agent(name="Ana"),
        ended_at=datetime(2026, 3, 10, 18, 7, tzinfo=UTC),
        notes=[Note(text="one"), Note(text="two")],
        tags=["billing"],
        ended=True,
    )


def test_rendering_over_plain_data() -> None:
    mapping = {
        "subject": "Call with {{ customer.name or call.customer_number | mask }}",
        "when": "{{ call.ended_at | localtime('%a %H:%M') }}",
        "notes": "{% for n in call.notes %}{{ loop.index }}. {{ n.text }} {% endfor %}",
        "none": "{{ analysis.summary or 'no summary' }}|{{ analysis.sentiment }}",
    }
    for source in mapping.values():
        check_template(source)
    fields = render_mapping(mapping, record(), timezone="America/New_York")
    assert fields == {
        "subject": "Call with ***0100",
        "when": "Tue 14:07",
        "notes": "1. one 2. two ",
        "none": "no summary|None",
    }
    customer = CustomerRef(object_type="Contact", id="1", name="Maria")
    assert render_mapping({"s": "{{ customer.name }}"}, record(), customer=customer) == {
        "s": "Maria"
    }


def test_a_template_failing_on_odd_data_leaves_the_field_out() -> None:
    source = "{{ (call.duration / 60) | round }}"
    check_template(source)  # fine on the full sample
    assert render_mapping({"minutes": source}, record()) == {}  # duration None at run time
    with pytest.raises(TemplateProblem):
        render(source, {"call": {"duration": None}})
