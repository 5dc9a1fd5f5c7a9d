"""``acw-sync dlq``: list, show, replay and purge dead letters.

A dead letter is one (connector instance, call) pair that could not be synced: the call, the
instance, the attempts, the first and last error, the CRM's own message and the reason
(``rejected``, ``credentials``, ``transient``, ``rate_limited``, ``quota``, ``auth_expired``).
Replay goes through the normal path: the entry is removed and one ``sync_call`` is enqueued,
which the ledger makes idempotent (replaying twice writes nothing twice).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import click

from acw_sync.store import StateStore

__all__ = ["COMMANDS", "parse_age", "select"]

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """``90``, ``45s``, ``30m``, ``2h``, ``7d`` -> seconds."""
    m = _AGE.match(text)
    if not m:
        raise click.BadParameter(f"{text!r} is not an age such as 45s, 30m, 2h or 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def select(
    entries: Iterable[dict[str, Any]],
    *,
    connector: str | None = None,
    reason: str | None = None,
    older_than: float | None = None,
    newer_than: float | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Dead letters matching every given filter (age counts from the last failure)."""
    now = now or time.time()
    chosen = []
    for e in entries:
        age = now - float(e.get("last_failed_at") or now)
        if connector and e.get("connector") != connector:
            continue
        if reason and e.get("reason") != reason:
            continue
        if older_than is not None and age < older_than:
            continue
        if newer_than is not None and age > newer_than:
            continue
        chosen.append(e)
    return chosen


def _store() -> StateStore:
    from acw_sync.runtime import state_url

    return StateStore.from_url(state_url())


def _filters(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--connector", help="Only this connector instance."),
            click.option("--reason", help="Only this reason (rejected, credentials, ...)."),
            click.option("--older-than", callback=_age, help="Failed at least this long ago."),
            click.option("--newer-than", callback=_age, help="Failed at most this long ago."),
        ]
    ):
        fn = option(fn)
    return fn


def _age(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return None if value is None else parse_age(value)


def _when(ts: Any) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _chosen(
    store: StateStore,
    *,
    ids: tuple[str, ...],
    connector: str | None,
    reason: str | None,
    older_than: float | None,
    newer_than: float | None,
) -> list[dict[str, Any]]:
    entries = store.dead_letters()
    if ids:
        wanted = set(ids)
        missing = wanted - {e["id"] for e in entries}
        if missing:
            raise click.ClickException(f"no such dead letter: {', '.join(sorted(missing))}")
        entries = [e for e in entries if e["id"] in wanted]
    return select(
        entries,
        connector=connector,
        reason=reason,
        older_than=older_than,
        newer_than=newer_than,
    )


@click.group()
def dlq() -> None:
    """The dead-letter store: calls that could not be synced, and why."""


@dlq.command("list")
@_filters
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(
    *,
    connector: str | None,
    reason: str | None,
    older_than: float | None,
    newer_than: float | None,
    as_json: bool,
) -> None:
    """List dead letters, oldest first."""
    entries = select(
        _store().dead_letters(),
        connector=connector,
        reason=reason,
        older_than=older_than,
        newer_than=newer_than,
    )
    if as_json:
        for e in entries:
            click.echo(json.dumps(e, default=str))
        return
    if not entries:
        click.echo("no dead letters")
        return
    click.echo(f"{'last failed (UTC)':<20} {'reason':<13} {'att':>3}  id / last error")
    for e in entries:
        click.echo(
            f"{_when(e.get('last_failed_at')):<20} {e.get('reason', '?'):<13} "
            f"{e.get('attempts', 0):>3}  {e['id']}"
        )
        click.echo(f"{'':<40}{str(e.get('crm_message') or e.get('last_error'))[:100]}")
    click.echo(f"{len(entries)} dead letter(s)")


@dlq.command("show")
@click.argument("entry_id")
def show(entry_id: str) -> None:
    """Print one dead letter in full (its id as `dlq list` shows it)."""
    store = _store()
    entry = store.get_dead_letter(entry_id)
    if entry is None:
        raise click.ClickException(f"no such dead letter: {entry_id}")
    record = store.record(str(entry.get("call_key")))
    out = {**entry, "call": record.model_dump(mode="json") if record else None}
    click.echo(json.dumps(out, indent=2, default=str))


@dlq.command("replay")
@click.argument("ids", nargs=-1)
@_filters
@click.option("--all", "all_", is_flag=True, help="Replay every dead letter (with no filter).")
def replay(
    *,
    ids: tuple[str, ...],
    connector: str | None,
    reason: str | None,
    older_than: float | None,
    newer_than: float | None,
    all_: bool,
) -> None:
    """Sync dead letters again through the normal path (idempotent)."""
    if not (ids or connector or reason or older_than or newer_than or all_):
        raise click.UsageError("name dead letters, give a filter, or pass --all")
    from acw_sync.tasks import configure_broker, enqueue_sync

    configure_broker()
    store = _store()
    entries = _chosen(
        store, ids=ids, connector=connector, reason=reason,
        older_than=older_than, newer_than=newer_than,
    )  # fmt: skip
    for e in entries:
        instance, call_key = str(e["connector"]), str(e["call_key"])
        store.ledger_set(instance, call_key, state="replayed")
        store.mark_pending(instance, call_key, force=True)
        enqueue_sync(instance, call_key, time.time(), 0)
        store.remove_dead_letter(str(e["id"]))
        click.echo(f"replaying {e['id']}")
    click.echo(f"{len(entries)} dead letter(s) replayed")


@dlq.command("purge")
@click.argument("ids", nargs=-1)
@_filters
@click.option("--all", "all_", is_flag=True, help="Purge every dead letter (with no filter).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(
    *,
    ids: tuple[str, ...],
    connector: str | None,
    reason: str | None,
    older_than: float | None,
    newer_than: float | None,
    all_: bool,
    yes: bool,
) -> None:
    """Delete dead letters for good (the calls stay unsynced)."""
    if not (ids or connector or reason or older_than or newer_than or all_):
        raise click.UsageError("name dead letters, give a filter, or pass --all")
    store = _store()
    entries = _chosen(
        store, ids=ids, connector=connector, reason=reason,
        older_than=older_than, newer_than=newer_than,
    )  # fmt: skip
    if entries and not yes:
        click.confirm(f"delete {len(entries)} dead letter(s)?", abort=True)
    for e in entries:
        store.remove_dead_letter(str(e["id"]))
    click.echo(f"{len(entries)} dead letter(s) purged")


COMMANDS = [dlq]
