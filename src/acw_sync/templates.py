"""Admin templates: CRM field values and task texts written over the call record, sandboxed.

Templates are Jinja2, rendered by a :class:`~jinja2.sandbox.SandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`, over plain data only (strings, numbers, lists, dicts built
from the call): ``call``, ``analysis``, ``customer``, ``agent``, ``centre`` (its timezone) and
``task`` (in task texts). The environment has no globals (no ``range``, ``cycler``,
``joiner``, ``namespace``), so there is no object to climb from; names with ``__``, methods and
the ``attr`` filter are refused before rendering, and ``*`` / ``**`` are bounded.

:func:`check_template` is what ``config check`` runs: it parses the template, refuses names
and dotted paths that are not fields of the context (``{{ call.custmer_number }}`` fails at
start-up, not in a worker at 3 a.m.), then renders it once over a fully populated sample to
catch sandbox violations and filter misuse. :func:`render` is what the sync path runs.

This module renders text; it does not know connectors or rules.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from jinja2 import StrictUndefined, TemplateError, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from acw_sync.model import CallRecord, CustomerRef
from acw_sync.phone import mask

__all__ = ["TemplateProblem", "check_template", "render", "render_mapping", "template_context"]

log = structlog.get_logger("acw_sync.templates")

#: The fields each top-level name offers; ``*`` marks a list of the nested shape.
_AGENT = {"id": None, "email": None, "name": None, "team": None}
_CALL = {
    "key": None,
    "provider": None,
    "call_id": None,
    "provider_account": None,
    "direction": None,
    "customer_number": None,
    "line_number": None,
    "agent": _AGENT,
    "started_at": None,
    "answered_at": None,
    "ended_at": None,
    "duration": None,
    "talk_time": None,
    "hold_time": None,
    "wrapup_time": None,
    "handle_time": None,
    "outcome": None,
    "disposition": None,
    "recording_url": None,
    "transcript": {"*": {"speaker": None, "text": None, "offset": None}},
    "notes": {"*": {"text": None, "id": None, "author": None, "created_at": None}},
    "notes_text": None,
    "tags": {"*": None},
    "ended": None,
    "missed": None,
}
_ANALYSIS = {
    "summary": None,
    "resolution": None,
    "sentiment": None,
    "sentiment_score": None,
    "categories": {"*": None},
    "action_items": {"*": {"text": None, "due_at": None, "kind": None}},
    "promised_at": None,
    "analyzer": None,
}
_CUSTOMER = {
    "id": None,
    "object_type": None,
    "name": None,
    "phone": None,
    "owner_id": None,
    "account_id": None,
    "url": None,
}
_TASK = {"rule": None, "due_at": None, "type": None, "priority": None}
FIELDS: dict[str, Any] = {
    "call": _CALL,
    "analysis": _ANALYSIS,
    "customer": _CUSTOMER,
    "agent": _AGENT,
    "task": _TASK,
    "centre": {"timezone": None},
}
"""Every path a template may name (``call.agent.email``, ``analysis.action_items``...)."""


class TemplateProblem(ValueError):
    """A template that cannot be used; the message says what to change."""


@pass_context
def _localtime(
    ctx: Context, value: Any, fmt: str = "%Y-%m-%d %H:%M %Z", tz: str | None = None
) -> str:
    """``{{ call.ended_at | localtime }}`` in the centre's timezone, or
    ``{{ call.ended_at | localtime("%d %b %H:%M", "Europe/Berlin") }}``."""
    if not value:
        return ""
    zone = tz or (ctx.get("centre") or {}).get("timezone") or "UTC"
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.astimezone(ZoneInfo(zone)).strftime(fmt)


def _mask(value: Any) -> str:
    return mask(str(value)) if value else ""


#: Largest string, list or number a template may build with ``*`` or ``**`` (a CRM field).
MAX_SIZE = 100_000


class _Sandbox(SandboxedEnvironment):
    """The sandbox, plus bounds on ``*`` and ``**``: ``{{ 'a' * 10**10 }}`` or ``9**9**9``
    would otherwise exhaust memory or CPU at ``config check``, not just at render."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponent too large for a template")
            return self.binop_table["**"](left, right)
        for sized, count in ((left, right), (right, left)):
            too_big = (
                isinstance(sized, str | list | tuple)
                and isinstance(count, int)
                and len(sized) * count > MAX_SIZE
            )
            if too_big:
                raise SecurityError("result too large for a template")
        return self.binop_table["*"](left, right)


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False)
    env.globals.clear()  # range, dict, lipsum, cycler, joiner, namespace: nothing to climb from
    env.filters.pop("attr")  # attribute names computed at render time would dodge the check
    env.filters["localtime"] = _localtime
    env.filters["mask"] = _mask
    return env


@lru_cache(maxsize=512)
def _compile(source: str) -> Any:
    return _environment().from_string(source)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render a template checked by :func:`check_template`; TemplateProblem on failure."""
    try:
        return str(_compile(source).render(**context))
    except TemplateError as exc:
        raise TemplateProblem(f"template failed: {exc.message or exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        # Data the sample did not have (None where a number was expected...).
        raise TemplateProblem(f"template failed on this call's data: {exc}") from None


def render_mapping(
    mapping: Mapping[str, str],
    call: CallRecord,
    *,
    customer: CustomerRef | None = None,
    timezone: str = "UTC",
) -> dict[str, str]:
    """An instance's ``mapping`` (CRM field -> template) rendered over ``call``.

    A field whose template fails on this call's data is left out (the connector's default
    applies) and logged: the activity is still written.
    """
    if not mapping:
        return {}
    context = template_context(call, customer=customer, timezone=timezone)
    out: dict[str, str] = {}
    for name, source in mapping.items():
        try:
            out[name] = render(source, context)
        except TemplateProblem as exc:
            log.warning(
                "mapping template failed; field left to the connector", field=name, error=str(exc)
            )
    return out


# -- context ---------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def template_context(
    call: CallRecord,
    *,
    customer: CustomerRef | None = None,
    task: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
) -> dict[str, Any]:
    """The call as plain data, every documented field present (None when unknown)."""
    data = call.model_dump(mode="json", exclude={"event_ids", "last_event_at", "analysis"})
    data["handle_time"] = call.handle_time
    data["missed"] = call.missed
    data["agent"] = {**_AGENT, **(data.get("agent") or {})}
    data["notes_text"] = "\n".join(n.text for n in call.notes)
    analysis: dict[str, Any] = {k: None for k in _ANALYSIS}
    analysis.update(categories=[], action_items=[], summary="")
    if call.analysis is not None:
        analysis.update(call.analysis.model_dump(mode="json"))
        dues = [a.due_at for a in call.analysis.action_items if a.due_at is not None]
        analysis["promised_at"] = _iso(min(dues)) if dues else None
    cust = {k: None for k in _CUSTOMER}
    if customer is not None:
        cust.update(customer.model_dump(mode="json", include=set(_CUSTOMER)))
    return {
        "call": data,
        "analysis": analysis,
        "customer": cust,
        "agent": data["agent"],
        "task": {**{k: None for k in _TASK}, **(task or {})},
        "centre": {"timezone": timezone},
    }


def _sample() -> dict[str, Any]:
    """A context with every field filled, for the render check."""
    now = datetime(2026, 3, 10, 18, 0, tzinfo=UTC).isoformat()

    def fill(shape: Any, name: str) -> Any:
        if shape is None:
            return f"<{name}>" if not name.endswith(("_at", "time", "duration")) else now
        if "*" in shape:
            return [fill(shape["*"], name)]
        return {k: fill(v, k) for k, v in shape.items()}

    filled = {name: fill(shape, name) for name, shape in FIELDS.items()}
    for section in ("call", "analysis"):
        for key in ("duration", "talk_time", "hold_time", "wrapup_time", "handle_time"):
            if key in filled[section]:
                filled[section][key] = 60.0
    filled["analysis"]["sentiment_score"] = 0.0
    filled["centre"]["timezone"] = "UTC"
    return filled


# -- static check ----------------------------------------------------------------------------
def _path(node: nodes.Node) -> list[str] | None:
    """``call.agent.email`` / ``call['agent']`` as a list of names, or None if not a path."""
    if isinstance(node, nodes.Name):
        return [node.name]
    if isinstance(node, nodes.Getattr):
        head = _path(node.node)
        return None if head is None else [*head, node.attr]
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        head = _path(node.node)
        if head is None:
            return None
        return [*head, str(node.arg.value)] if isinstance(node.arg.value, str) else [*head, "*"]
    return None


def _unknown(path: list[str], names: Mapping[str, Any]) -> str | None:
    """Why ``path`` is not a field of the context, or None when it is."""
    shape: Any = names
    walked: list[str] = []
    for part in path:
        if shape is None:
            return (
                f"{'.'.join(walked)} is a value and has no field {part!r} "
                "(transform values with filters, e.g. {{ call.disposition | upper }})"
            )
        if part == "*" and "*" in shape:
            shape = shape["*"]
            continue
        if part not in shape and list(shape) == ["*"]:
            return (
                f"{'.'.join(walked)} is a list and has no field {part!r} (loop over it, or use "
                "a filter such as | join(', ') or | first)"
            )
        if part not in shape:
            options = [k for k in shape if k != "*"]
            close = difflib.get_close_matches(part, options, n=1)
            hint = f'did you mean "{".".join([*walked, close[0]])}"? ' if close else ""
            where = ".".join(walked) if walked else "the template context"
            return f"{where} has no field {part!r} ({hint}fields: {', '.join(options)})"
        walked.append(part)
        shape = shape[part]
    return None


def check_template(source: str, *, names: tuple[str, ...] = tuple(FIELDS)) -> None:
    """Refuse a template that is unsafe, malformed or names an unknown field."""
    env = _environment()
    try:
        tree = env.parse(source)
    except TemplateError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}") from None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = str(node.arg.value)
        if attr is not None and attr.startswith("_"):
            raise TemplateProblem(
                f"template reaches for {attr!r}: only the call's fields may be used "
                "(templates are sandboxed)"
            )
    for const in tree.find_all(nodes.Const):
        if isinstance(const.value, str) and "__" in const.value:
            raise TemplateProblem(
                f"template names {const.value!r}: only the call's fields may be used "
                "(templates are sandboxed)"
            )
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        table = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in table:
            close = difflib.get_close_matches(node.name, list(table), n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            raise TemplateProblem(
                f"no {kind} named {node.name!r} in templates ({hint}see 'Configuring acw-sync' in the README)"
            )
    local = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    local |= {"loop", "caller", "varargs", "kwargs"}  # Jinja's own names in loops and macros
    allowed = {k: FIELDS[k] for k in names}
    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        path = _path(node)
        if not path or path[0] in local:
            continue
        if path[0] not in allowed:
            close = difflib.get_close_matches(path[0], list(allowed), n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise TemplateProblem(
                f"unknown name {path[0]!r} ({hint}templates see: {', '.join(allowed)})"
            )
        why = _unknown(path, allowed)
        if why is not None:
            raise TemplateProblem(why)
    try:
        _compile(source).render(**_sample())
    except TemplateError as exc:
        raise TemplateProblem(f"template cannot render: {exc.message or exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateProblem(f"template cannot render: {exc}") from None
