"""Structured logs: call context, secrets, phone masking, per-component levels."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from acw_sync.config import AppConfig, ConnectorInstance
from acw_sync.logs import (
    _secrets,
    bind_call,
    clear_call,
    component_levels,
    configure_logging,
    register_config_secrets,
)
from acw_sync.task_signals import call_fields


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    saved = set(_secrets)
    yield
    clear_call()
    _secrets.clear()
    _secrets.update(saved)
    structlog.reset_defaults()
    logging.captureWarnings(False)
    logging.getLogger().handlers[:] = []
    for name in ("acw_sync.sync", "celery"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_lines_carry_the_bound_call_and_celery_goes_through_the_same_formatter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json=True)
    bind_call(call_key="generic:c1", connector="crm", attempt=2, event_id=None)
    structlog.get_logger("acw_sync.sync").info("call activity written", activity_id="A1")
    logging.getLogger("celery.app.trace").info("Task acw.sync_call[x] succeeded")
    clear_call()
    structlog.get_logger("acw_sync.sync").info("unrelated")
    ours, celery, after = lines(capsys.readouterr().err)
    assert ours["call_key"] == celery["call_key"] == "generic:c1"
    assert ours["connector"] == "crm" and ours["attempt"] == 2 and "event_id" not in ours
    assert celery["logger"] == "celery.app.trace"
    assert "call_key" not in after


def test_config_secrets_never_reach_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = AppConfig(
        providers={"generic": {"secret": "whsec_topsecretvalue123"}},
        connectors={
            "sf": ConnectorInstance(
                type="sandbox",
                options={
                    "access_token": "00Dxx!AQ4AQFakeToken",
                    "api_token": SecretStr("sandbox-token-123456"),
                    "token_url": "https://login.example.com/services/oauth2/token",
                },
            )
        },
    )
    assert register_config_secrets(config) == 3  # the URL is not a secret
    configure_logging("INFO", json=True)
    log = structlog.get_logger("acw_sync.worker")
    log.error(
        "sync failed",
        error="401 for token 00Dxx!AQ4AQFakeToken",
        detail=["whsec_topsecretvalue123"],
    )
    logging.getLogger("urllib3.x").warning("header Bearer sandbox-token-123456")
    log.info("token endpoint", url="https://login.example.com/services/oauth2/token")
    err = capsys.readouterr().err
    assert "FakeToken" not in err and "topsecret" not in err and "sandbox-token" not in err
    assert err.count("[redacted]") == 3
    assert "login.example.com" in err


def test_phones_are_masked_unless_turned_off(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_logging("INFO", json=True)
    structlog.get_logger("x").info("customer created", phone="+14155550123")
    assert lines(capsys.readouterr().err)[0]["phone"] == "***0123"
    monkeypatch.setenv("ACW_LOG_MASK_PHONES", "0")
    configure_logging("INFO", json=True)
    structlog.get_logger("y").info("customer created", phone="+14155550123")
    assert lines(capsys.readouterr().err)[0]["phone"] == "+14155550123"


def test_levels_per_component(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACW_LOG_LEVELS", "acw_sync.sync=DEBUG, celery=WARNING")
    configure_logging("INFO", json=True)
    structlog.get_logger("acw_sync.sync").debug("sync detail")
    structlog.get_logger("acw_sync.server").debug("server detail")
    logging.getLogger("celery.worker").info("celery chatter")
    logging.getLogger("celery.worker").warning("celery warning")
    events = [line["event"] for line in lines(capsys.readouterr().err)]
    assert events == ["sync detail", "celery warning"]


def test_bad_level_spec_fails_with_the_fix() -> None:
    with pytest.raises(ValueError, match="logger=LEVEL"):
        component_levels("acw_sync.sync:DEBUG")
    with pytest.raises(ValueError, match="LOUD"):
        component_levels("celery=LOUD")


def test_call_fields_from_task_arguments() -> None:
    event = {"event_id": "m1", "provider": "generic", "call_id": "c9", "type": "ended"}
    assert call_fields("acw.process_event", [event], {}) == {
        "event_id": "m1",
        "provider": "generic",
        "call_key": "generic:c9",
    }
    assert call_fields("acw.sync_call", ["crm", "generic:c9"], {"first_seen": 1.0}) == {
        "connector": "crm",
        "call_key": "generic:c9",
        "provider": "generic",
    }
    assert call_fields("other", [], {}) == {}
