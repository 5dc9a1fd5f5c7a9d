"""The follow-up rule engine: default rules, conditions, actions, business-hours edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acw_sync.conditions import ConditionProblem, Facts, parse_condition
from acw_sync.config import AppConfig
from acw_sync.merge import merge_events
from acw_sync.model import (
    ActionItem,
    Agent,
    Analysis,
    CallEvent,
    CallOutcome,
    CallRecord,
    CustomerRef,
    Direction,
    EventType,
    Note,
    Priority,
    Resolution,
    Sentiment,
    TaskType,
)
from acw_sync.rules import evaluate_rules

NY = ZoneInfo("America/New_York")
CENTRE = {"timezone": "America/New_York", "holidays": {"country": "US"}}


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


def config(**data: Any) -> AppConfig:
    data.setdefault("calendar", CENTRE)
    data.setdefault("connectors", {"crm": {"type": "sandbox"}})
    return AppConfig.model_validate(data)


def call(
    ended: datetime,
    outcome: CallOutcome = CallOutcome.COMPLETED,
    *,
    talk: float | None = None,
    analysis: Analysis | None = None,
    **extra: Any,
) -> CallRecord:
    extra.setdefault("direction", Direction.INBOUND)
    event = CallEvent(
        event_id="e1",
        provider="generic",
        call_id="c1",
        type=EventType.ENDED,
        occurred_at=ended,
        ended_at=ended,
        started_at=ended - timedelta(seconds=(talk or 30) + 10),
        customer_number="+14155550100",
        outcome=outcome,
        talk_time=talk,
        duration=(talk or 30) + 10,
        **extra,
    )
    record = merge_events([event])
    record.analysis = analysis
    return record


def dues(plan_config: AppConfig, record: CallRecord) -> dict[str, datetime]:
    return {t.rule: t.due_at for t in evaluate_rules(record, plan_config, instance="crm").tasks}


# -- the default rule set ----------------------------------------------------------------------
def test_missed_call_is_called_back_within_one_business_hour() -> None:
    cfg = config()
    assert dues(cfg, call(ny(2026, 3, 4, 10, 0), CallOutcome.MISSED)) == {
        "callback-missed": ny(2026, 3, 4, 11, 0)
    }
    # one minute before closing: 1 minute today, 59 tomorrow morning
    assert dues(cfg, call(ny(2026, 3, 4, 16, 59), CallOutcome.NO_ANSWER)) == {
        "callback-missed": ny(2026, 3, 5, 9, 59)
    }
    # outbound calls nobody answered are not call-backs
    assert (
        dues(cfg, call(ny(2026, 3, 4, 10), CallOutcome.MISSED, direction=Direction.OUTBOUND)) == {}
    )


def test_missed_call_on_a_weekend_and_on_a_holiday() -> None:
    cfg = config()
    assert dues(cfg, call(ny(2026, 3, 7, 14, 0), CallOutcome.MISSED))["callback-missed"] == ny(
        2026, 3, 9, 10, 0
    )
    # 25 December 2026 is a Friday: due Monday 28th at 10:00
    assert dues(cfg, call(ny(2026, 12, 25, 11, 0), CallOutcome.BUSY))["callback-missed"] == ny(
        2026, 12, 28, 10, 0
    )


def test_voicemail_is_due_the_same_business_day() -> None:
    cfg = config()
    assert dues(cfg, call(ny(2026, 3, 4, 10, 0), CallOutcome.VOICEMAIL)) == {
        "callback-voicemail": ny(2026, 3, 4, 17, 0)
    }
    assert dues(cfg, call(ny(2026, 3, 4, 19, 0), CallOutcome.VOICEMAIL)) == {
        "callback-voicemail": ny(2026, 3, 5, 17, 0)
    }


def test_dst_both_ways_keep_local_opening_hours() -> None:
    cfg = config()
    # clocks go forward on Sunday 8 March: Friday 16:30 EST + 1 h -> Monday 09:30 EDT
    spring = dues(cfg, call(ny(2026, 3, 6, 16, 30), CallOutcome.MISSED))["callback-missed"]
    assert spring == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    # clocks go back on Sunday 1 November: Friday 16:30 EDT + 1 h -> Monday 09:30 EST
    autumn = dues(cfg, call(ny(2026, 10, 30, 16, 30), CallOutcome.MISSED))["callback-missed"]
    assert autumn == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


def test_agent_in_another_timezone_gets_centre_business_time() -> None:
    """An agent in London at 21:30 local takes a call at 16:30 New York time: the centre's
    calendar decides, not the agent's clock."""
    cfg = config()
    agent = Agent(id="u-9", email="li@example.com", team="emea")
    ended = datetime(2026, 3, 4, 21, 30, tzinfo=ZoneInfo("Europe/London"))
    record = call(ended, CallOutcome.MISSED, agent=agent)
    assert dues(cfg, record)["callback-missed"] == ny(2026, 3, 5, 9, 30)
    facts = Facts(call=record, calendar=cfg.business_calendar())
    assert parse_condition({"business_hours": True}).evaluate(facts) is True


def test_a_team_in_another_timezone_can_keep_its_own_hours() -> None:
    """``calendar.teams``: the London team's missed calls are due in London business hours,
    with England's bank holidays; other keys (the hours) are the centre's."""
    london = ZoneInfo("Europe/London")
    cfg = config(
        calendar={
            **CENTRE,
            "teams": {
                "emea": {
                    "timezone": "Europe/London",
                    "holidays": {"country": "GB", "subdivision": "ENG"},
                }
            },
        }
    )
    agent = Agent(id="u-9", team="emea")
    # Thursday 2 April 2026, 16:30 London; Good Friday and Easter Monday are bank holidays
    ended = datetime(2026, 4, 2, 16, 30, tzinfo=london)
    record = call(ended, CallOutcome.MISSED, agent=agent)
    assert dues(cfg, record)["callback-missed"] == datetime(2026, 4, 7, 9, 30, tzinfo=london)
    # the same call taken by the centre's team is due in New York hours (open until 17:00 EDT)
    record = call(ended, CallOutcome.MISSED, agent=Agent(id="u-1", team="support"))
    assert dues(cfg, record)["callback-missed"] == datetime(2026, 4, 2, 12, 30, tzinfo=NY)


def test_promised_callback_is_due_when_promised() -> None:
    promised = ny(2026, 3, 5, 15, 0)
    analysis = Analysis(
        summary="Customer wants a quote.",
        resolution=Resolution.CALLBACK_PROMISED,
        action_items=[ActionItem(text="Call back with the quote", due_at=promised)],
    )
    plan = evaluate_rules(call(ny(2026, 3, 4, 10), analysis=analysis), config(), instance="crm")
    [task] = plan.tasks
    assert task.rule == "callback-promised" and task.due_at == promised
    assert task.subject == "Call back +14155550100 as promised"
    assert task.body.startswith("Call back with the quote")


def test_unhappy_unresolved_call_escalates_to_the_team_lead() -> None:
    cfg = config(
        connectors={"crm": {"type": "sandbox", "owners": {"team_leads": {"support": "005-LEAD"}}}}
    )
    analysis = Analysis(
        summary="Third outage this month.",
        resolution=Resolution.UNRESOLVED,
        sentiment=Sentiment.NEGATIVE,
    )
    record = call(
        ny(2026, 3, 4, 10), talk=900, analysis=analysis, agent=Agent(name="Ana", team="support")
    )
    plan = evaluate_rules(record, cfg, instance="crm")
    by_rule = {t.rule: t for t in plan.tasks}
    assert set(by_rule) == {"escalate-unhappy", "followup-unresolved-long"}
    escalation = by_rule["escalate-unhappy"]
    assert escalation.owner_id == "005-LEAD" and escalation.priority is Priority.HIGH
    assert escalation.type is TaskType.TODO and escalation.due_at == ny(2026, 3, 4, 12, 0)
    assert by_rule["followup-unresolved-long"].due_at == ny(2026, 3, 5, 10, 0)
    assert by_rule["followup-unresolved-long"].owner_id is None  # the agent's owner


def test_rules_on_analysis_fields_do_not_fire_without_an_analysis() -> None:
    cfg = config(
        rules=[
            {
                "id": "not-negative",
                "when": {"not": {"sentiment": "negative"}},
                "then": [{"create_task": {"subject": "x"}}],
            }
        ]
    )
    record = call(ny(2026, 3, 4, 10), talk=900)
    plan = evaluate_rules(record, cfg, instance="crm")
    assert plan.tasks == [] and plan.fired == []


def test_callback_delay_keeps_the_foundation_behaviour() -> None:
    cfg = config(followups={"callback_delay": 1800})
    ended = ny(2026, 3, 7, 14, 0)  # a Saturday: wall-clock, not business time
    assert dues(cfg, call(ended, CallOutcome.MISSED)) == {
        "callback-missed": ended + timedelta(minutes=30)
    }


def test_no_calendar_means_always_open() -> None:
    cfg = AppConfig.model_validate({"connectors": {"crm": {"type": "sandbox"}}})
    ended = datetime(2026, 3, 7, 23, 30, tzinfo=UTC)
    assert dues(cfg, call(ended, CallOutcome.MISSED)) == {
        "callback-missed": ended + timedelta(hours=1)
    }


# -- custom rules ------------------------------------------------------------------------------
VIP_RULES = [
    {
        "id": "vip-complaint",
        "when": {
            "any": [{"tags": ["vip", "gold"]}, {"text_contains": "cancel my contract"}],
            "not": {"business_hours": False},
            "talk_time": {"ge": "1m", "lt": "1h"},
        },
        "then": [
            {
                "create_task": {
                    "subject": "VIP: call {{ customer.name or call.customer_number }}",
                    "body": "{{ call.notes_text }}",
                    "owner": {"queue": "00G-VIP"},
                    "due": "+30m",
                    "priority": "high",
                }
            },
            {"update_customer": {"LeadStatus": "Working", "Rating": "{{ 'Hot' }}"}},
            {"set_disposition": "VIP follow-up"},
        ],
        "stop": True,
    },
    {
        "id": "never-after-stop",
        "when": {"outcome": "completed"},
        "then": [{"set_disposition": "x"}],
    },
]


def test_custom_rule_actions_and_stop() -> None:
    cfg = config(rules=VIP_RULES, followups={"default_rules": False})
    record = call(
        ny(2026, 3, 4, 10),
        talk=120,
        tags=["vip"],
        notes=[Note(text="Wants to cancel my contract")],
    )
    customer = CustomerRef(object_type="Contact", id="7", name="Maria Garcia")
    plan = evaluate_rules(record, cfg, instance="crm", customer=customer)
    assert plan.fired == ["vip-complaint"]
    [task] = plan.tasks
    assert task.subject == "VIP: call Maria Garcia" and task.owner_id == "00G-VIP"
    assert task.due_at == ny(2026, 3, 4, 10, 30) and task.body == "Wants to cancel my contract"
    assert plan.customer_updates[0].fields == {"LeadStatus": "Working", "Rating": "Hot"}
    assert plan.disposition == "VIP follow-up"


def test_custom_rule_does_not_fire_outside_hours_or_off_bounds() -> None:
    cfg = config(rules=VIP_RULES, followups={"default_rules": False})
    night = call(ny(2026, 3, 4, 22), talk=120, tags=["gold"])
    assert evaluate_rules(night, cfg, instance="crm").fired == ["never-after-stop"]
    short = call(ny(2026, 3, 4, 10), talk=30, tags=["gold"])
    assert evaluate_rules(short, cfg, instance="crm").fired == ["never-after-stop"]


def test_instance_rule_selection_and_override_of_a_default() -> None:
    cfg = config(
        connectors={"crm": {"type": "sandbox", "rules": ["callback-voicemail"]}},
        rules=[
            {
                "id": "callback-voicemail",
                "when": {"outcome": "voicemail"},
                "then": [{"create_task": {"subject": "Listen and call back", "due": "+2h"}}],
            }
        ],
    )
    assert dues(cfg, call(ny(2026, 3, 4, 10), CallOutcome.MISSED)) == {}
    plan = evaluate_rules(call(ny(2026, 3, 4, 10), CallOutcome.VOICEMAIL), cfg, instance="crm")
    assert [(t.subject, t.due_at) for t in plan.tasks] == [
        ("Listen and call back", ny(2026, 3, 4, 12))
    ]


def test_line_numbers_are_compared_in_e164() -> None:
    record = call(ny(2026, 3, 4, 10), line_number="+14155550199")
    facts = Facts(call=record, calendar=config().business_calendar())
    assert parse_condition({"line_number": "+1 415 555 0199"}).evaluate(facts) is True
    assert parse_condition({"line_number": ["+14155550100"]}).evaluate(facts) is False


def test_evaluation_is_pure_and_task_keys_are_stable() -> None:
    cfg = config()
    record = call(ny(2026, 3, 4, 10), CallOutcome.MISSED)
    first = evaluate_rules(record, cfg, instance="crm")
    again = evaluate_rules(record, cfg, instance="crm")
    assert first == again and first.tasks[0].key == "generic:c1#callback-missed"


@pytest.mark.parametrize(
    ("condition", "path", "words"),
    [
        ({"outcme": "missed"}, ("outcme",), 'did you mean "outcome"'),
        ({"any": [{"sentiment": "angry"}]}, ("any", 0, "sentiment"), "use one of positive"),
        ({"duration": 30}, ("duration",), "comparison"),
        ({"duration": {"greater": 30}}, ("duration", "greater"), "use gt, ge, lt or le"),
        ({"talk_time": {"ge": "ten"}}, ("talk_time", "ge"), "not a duration"),
        ({"business_hours": "yes"}, ("business_hours",), "true or false"),
        ({"all": []}, ("all",), "non-empty list"),
        ("missed", (), "a condition is a mapping"),
        ({"line_number": "front desk"}, ("line_number",), "not a phone number"),
    ],
)
def test_condition_mistakes_name_their_path(
    condition: Any, path: tuple[str | int, ...], words: str
) -> None:
    with pytest.raises(ConditionProblem) as info:
        parse_condition(condition)
    assert info.value.path == path and words in info.value.message
