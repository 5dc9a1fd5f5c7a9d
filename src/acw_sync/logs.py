"""Structured logging for the server and workers (structlog over the standard library).

One JSON object a line when the output is not a terminal (production), a readable coloured
format on a terminal. Every library's records (Celery, uvicorn, kombu) go through the same
formatter, so a worker's log is one format.

Call context: :func:`bind_call` puts ``event_id``, ``call_key``, ``provider``, ``connector``
and ``attempt`` into structlog's context variables; every line logged until
:func:`clear_call` carries them, including Celery's own lines about the task. Workers bind
them around each task (:mod:`acw_sync.worker_signals`), so ``grep <call id>`` over the logs
tells a call's story from webhook to CRM object ids.

Safety: :func:`register_secrets` remembers secret values (the config's secrets are registered
when it loads) and every string in every line is scrubbed of them; phone numbers are masked
to their last four digits unless ``ACW_LOG_MASK_PHONES=0``.

Levels: ``ACW_LOG_LEVEL`` (default INFO) for everything, and per component
``ACW_LOG_LEVELS="acw_sync.sync=DEBUG,celery=WARNING"`` (logger name prefixes).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

__all__ = [
    "CALL_FIELDS",
    "bind_call",
    "clear_call",
    "component_levels",
    "configure_logging",
    "json_lines",
    "mask_phones",
    "redact",
    "register_config_secrets",
    "register_secrets",
]

_PHONE = re.compile(r"\+\d{7,15}\b")
_secrets: set[str] = set()

#: The context keys that identify a call in a log line; :func:`clear_call` removes exactly these.
CALL_FIELDS = ("event_id", "call_key", "provider", "connector", "attempt", "task_id", "task")

#: Config keys whose values are secrets even when they are plain strings in the YAML.
_SECRET_KEY = re.compile(r"secret|token|password|passwd|api_?key|private_?key|credential", re.I)

#: Libraries that log request or response bodies (customer data) at DEBUG: never below INFO.
_QUIET = {"hubspot": logging.WARNING, "urllib3": logging.WARNING}


def mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: "***" + m.group(0)[-4:], text)


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that :func:`redact` removes them from any text."""
    _secrets.update(v for v in values if v and len(v) >= 6)


def register_config_secrets(config: Any) -> int:
    """Register every secret in a loaded config (``SecretStr`` values and values under keys
    named like secrets); the number of values registered."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif hasattr(value, "model_dump") and not isinstance(value, type):
            walk(dict(value))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and _SECRET_KEY.search(key) and not key.endswith("url"):
            found.append(value)

    walk(config)
    register_secrets(found)
    return len(found)


def redact(text: str) -> str:
    # Longest first, so a secret that contains another is removed whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def bind_call(**fields: Any) -> None:
    """Bind call fields (None values are skipped) for every line logged until :func:`clear_call`."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def clear_call() -> None:
    structlog.contextvars.unbind_contextvars(*CALL_FIELDS)


_REPR_FIELD = re.compile(r"'(event_id|provider|call_id)': '([^'\\]{1,512})'")
_REPR_SYNC = re.compile(r"^\['([^'\\]{1,128})', '([^'\\]{1,512})'")


def _celery_received(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Give Celery's "Task ... received" line (logged by the worker's main process, outside
    any task context) the call fields, read from the task's argument repr."""
    data = getattr(event.get("_record"), "data", None)
    if not isinstance(data, dict) or "call_key" in event or not data.get("id"):
        return event
    name, args = str(data.get("name")), str(data.get("args") or "")
    if name == "acw.sync_call" and (m := _REPR_SYNC.match(args)):
        event.update(connector=m.group(1), call_key=m.group(2))
        event.setdefault("provider", m.group(2).partition(":")[0])
    elif name == "acw.process_event":
        found: dict[str, str] = {}
        for key, value in _REPR_FIELD.findall(args):  # the model's own fields come first
            found.setdefault(key, value)
        if "event_id" in found:
            event["event_id"] = found["event_id"]
        if "provider" in found and "call_id" in found:
            event.update(
                provider=found["provider"], call_key=f"{found['provider']}:{found['call_id']}"
            )
    event.setdefault("task_id", data["id"])
    return event


def _scrub(value: Any, masking: bool) -> Any:
    if isinstance(value, str):
        value = redact(value)
        return mask_phones(value) if masking else value
    if isinstance(value, dict):
        return {k: _scrub(v, masking) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, masking) for v in value]
    if isinstance(value, BaseException):
        return _scrub(f"{type(value).__name__}: {value}", masking)
    return value


def _scrubber(masking: bool) -> Any:
    def processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            event[key] = _scrub(value, masking)
        return event

    return processor


def component_levels(spec: str | None = None) -> dict[str, str]:
    """Parse ``"acw_sync.sync=DEBUG,celery=WARNING"`` (default: ``ACW_LOG_LEVELS``).

    Raises ValueError naming the bad item, so a typo fails at start-up and not silently.
    """
    spec = os.environ.get("ACW_LOG_LEVELS", "") if spec is None else spec
    levels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, level = item.partition("=")
        level = level.strip().upper()
        if not sep or not name.strip() or not isinstance(logging.getLevelName(level), int):
            raise ValueError(
                f"ACW_LOG_LEVELS: {item!r} is not logger=LEVEL "
                "(for example acw_sync.sync=DEBUG,celery=WARNING)"
            )
        levels[name.strip()] = level
    return levels


def json_lines() -> bool:
    """True when logs are JSON lines: ``ACW_LOG_FORMAT=json``, or stderr is not a terminal."""
    return os.environ.get("ACW_LOG_FORMAT", "").lower() == "json" or not sys.stderr.isatty()


def configure_logging(
    level: str | None = None,
    *,
    json: bool | None = None,
    levels: Mapping[str, str] | None = None,
) -> None:
    """Set up structlog and the standard library's root logger for this process.

    ``level`` overrides ``ACW_LOG_LEVEL``; ``levels`` (logger name -> level) is applied over
    ``ACW_LOG_LEVELS`` (a future ``logging:`` config section passes its levels here).
    """
    level_name = (level or os.environ.get("ACW_LOG_LEVEL", "INFO")).upper()
    masking = os.environ.get("ACW_LOG_MASK_PHONES", "1").lower() not in {"0", "false", "no"}
    if json is None:
        json = json_lines()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _celery_received,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _scrubber(masking),
    ]
    structlog.configure(
        # Drop lines below the logger's level before any processing: a filtered-out line
        # costs nothing on the ingest path.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)
    logging.captureWarnings(True)  # Python warnings become log lines too (``py.warnings``)
    # Celery and uvicorn add handlers of their own to some loggers; route everything to ours.
    for name in ("celery", "celery.task", "celery.redirected", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    for name, value in {**component_levels(), **(levels or {})}.items():
        logging.getLogger(name).setLevel(value.upper())
