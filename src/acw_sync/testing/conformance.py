"""The connector conformance suite: the contract of :mod:`acw_sync.connector`, as tests.

A connector passes when, against its CRM (or a faithful emulator of it):

* the same call synced twice gives one activity, even when the ledger lost the first write;
* a late recording or note updates that same activity;
* each follow-up task is created once, however often it is asked for, and a task the ledger
  knows is returned unchanged;
* a batch write (:meth:`~acw_sync.connector.Connector.upsert_calls`) answers one result per
  item and is as idempotent as single writes;
* a customer created for an unknown number is created once per key;
* customers are found by phone whatever format the CRM stores the number in;
* a rate-limit answer surfaces as :class:`~acw_sync.errors.RateLimited` with its delay;
* an expired session is renewed transparently; bad credentials raise
  :class:`~acw_sync.errors.CredentialsInvalid`;
* previews touch nothing; ``check()`` passes on a healthy CRM;
* no secret appears in logs or in exception text.
"""

from __future__ import annotations

import abc
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest

from acw_sync.connector import CallWrite, Connector
from acw_sync.errors import CredentialsInvalid, RateLimited
from acw_sync.merge import merge_events
from acw_sync.model import (
    Agent,
    CallEvent,
    CallOutcome,
    CallRecord,
    CrmObjectRef,
    Direction,
    EventType,
    FollowUp,
    Note,
    Priority,
)

__all__ = ["ConnectorConformance", "ConnectorHarness", "Fault", "sample_call", "sample_followup"]

Fault = Literal["rate_limit", "expired_session", "invalid_credentials"]


class ConnectorHarness(abc.ABC):
    """What a connector's tests give the suite: a connector and a view into its CRM."""

    #: Secret values (tokens, passwords) that must never be logged or raised.
    secrets: list[str] = []

    @abc.abstractmethod
    def make_connector(self) -> Connector:
        """A connector configured against the CRM under test."""

    @abc.abstractmethod
    def add_customer(self, phone_as_stored: str, name: str) -> str:
        """Create a customer in the CRM directly (not through the connector); its id."""

    @abc.abstractmethod
    def activities(self, key: str) -> list[dict[str, Any]]:
        """The CRM's call activities written for ``key``, as the CRM stores them."""

    @abc.abstractmethod
    def tasks(self, key: str) -> list[dict[str, Any]]:
        """The CRM's tasks written for the follow-up ``key``."""

    @abc.abstractmethod
    def inject(self, fault: Fault, *, retry_after: float = 2.0) -> None:
        """Make the CRM answer the next request with ``fault``."""


def sample_call(
    call_id: str = "conf-1",
    *,
    number: str = "+14155550100",
    recording: str | None = None,
    notes: tuple[str, ...] = ("Customer asked about invoice 1042.",),
) -> CallRecord:
    start = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
    common: dict[str, Any] = {"provider": "generic", "call_id": call_id}
    events = [
        CallEvent(
            event_id=f"{call_id}-1",
            type=EventType.STARTED,
            occurred_at=start,
            direction=Direction.INBOUND,
            customer_number=number,
            line_number="+14155550199",
            agent=Agent(id="a1", email="ana@example.com", name="Ana Agent"),
            started_at=start,
            **common,
        ),
        CallEvent(
            event_id=f"{call_id}-2",
            type=EventType.ANSWERED,
            occurred_at=start + timedelta(seconds=5),
            answered_at=start + timedelta(seconds=5),
            **common,
        ),
        CallEvent(
            event_id=f"{call_id}-3",
            type=EventType.ENDED,
            occurred_at=start + timedelta(seconds=125),
            ended_at=start + timedelta(seconds=125),
            outcome=CallOutcome.COMPLETED,
            duration=125,
            talk_time=120,
            notes=[Note(text=n) for n in notes],
            recording_url=recording,
            **common,
        ),
    ]
    return merge_events(events)


def sample_followup(call: CallRecord, rule: str = "callback") -> FollowUp:
    return FollowUp(
        rule=rule,
        call_key=call.key,
        subject=f"Call back {call.customer_number}",
        body="Promised a call back about the invoice.",
        due_at=datetime(2026, 3, 11, 10, 0, tzinfo=UTC),
        priority=Priority.HIGH,
    )


class ConnectorConformance:
    """Subclass with a ``harness`` fixture returning your :class:`ConnectorHarness`."""

    @pytest.fixture
    def harness(self) -> ConnectorHarness:
        raise NotImplementedError("define a `harness` fixture returning a ConnectorHarness")

    @pytest.fixture
    def connector(self, harness: ConnectorHarness) -> Connector:
        return harness.make_connector()

    def _sync(self, connector: Connector, call: CallRecord, existing: Any = None) -> Any:
        return connector.upsert_call(
            call, key=call.key, customer=None, owner_id=None, existing=existing, fields={}
        )

    def test_same_call_twice_is_one_activity(
        self, harness: ConnectorHarness, connector: Connector
    ) -> None:
        call = sample_call("conf-twice")
        first = self._sync(connector, call)
        again = self._sync(connector, call, existing=first)
        lost_ledger = self._sync(connector, call, existing=None)
        assert first.created
        assert again.id == first.id and lost_ledger.id == first.id
        assert len(harness.activities(call.key)) == 1

    def test_late_recording_updates_the_activity(
        self, harness: ConnectorHarness, connector: Connector
    ) -> None:
        call = sample_call("conf-late")
        first = self._sync(connector, call)
        url = "https://recordings.example.com/conf-late.mp3"
        later = sample_call("conf-late", recording=url, notes=("Late note: sent the refund.",))
        updated = self._sync(connector, later, existing=first)
        assert updated.id == first.id and not updated.created
        stored = harness.activities(call.key)
        assert len(stored) == 1
        assert url in repr(stored[0])
        assert "Late note: sent the refund." in repr(stored[0])

    def test_followup_created_once(self, harness: ConnectorHarness, connector: Connector) -> None:
        call = sample_call("conf-task")
        activity = self._sync(connector, call)
        task = sample_followup(call)
        refs = [
            connector.create_task(
                task, customer=None, activity=activity, owner_id=None, existing=None
            )
            for _ in range(3)
        ]
        assert len({r.id for r in refs}) == 1
        assert len(harness.tasks(task.key)) == 1
        other = sample_followup(call, rule="escalation")
        connector.create_task(other, customer=None, activity=activity, owner_id=None, existing=None)
        assert len(harness.tasks(other.key)) == 1

    def test_followup_known_to_the_ledger_is_returned_unchanged(
        self, harness: ConnectorHarness, connector: Connector
    ) -> None:
        call = sample_call("conf-task-ledger")
        activity = self._sync(connector, call)
        task = sample_followup(call)
        first = connector.create_task(
            task, customer=None, activity=activity, owner_id=None, existing=None
        )
        again = connector.create_task(
            task, customer=None, activity=activity, owner_id=None, existing=first
        )
        assert again.id == first.id and not again.created
        assert len(harness.tasks(task.key)) == 1

    def test_batch_write_is_one_result_per_item_and_idempotent(
        self, harness: ConnectorHarness, connector: Connector
    ) -> None:
        calls = [sample_call(f"conf-batch-{i}") for i in range(3)]
        items = [CallWrite(call=c, key=c.key) for c in calls]
        size = max(connector.capabilities.batch_size, 1)

        def batches() -> list[Any]:
            return [
                r for n in range(0, 3, size) for r in connector.upsert_calls(items[n : n + size])
            ]

        first = batches()
        assert len(first) == 3 and all(isinstance(r, CrmObjectRef) for r in first), first
        again = batches()  # the ledger lost the first batch
        assert all(isinstance(r, CrmObjectRef) and not r.created for r in again), again
        assert [getattr(r, "id", None) for r in again] == [getattr(r, "id", None) for r in first]
        for call in calls:
            assert len(harness.activities(call.key)) == 1

    def test_customer_created_once_per_key(self, connector: Connector) -> None:
        if not connector.capabilities.create_customer:
            pytest.skip("the connector does not create customers")
        call = sample_call("conf-new-number", number="+14155550166")
        key = f"conformance:{call.customer_number}"
        first = connector.create_customer(call, key=key)
        again = connector.create_customer(call, key=key)
        assert again.id == first.id

    def test_finds_customer_stored_in_national_format(
        self, harness: ConnectorHarness, connector: Connector
    ) -> None:
        customer_id = harness.add_customer("(415) 555-0177", "Nina National")
        found = connector.find_customers("+14155550177")
        assert [c.id for c in found] == [customer_id]
        assert connector.find_customers("+14155550178") == []

    def test_rate_limit_is_retryable_with_delay(
        self, harness: ConnectorHarness, connector: Connector
    ) -> None:
        harness.inject("rate_limit", retry_after=3)
        with pytest.raises(RateLimited) as info:
            self._sync(connector, sample_call("conf-429"))
        assert info.value.retry_after is not None and info.value.retry_after > 0

    def test_expired_session_is_renewed(
        self, harness: ConnectorHarness, connector: Connector
    ) -> None:
        harness.inject("expired_session")
        call = sample_call("conf-401")
        ref = self._sync(connector, call)
        assert ref.created
        assert len(harness.activities(call.key)) == 1

    def test_invalid_credentials_are_reported(
        self, harness: ConnectorHarness, connector: Connector
    ) -> None:
        harness.inject("invalid_credentials")
        with pytest.raises(CredentialsInvalid) as info:
            self._sync(connector, sample_call("conf-creds"))
        for secret in harness.secrets:
            assert secret not in str(info.value)

    def test_preview_touches_nothing(self, harness: ConnectorHarness, connector: Connector) -> None:
        call = sample_call("conf-preview")
        preview = connector.preview_call(call, customer=None, owner_id=None, fields={})
        assert preview.fields
        task_preview = connector.preview_task(sample_followup(call), customer=None, owner_id=None)
        assert task_preview.fields
        assert harness.activities(call.key) == []

    def test_check_passes_on_a_healthy_crm(self, connector: Connector) -> None:
        checks = connector.check()
        assert checks and all(c.ok for c in checks), checks

    def test_no_secret_in_logs(
        self,
        harness: ConnectorHarness,
        connector: Connector,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        call = sample_call("conf-logs")
        harness.inject("expired_session")
        self._sync(connector, call)
        connector.find_customers("+14155550100")
        connector.check()
        for secret in harness.secrets:
            assert secret not in caplog.text
