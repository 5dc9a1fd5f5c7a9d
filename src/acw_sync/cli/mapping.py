"""``acw-sync map --dry-run EVENTS.json``: the CRM writes a call would cause, touching no CRM.

The events file holds one call's events (or several calls'): a JSON list of generic webhook
bodies (``{"type": "call.ended", "data": {...}}``, as in the README) or of canonical
``CallEvent`` objects, or ``{"events": [...], "analysis": {...}}`` to try rules on an analysis
(resolution, sentiment, promised callbacks) without running the analyzer. The call goes
through the same steps as a real sync (merge, the offline analyzer when installed, routes,
rules, mapping), then each connector's ``preview_call`` / ``preview_task`` says what it would
send. The customer is not searched: the output says which number would be searched for and
what the matching policy would do.

Connector objects are constructed (their constructors do no network I/O); the sandbox's opens
its SQLite file, creating an empty one if none exists, and writes nothing into it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from acw_sync.config import AppConfig, load_config
from acw_sync.connector import WritePreview
from acw_sync.errors import AcwError, ConfigError, PayloadInvalid
from acw_sync.merge import merge_events
from acw_sync.model import Analysis, CallEvent, CallRecord
from acw_sync.phone import mask
from acw_sync.provider import WebhookRequest
from acw_sync.providers.generic import GenericConfig, GenericProvider
from acw_sync.sync import ConnectorPool, prepare_call

__all__ = ["COMMANDS", "dry_run", "read_events"]


def read_events(text: str) -> tuple[list[CallEvent], Analysis | None]:
    """Events (and an optional analysis) from the dry-run file's JSON."""
    data = json.loads(text)
    analysis = None
    if isinstance(data, dict) and "events" in data:
        if data.get("analysis") is not None:
            analysis = Analysis.model_validate(data["analysis"])
        data = data["events"]
    items = data if isinstance(data, list) else [data]
    parser = GenericProvider(GenericConfig(secret="whsec_dry-run"))
    events: list[CallEvent] = []
    for i, item in enumerate(items):
        if (
            isinstance(item, dict)
            and "data" in item
            and str(item.get("type", "")).startswith("call.")
        ):
            body = json.dumps(item).encode()
            request = WebhookRequest(
                method="POST",
                url="dry-run",
                path="/webhooks/generic",
                headers={"webhook-id": f"dry-run-{i + 1}"},
                body=body,
            )
            events.extend(parser.parse(request))
        else:
            events.append(CallEvent.model_validate(item))
    return events, analysis


def _calls(events: list[CallEvent]) -> Iterator[list[CallEvent]]:
    by_call: dict[str, list[CallEvent]] = {}
    for event in events:
        by_call.setdefault(event.call_key, []).append(event)
    yield from by_call.values()


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _fields(preview: WritePreview, indent: str) -> list[str]:
    lines = []
    for name, value in preview.fields.items():
        text = _value(value)
        if "\n" in text:
            lines.append(f"{indent}{name}: |")
            lines.extend(f"{indent}  {row}" for row in text.splitlines())
        else:
            lines.append(f"{indent}{name}: {text}")
    if preview.associations:
        lines.append(f"{indent}(associations: {', '.join(preview.associations)})")
    return lines


def _owner(config: AppConfig, instance: str, record: CallRecord) -> tuple[str | None, str]:
    spec = config.connectors[instance]
    agent = record.agent
    if agent is None:
        return spec.owners.default, f"no agent: default owner {spec.owners.default or '(none)'}"
    for ident in (agent.id, agent.email):
        if ident and ident in spec.owners.table:
            owner = spec.owners.table[ident]
            return owner, f"{ident} -> {owner} (owners.table)"
    if spec.owners.by_email and agent.email:
        return None, f"would look up the CRM user with e-mail {agent.email}"
    return spec.owners.default, f"default owner {spec.owners.default or '(none)'}"


def offline_analysis(config: AppConfig, record: CallRecord) -> Analysis | None:
    """The analyzer's wrap-up of ``record``, offline (no LLM call in a preview)."""
    from acw_sync.analyzer import AnalysisContext, OfflineAnalyzer

    context = AnalysisContext.from_settings(config.analyzer_settings())
    return OfflineAnalyzer().analyze(record, context)


def dry_run(
    config: AppConfig,
    events: list[CallEvent],
    *,
    analysis: Analysis | None = None,
    connector: str | None = None,
    analyze: bool = True,
) -> str:
    """The dry-run report for ``events`` (one section per call and connector instance).

    ``analysis`` stands in for the analyzer; without it the offline analyzer runs when
    installed and ``analyze`` is true.
    """
    pool = ConnectorPool(config)
    calendar = config.business_calendar()
    out: list[str] = []
    try:
        for call_events in _calls(events):
            record = merge_events(call_events)
            if analysis is not None:
                record.analysis = analysis
            elif analyze and record.ended:
                record.analysis = offline_analysis(config, record)
            ended = record.ended_at or record.last_event_at
            out.append(
                f"call {record.key}: {(record.direction or 'inbound')} "
                f"{record.outcome or 'unknown outcome'}, "
                f"{round(record.duration) if record.duration is not None else '?'} s"
                + (f", ended {calendar.describe(ended)}" if ended else "")
            )
            if not record.ended:
                out.append("  not ended yet: nothing would be written until it ends")
                continue
            team = record.agent.team if record.agent else None
            targets = (
                [connector]
                if connector
                else config.routes_for(
                    record.provider, record.provider_account, record.line_number, team
                )
            )
            if not targets:
                out.append("  no route sends this call to a connector instance")
            for instance in targets:
                out.extend(_instance_report(config, pool, instance, record))
    finally:
        pool.close()
    return "\n".join(out) + "\n"


def _instance_report(
    config: AppConfig, pool: ConnectorPool, instance: str, record: CallRecord
) -> list[str]:
    spec = pool.instance(instance)
    conn = pool.get(instance)
    calendar = config.business_calendar(record.agent.team if record.agent else None)
    out = [f"-> {instance} ({spec.type})"]
    matching = spec.matching
    if record.customer_number:
        out.append(
            f"  customer: would search by phone {mask(record.customer_number)}; "
            f"none found: {matching.on_none}; several: {matching.on_many}"
        )
    else:
        out.append("  customer: none (the call has no customer number)")
    owner_id, owner_text = _owner(config, instance, record)
    out.append(f"  owner: {owner_text}")
    record, fields, plan = prepare_call(config, instance, record, None)
    out.append(f"  rules fired: {', '.join(plan.fired) or '(none)'}")
    if plan.disposition is not None:
        out.append(f"  disposition set by rule {plan.disposition_rule}: {plan.disposition}")
    preview = conn.preview_call(record, customer=None, owner_id=owner_id, fields=fields)
    out.append(f"  {preview.operation} {preview.object_type} (key {record.key})")
    out.extend(_fields(preview, "    "))
    for task in plan.tasks:
        preview = conn.preview_task(task, customer=None, owner_id=owner_id)
        out.append(
            f"  {preview.operation} {preview.object_type} (rule {task.rule}), "
            f"due {task.due_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC = {calendar.describe(task.due_at)}"
        )
        out.extend(_fields(preview, "    "))
    for update in plan.customer_updates:
        if conn.capabilities.update_customer:
            out.append(f"  update the customer (rule {update.rule}):")
            out.extend(f"    {k}: {v}" for k, v in update.fields.items())
        else:
            out.append(
                f"  rule {update.rule} asks for a customer update, but {spec.type} "
                "cannot update customers: skipped"
            )
    return out


@click.command("map")
@click.argument("events_file", metavar="EVENTS.json", type=click.Path(dir_okay=False))
@click.option(
    "--dry-run", "preview", is_flag=True, help="Print the CRM writes; write nothing (required)."
)
@click.option("--connector", "connector", help="Preview for this instance instead of the routes.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option(
    "--analyze/--no-analyze",
    default=True,
    show_default=True,
    help="Run the offline analyzer (when installed) unless the file gives an analysis.",
)
def map_command(
    events_file: str,
    preview: bool,
    connector: str | None,
    config_path: str | None,
    analyze: bool,
) -> None:
    """Show exactly what a call would write to each CRM (objects, fields, tasks and due times)."""
    if not preview:
        raise click.UsageError("map only previews: pass --dry-run (it never writes to a CRM)")
    try:
        config = load_config(config_path)
        if connector is not None and connector not in config.connectors:
            raise ConfigError(
                f"no connector instance {connector!r} (configured: {', '.join(config.connectors)})"
            )
        text = sys.stdin.read() if events_file == "-" else Path(events_file).read_text()
        try:
            events, analysis = read_events(text)
        except (ValueError, ValidationError, PayloadInvalid) as exc:
            detail = getattr(exc, "details", None)
            raise click.ClickException(
                f"{events_file}: not a list of call events: {exc} {detail or ''}"
            ) from None
        click.echo(
            dry_run(config, events, analysis=analysis, connector=connector, analyze=analyze),
            nl=False,
        )
    except AcwError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None


COMMANDS = [map_command]
