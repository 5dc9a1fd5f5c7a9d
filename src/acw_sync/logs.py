"""Structured logging for the server and workers (structlog).

One JSON object a line when the output is not a terminal (production), a readable coloured
format on a terminal. Phone numbers are masked to their last four digits unless
``ACW_LOG_MASK_PHONES=0``; secrets never reach a log line because nothing logs them, and
:func:`redact` scrubs known secret values from any text that might carry one.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "mask_phones", "redact"]

_PHONE = re.compile(r"\+\d{7,15}\b")
_secrets: set[str] = set()


def mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: "***" + m.group(0)[-4:], text)


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that :func:`redact` removes them from any text."""
    _secrets.update(v for v in values if v and len(v) >= 6)


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "[redacted]")
    return text


def _scrub(value: Any, masking: bool) -> Any:
    if isinstance(value, str):
        value = redact(value)
        return mask_phones(value) if masking else value
    if isinstance(value, dict):
        return {k: _scrub(v, masking) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, masking) for v in value]
    return value


def _scrubber(masking: bool) -> Any:
    def processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            event[key] = _scrub(value, masking)
        return event

    return processor


def configure_logging(level: str | None = None, *, json: bool | None = None) -> None:
    level_name = (level or os.environ.get("ACW_LOG_LEVEL", "INFO")).upper()
    masking = os.environ.get("ACW_LOG_MASK_PHONES", "1") not in {"0", "false", "no"}
    if json is None:
        json = os.environ.get("ACW_LOG_FORMAT", "").lower() == "json" or not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _scrubber(masking),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
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
    # The HubSpot client logs response bodies (customer data) at debug: never let it.
    logging.getLogger("hubspot").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
