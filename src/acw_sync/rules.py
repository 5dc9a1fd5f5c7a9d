"""Follow-up rules: which tasks, customer updates and dispositions a call causes in a CRM.

A rule is ``when`` (a condition tree, :mod:`acw_sync.conditions`) then actions: create a task
(texts from templates, type, priority, owner, a due time counted in business time), update
customer fields, set the activity's disposition. :func:`evaluate_rules` is pure: the same call
and config give the same :class:`RulePlan`; the sync path writes it once per rule (the task's
key is ``{call_key}#{rule id}``, customer updates are recorded in the ledger by rule id), so a
rule fires at most once per call and connector instance however often the call is synced.

With no ``rules`` in the config the built-in set applies (:data:`DEFAULT_RULES`): missed
inbound call, call back within one business hour; voicemail, the same business day; a callback
promised in the call, a task at the promised time; an unhappy customer on an unresolved call,
an escalation for the team lead; an unresolved long call, a follow-up the next business day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from acw_sync.calendar import BusinessCalendar, Due
from acw_sync.conditions import Condition, Facts, parse_condition
from acw_sync.config import AppConfig, ConnectorInstance, CreateTask, RuleSpec, TaskOwner
from acw_sync.model import CallRecord, CustomerRef, FollowUp, utcnow
from acw_sync.templates import TemplateProblem, render, template_context

__all__ = [
    "DEFAULT_RULES",
    "CustomerUpdate",
    "RulePlan",
    "effective_rules",
    "evaluate_rules",
]

log = structlog.get_logger("acw_sync.rules")

_MISSED_BODY = (
    "{{ call.customer_number or 'A caller' }} called and nobody answered at "
    "{{ call.ended_at | localtime }}."
    "{% if call.recording_url %}\nRecording: {{ call.recording_url }}{% endif %}"
    "{% for n in call.notes %}\nNote: {{ n.text }}{% endfor %}"
)
_VOICEMAIL_BODY = (
    "{{ call.customer_number or 'A caller' }} left a voicemail at "
    "{{ call.ended_at | localtime }}."
    "{% if call.recording_url %}\nRecording: {{ call.recording_url }}{% endif %}"
    "{% for u in call.transcript %}\n{{ u.speaker | capitalize }}: {{ u.text }}{% endfor %}"
    "{% for n in call.notes %}\nNote: {{ n.text }}{% endfor %}"
)
_WHO = "{{ customer.name or call.customer_number or 'the caller' }}"

DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "id": "callback-missed",
        "description": "Missed inbound call: call back within one business hour.",
        "when": {"outcome": ["missed", "no_answer", "busy", "abandoned"], "direction": "inbound"},
        "then": [
            {
                "create_task": {
                    "subject": "Call back {{ call.customer_number or 'the caller' }} (missed call)",
                    "body": _MISSED_BODY,
                    "priority": "high",
                    "due": "+1h",
                }
            }
        ],
    },
    {
        "id": "callback-voicemail",
        "description": "Voicemail: call back the same business day.",
        "when": {"outcome": "voicemail", "direction": "inbound"},
        "then": [
            {
                "create_task": {
                    "subject": "Call back {{ call.customer_number or 'the caller' }} (voicemail)",
                    "body": _VOICEMAIL_BODY,
                    "priority": "high",
                    "due": "end of business day",
                }
            }
        ],
    },
    {
        "id": "callback-promised",
        "description": "A callback promised during the call: a task at the promised time.",
        "when": {"promised": True},
        "then": [
            {
                "create_task": {
                    "subject": f"Call back {_WHO} as promised",
                    "body": (
                        "{% for a in analysis.action_items %}{{ a.text }}\n{% endfor %}"
                        "{{ analysis.summary }}"
                    ),
                    "priority": "high",
                    "due": "promised",
                }
            }
        ],
    },
    {
        "id": "escalate-unhappy",
        "description": "Unhappy customer, unresolved call: escalate to the team lead.",
        "when": {"sentiment": "negative", "resolution": ["unresolved", "escalated"]},
        "then": [
            {
                "create_task": {
                    "subject": f"Escalation: unhappy customer {_WHO}",
                    "body": (
                        "Agent: {{ agent.name or agent.email or 'unknown' }}\n"
                        "{{ analysis.summary }}"
                    ),
                    "type": "todo",
                    "priority": "high",
                    "owner": "team_lead",
                    "due": "+2h",
                }
            }
        ],
    },
    {
        "id": "followup-unresolved-long",
        "description": "Unresolved call of 10 minutes or more: follow up next business day.",
        "when": {
            "resolution": "unresolved",
            "talk_time": {"ge": "10m"},
            "not": {"promised": True},
        },
        "then": [
            {
                "create_task": {
                    "subject": f"Follow up with {_WHO} (unresolved call)",
                    "body": "{{ analysis.summary }}",
                    "due": "next business day 10:00",
                }
            }
        ],
    },
]
"""The built-in rules, in the config file's own form (``acw-sync config show`` prints them)."""

_CALLBACK_RULES = ("callback-missed", "callback-voicemail")


@dataclass(frozen=True)
class CompiledRule:
    spec: RuleSpec
    condition: Condition


@dataclass(frozen=True)
class CustomerUpdate:
    rule: str
    fields: dict[str, str]


@dataclass
class RulePlan:
    """What the rules ask of one call for one connector instance."""

    tasks: list[FollowUp] = field(default_factory=list)
    customer_updates: list[CustomerUpdate] = field(default_factory=list)
    disposition: str | None = None
    disposition_rule: str | None = None
    fired: list[str] = field(default_factory=list)
    """Ids of the rules whose conditions held, in order."""


def _default_specs(config: AppConfig) -> list[RuleSpec]:
    specs = [RuleSpec.model_validate(r) for r in DEFAULT_RULES]
    delay = config.followups.callback_delay
    if delay is not None:  # the foundation's setting: wall-clock delay for call-backs
        for spec in specs:
            if spec.id in _CALLBACK_RULES:
                task = spec.then[0].create_task
                assert task is not None
                task.due = f"+{delay / 60:g}m"
                task.business_time = False
    return specs


def effective_rules(config: AppConfig) -> list[RuleSpec]:
    """Built-in rules (unless ``followups.default_rules: false``), replaced by id, then yours."""
    mine = {r.id: r for r in config.rules}
    out = (
        [mine.pop(r.id, r) for r in _default_specs(config)]
        if config.followups.default_rules
        else []
    )
    out.extend(r for r in config.rules if r.id in mine)
    return [r for r in out if r.enabled]


def _compile(config: AppConfig) -> list[CompiledRule]:
    """The config's rules with their condition trees, parsed once per config object."""
    if config._compiled_rules is None:
        config._compiled_rules = [
            CompiledRule(s, parse_condition(s.when)) for s in effective_rules(config)
        ]
    rules: list[CompiledRule] = config._compiled_rules
    return rules


def evaluate_rules(
    call: CallRecord,
    config: AppConfig,
    *,
    instance: str | None = None,
    customer: CustomerRef | None = None,
) -> RulePlan:
    """What the follow-up rules ask for ``call`` on ``instance``. Pure: same call, same plan."""
    plan = RulePlan()
    if not call.ended:
        return plan
    spec = config.connectors.get(instance) if instance else None
    selected = set(spec.rules) if spec is not None and spec.rules is not None else None
    calendar = config.business_calendar(call.agent.team if call.agent else None)
    facts = Facts(call=call, calendar=calendar)
    context = template_context(call, customer=customer, timezone=calendar.timezone)
    for rule in _compile(config):
        if selected is not None and rule.spec.id not in selected:
            continue
        if rule.condition.evaluate(facts) is not True:
            continue
        plan.fired.append(rule.spec.id)
        for action in rule.spec.then:
            if action.create_task is not None:
                task = _task(
                    rule.spec.id,
                    action.create_task,
                    call=call,
                    calendar=calendar,
                    context=context,
                    spec=spec,
                )
                if task is not None:
                    plan.tasks.append(task)
            elif action.update_customer is not None:
                fields = {
                    k: _text(v, context, rule.spec.id) for k, v in action.update_customer.items()
                }
                plan.customer_updates.append(CustomerUpdate(rule.spec.id, fields))
            elif action.set_disposition is not None and plan.disposition is None:
                plan.disposition = _text(action.set_disposition, context, rule.spec.id)
                plan.disposition_rule = rule.spec.id
        if rule.spec.stop:
            break
    return plan


def _text(source: str, context: dict[str, Any], rule: str, fallback: str = "") -> str:
    try:
        return render(source, context).strip()
    except TemplateProblem as exc:
        # Checked at config load over a full sample; a failure here is data-specific (a filter
        # on an odd value). Never lose the task over its wording.
        log.warning("rule template failed; using the fallback text", rule=rule, error=str(exc))
        return fallback


def _start(call: CallRecord) -> datetime:
    return call.ended_at or call.last_event_at or call.started_at or utcnow()


def promised_at(call: CallRecord) -> datetime | None:
    """The due time of the call's promise: its earliest action item with a due time."""
    if call.analysis is None:
        return None
    dues = [a.due_at for a in call.analysis.action_items if a.due_at is not None]
    return min(dues) if dues else None


def _task(
    rule: str,
    action: CreateTask,
    *,
    call: CallRecord,
    calendar: BusinessCalendar,
    context: dict[str, Any],
    spec: ConnectorInstance | None,
) -> FollowUp | None:
    due_spec = Due.parse(action.due)
    if due_spec.kind == "promised":
        due = promised_at(call)
        if due is None:  # nothing was promised: the rule's task has no time to be due at
            return None
    else:
        due = due_spec.resolve(calendar, _start(call), business_time=action.business_time)
    task_context = {
        **context,
        "task": {
            "rule": rule,
            "due_at": due.isoformat(),
            "type": action.type.value,
            "priority": action.priority.value,
        },
    }
    subject = _text(action.subject, task_context, rule, fallback=f"Follow up call ({rule})")
    return FollowUp(
        rule=rule,
        call_key=call.key,
        subject=(subject or f"Follow up call ({rule})")[:255],
        body=_text(action.body, task_context, rule),
        due_at=due,
        type=action.type,
        priority=action.priority,
        owner_id=_owner(action, call, spec),
    )


def _owner(action: CreateTask, call: CallRecord, spec: ConnectorInstance | None) -> str | None:
    """None means the agent's CRM owner (resolved by the sync path)."""
    owner = action.owner
    if isinstance(owner, TaskOwner):
        return owner.user or owner.queue
    if owner == "team_lead" and spec is not None:
        team = call.agent.team if call.agent else None
        return spec.owners.team_leads.get(team or "") or spec.owners.default
    return None
