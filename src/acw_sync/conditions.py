"""Rule conditions: the ``when`` of a follow-up rule, parsed into a small tree, never ``eval``.

The YAML form is data, not code::

    when:
      outcome: [missed, no_answer]       # a mapping: every key must hold
      direction: inbound
      any:
        - sentiment: negative
        - text_contains: [complaint, cancel]
      not: {business_hours: true}

:func:`parse_condition` turns that into :class:`Condition` nodes (``All``, ``AnyOf``, ``Not``,
``Leaf``) and reports every mistake with its path inside ``when``. Evaluation is three-valued:
a leaf over data the call does not have (no analysis yet, no talk time) is *unknown*, ``not``
of unknown is unknown, and a rule fires only when its condition is *true*, so a rule never
fires because a field is missing.

This module owns the condition language; it does not load config or build tasks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from acw_sync.calendar import BusinessCalendar
from acw_sync.model import CallOutcome, CallRecord, Direction, Resolution, Sentiment
from acw_sync.phone import to_e164

__all__ = [
    "LEAVES",
    "All",
    "AnyOf",
    "Condition",
    "ConditionProblem",
    "Facts",
    "Leaf",
    "Not",
    "parse_condition",
    "parse_seconds",
]

Truth = bool | None
"""True, False, or None for unknown (the call lacks the data)."""


@dataclass(frozen=True)
class Facts:
    """What a condition is evaluated against: the call and the centre's calendar."""

    call: CallRecord
    calendar: BusinessCalendar


class ConditionProblem(ValueError):
    """A mistake in a ``when``; ``path`` locates it inside the condition."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Condition:
    def evaluate(self, facts: Facts) -> Truth:
        raise NotImplementedError


@dataclass(frozen=True)
class All(Condition):
    parts: tuple[Condition, ...]

    def evaluate(self, facts: Facts) -> Truth:
        results = [p.evaluate(facts) for p in self.parts]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True


@dataclass(frozen=True)
class AnyOf(Condition):
    parts: tuple[Condition, ...]

    def evaluate(self, facts: Facts) -> Truth:
        results = [p.evaluate(facts) for p in self.parts]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False


@dataclass(frozen=True)
class Not(Condition):
    part: Condition

    def evaluate(self, facts: Facts) -> Truth:
        result = self.part.evaluate(facts)
        return None if result is None else not result


@dataclass(frozen=True)
class Leaf(Condition):
    name: str
    test: Callable[[Facts], Truth]

    def evaluate(self, facts: Facts) -> Truth:
        return self.test(facts)


# -- values ------------------------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_COMPARE = {"gt": float.__gt__, "ge": float.__ge__, "lt": float.__lt__, "le": float.__le__}
_COMPARE_ALIASES = {"gte": "ge", "lte": "le", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}


def parse_seconds(value: Any) -> float:
    """``90``, ``"90s"``, ``"5m"``, ``"1.5h"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration, not true/false")
    if isinstance(value, int | float):
        return float(value)
    match = _SECONDS.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (write 90, 90s, 5m or 1h)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _strings(value: Any, path: tuple[str | int, ...], what: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str | int | float) and str(v) for v in items):
        raise ConditionProblem(path, f"expects {what}: one value or a list of values")
    return [str(v) for v in items]


def _enum(kind: type[StrEnum]) -> Callable[[Any, tuple[str | int, ...]], list[str]]:
    allowed = [m.value for m in kind]

    def parse(value: Any, path: tuple[str | int, ...]) -> list[str]:
        values = _strings(value, path, f"one of {', '.join(allowed)}")
        for v in values:
            if v not in allowed:
                close = difflib.get_close_matches(v, allowed, n=1)
                hint = f'did you mean "{close[0]}"? ' if close else ""
                raise ConditionProblem(
                    path, f"{v!r} is not valid ({hint}use one of {', '.join(allowed)})"
                )
        return values

    return parse


# -- leaves ------------------------------------------------------------------------------------
def _ended(facts: Facts) -> datetime | None:
    c = facts.call
    return c.ended_at or c.last_event_at or c.started_at


def _direction(call: CallRecord) -> str:
    # A platform that does not say is answering its own number: inbound (as activity wording).
    return (call.direction or Direction.INBOUND).value


def _number_leaf(getter: Callable[[CallRecord], float | None]) -> Callable[..., Leaf]:
    def build(name: str, value: Any, path: tuple[str | int, ...]) -> Leaf:
        if not isinstance(value, dict) or not value:
            raise ConditionProblem(
                path, f"{name} expects a comparison such as {{ge: 5m}} or {{lt: 30s, gt: 0}}"
            )
        bounds: list[tuple[Callable[[float, float], bool], float]] = []
        for given, raw in value.items():
            op = _COMPARE_ALIASES.get(str(given), str(given))
            if op not in _COMPARE:
                close = difflib.get_close_matches(str(op), list(_COMPARE), n=1)
                hint = f'did you mean "{close[0]}"? ' if close else ""
                raise ConditionProblem(
                    (*path, op), f"unknown comparison ({hint}use gt, ge, lt or le)"
                )
            try:
                bounds.append((_COMPARE[op], parse_seconds(raw)))
            except ValueError as exc:
                raise ConditionProblem((*path, str(given)), str(exc)) from None

        def test(facts: Facts) -> Truth:
            seen = getter(facts.call)
            if seen is None:
                return None
            return all(cmp(float(seen), bound) for cmp, bound in bounds)

        return Leaf(name, test)

    return build


def _choice_leaf(
    parse: Callable[[Any, tuple[str | int, ...]], list[str]],
    getter: Callable[[CallRecord], str | list[str] | None],
    *,
    unknown_when_absent: bool,
) -> Callable[..., Leaf]:
    def build(name: str, value: Any, path: tuple[str | int, ...]) -> Leaf:
        wanted = {v.lower() for v in parse(value, path)}

        def test(facts: Facts) -> Truth:
            seen = getter(facts.call)
            if seen is None:
                return None if unknown_when_absent else False
            values = seen if isinstance(seen, list) else [seen]
            return any(v.lower() in wanted for v in values)

        return Leaf(name, test)

    return build


def _bool_leaf(getter: Callable[[Facts], Truth]) -> Callable[..., Leaf]:
    def build(name: str, value: Any, path: tuple[str | int, ...]) -> Leaf:
        if not isinstance(value, bool):
            raise ConditionProblem(path, f"{name} expects true or false")

        def test(facts: Facts) -> Truth:
            seen = getter(facts)
            return None if seen is None else seen is value

        return Leaf(name, test)

    return build


def _text_leaf(name: str, value: Any, path: tuple[str | int, ...]) -> Leaf:
    needles = [v.lower() for v in _strings(value, path, "text to look for")]

    def test(facts: Facts) -> Truth:
        call = facts.call
        text = call.text_corpus()
        if call.analysis is not None:
            text += "\n" + call.analysis.summary
        text = text.lower()
        return any(n in text for n in needles)

    return Leaf(name, test)


def _in_hours(facts: Facts) -> Truth:
    ended = _ended(facts)
    return None if ended is None else facts.calendar.is_open(ended)


def _promised(facts: Facts) -> Truth:
    analysis = facts.call.analysis
    if analysis is None:
        return None
    return any(a.due_at is not None for a in analysis.action_items)


def _analysis(attr: str) -> Callable[[CallRecord], str | list[str] | None]:
    def get(call: CallRecord) -> str | list[str] | None:
        if call.analysis is None:
            return None
        value = getattr(call.analysis, attr)
        if isinstance(value, list):
            return [str(v) for v in value]
        return None if value is None else str(value)

    return get


def _agent_ids(call: CallRecord) -> list[str]:
    agent = call.agent
    return [v for v in (agent.id, agent.email) if v] if agent else []


def _any(value: Any, path: tuple[str | int, ...]) -> list[str]:
    return _strings(value, path, "text")


def _numbers(value: Any, path: tuple[str | int, ...]) -> list[str]:
    out = []
    for text in _strings(value, path, "phone numbers"):
        number = to_e164(text)
        if number is None:
            raise ConditionProblem(
                path, f"{text!r} is not a phone number (write it in E.164, e.g. +14155550100)"
            )
        out.append(number)
    return out


LEAVES: dict[str, Callable[[str, Any, tuple[str | int, ...]], Leaf]] = {
    "outcome": _choice_leaf(
        _enum(CallOutcome),
        lambda c: c.outcome.value if c.outcome else None,
        unknown_when_absent=True,
    ),
    "direction": _choice_leaf(_enum(Direction), _direction, unknown_when_absent=True),
    "resolution": _choice_leaf(
        _enum(Resolution), _analysis("resolution"), unknown_when_absent=True
    ),
    "sentiment": _choice_leaf(_enum(Sentiment), _analysis("sentiment"), unknown_when_absent=True),
    "categories": _choice_leaf(_any, _analysis("categories"), unknown_when_absent=True),
    "disposition": _choice_leaf(_any, lambda c: c.disposition, unknown_when_absent=False),
    "tags": _choice_leaf(_any, lambda c: list(c.tags), unknown_when_absent=False),
    "agent": _choice_leaf(_any, _agent_ids, unknown_when_absent=False),
    "team": _choice_leaf(
        _any, lambda c: c.agent.team if c.agent else None, unknown_when_absent=False
    ),
    "provider": _choice_leaf(_any, lambda c: c.provider, unknown_when_absent=False),
    "line_number": _choice_leaf(_numbers, lambda c: c.line_number, unknown_when_absent=False),
    "duration": _number_leaf(lambda c: c.duration),
    "talk_time": _number_leaf(lambda c: c.talk_time),
    "handle_time": _number_leaf(lambda c: c.handle_time),
    "text_contains": _text_leaf,
    "business_hours": _bool_leaf(_in_hours),
    "promised": _bool_leaf(_promised),
}
"""Every leaf condition by name (documented one by one in the README)."""

_COMBINATORS = ("all", "any", "not")


# -- parsing -----------------------------------------------------------------------------------
def parse_condition(raw: Any, path: tuple[str | int, ...] = ()) -> Condition:
    """The condition tree of a ``when``; ConditionProblem names the first mistake's path."""
    if isinstance(raw, list):
        return All(tuple(parse_condition(item, (*path, i)) for i, item in enumerate(raw)))
    if not isinstance(raw, dict) or not raw:
        raise ConditionProblem(
            path,
            "a condition is a mapping such as {outcome: missed} or {any: [...]}, "
            f"got {type(raw).__name__}",
        )
    parts: list[Condition] = []
    for key, value in raw.items():
        here = (*path, str(key))
        if key == "all":
            parts.append(All(_parse_list(value, here)))
        elif key == "any":
            parts.append(AnyOf(_parse_list(value, here)))
        elif key == "not":
            parts.append(Not(parse_condition(value, here)))
        elif key in LEAVES:
            parts.append(LEAVES[key](str(key), value, here))
        else:
            names = [*LEAVES, *_COMBINATORS]
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise ConditionProblem(
                here, f"unknown condition ({hint}conditions: {', '.join(names)})"
            )
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def _parse_list(value: Any, path: tuple[str | int, ...]) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not value:
        raise ConditionProblem(path, "expects a non-empty list of conditions")
    return tuple(parse_condition(item, (*path, i)) for i, item in enumerate(value))
