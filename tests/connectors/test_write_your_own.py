"""The "Write your own connector" example of the README, run against the suite.

A toy CRM kept in memory stands in for a real API; the connector is the part you write.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import count
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from acw_sync.activity import activity_body, activity_subject
from acw_sync.connector import Capabilities, Check, Connector, ConnectorConfig, WritePreview
from acw_sync.errors import CredentialsInvalid, RateLimited
from acw_sync.model import CallRecord, CrmObjectRef, CustomerRef, FollowUp
from acw_sync.phone import same_number
from acw_sync.testing import ConnectorConformance, ConnectorHarness
from acw_sync.testing.conformance import Fault


class ToyCrm:
    """The CRM's side: records, a token, and a fault to answer the next request with."""

    def __init__(self) -> None:
        self.ids = count(1)
        self.token = "toy-secret-token"
        self.fault: Fault | None = None
        self.customers: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, dict[str, Any]] = {}  # by our key: the CRM's "external id"
        self.tasks: dict[str, dict[str, Any]] = {}


CRMS: dict[str, ToyCrm] = {}


# -- the plugin: config, then the connector -------------------------------------------------------
class ToyConfig(ConnectorConfig):
    crm: str = "default"
    token: SecretStr


class ToyConnector(Connector):
    type_name = "toy"
    config_model = ToyConfig
    capabilities: ClassVar[Capabilities] = Capabilities(external_ids=True)

    def __init__(self, instance: str, config: ToyConfig) -> None:
        super().__init__(instance, config)
        self.token = config.token.get_secret_value()
        self.crm = CRMS[config.crm]

    def _request(self) -> ToyCrm:
        """Every call to the CRM passes here: faults become error intents."""
        fault, self.crm.fault = self.crm.fault, None
        if fault == "rate_limit":
            raise RateLimited("toy CRM throttled us", retry_after=2.0, status=429)
        if fault == "expired_session":
            pass  # a real connector logs in again here, once, and retries
        if self.token != self.crm.token:
            raise CredentialsInvalid("toy CRM refused the token", status=401)
        return self.crm

    def find_customers(self, phone: str) -> list[CustomerRef]:
        rows = self._request().customers.values()
        return [
            CustomerRef(object_type="person", id=r["id"], phone=r["phone"])
            for r in rows
            if same_number(r["phone"], phone)
        ]

    def upsert_call(
        self,
        call: CallRecord,
        *,
        key: str,
        customer: CustomerRef | None,
        owner_id: str | None,
        existing: CrmObjectRef | None,
        fields: Mapping[str, Any],
    ) -> CrmObjectRef:
        crm = self._request()
        body = {
            **self.preview_call(call, customer=customer, owner_id=owner_id, fields=fields).fields
        }
        found = crm.activities.get(key)  # upsert on our key: no duplicate after a crash
        row = found or {"id": str(next(crm.ids))}
        crm.activities[key] = {**row, **body}
        return CrmObjectRef(object_type="call", id=row["id"], created=found is None)

    def create_task(
        self,
        task: FollowUp,
        *,
        customer: CustomerRef | None,
        activity: CrmObjectRef | None,
        owner_id: str | None,
        existing: CrmObjectRef | None,
    ) -> CrmObjectRef:
        crm = self._request()
        found = crm.tasks.get(task.key)
        if found is None:
            body = self.preview_task(task, customer=customer, owner_id=owner_id).fields
            found = crm.tasks[task.key] = {"id": str(next(crm.ids)), **body}
            return CrmObjectRef(object_type="task", id=found["id"])
        return CrmObjectRef(object_type="task", id=found["id"], created=False)

    def check(self) -> list[Check]:
        try:
            self._request()
        except CredentialsInvalid as exc:
            return [Check("credentials", False, str(exc))]
        return [Check("credentials", True, "token accepted")]

    def preview_call(
        self,
        call: CallRecord,
        *,
        customer: CustomerRef | None,
        owner_id: str | None,
        fields: Mapping[str, Any],
    ) -> WritePreview:
        body = {"subject": activity_subject(call), "body": activity_body(call), **fields}
        return WritePreview(object_type="call", operation="upsert", fields=body)

    def preview_task(
        self, task: FollowUp, *, customer: CustomerRef | None, owner_id: str | None
    ) -> WritePreview:
        body = {"subject": task.subject, "due": task.due_at.isoformat()}
        return WritePreview(object_type="task", operation="create", fields=body)


# -- its test: a harness over the toy CRM, and the suite in one class ---------------------------
class ToyHarness(ConnectorHarness):
    secrets = ["toy-secret-token"]

    def __init__(self) -> None:
        self.crm = CRMS["default"] = ToyCrm()

    def make_connector(self) -> Connector:
        return ToyConnector("toy", ToyConfig(token=SecretStr(self.crm.token)))

    def add_customer(self, phone_as_stored: str, name: str) -> str:
        customer_id = str(next(self.crm.ids))
        self.crm.customers[customer_id] = {"id": customer_id, "phone": phone_as_stored}
        return customer_id

    def activities(self, key: str) -> list[dict[str, Any]]:
        return [self.crm.activities[key]] if key in self.crm.activities else []

    def tasks(self, key: str) -> list[dict[str, Any]]:
        return [self.crm.tasks[key]] if key in self.crm.tasks else []

    def inject(self, fault: Fault, *, retry_after: float = 2.0) -> None:
        if fault == "invalid_credentials":
            self.crm.token = "rotated"
        else:
            self.crm.fault = fault


class TestToyConnector(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> ConnectorHarness:
        return ToyHarness()


def test_the_docs_show_this_code() -> None:
    """the README quotes this module's plugin and harness: keep them the same."""
    from pathlib import Path

    here = Path(__file__).read_text()
    docs = (Path(__file__).parents[2] / "README.md").read_text()
    plugin = here[here.index("class ToyConfig") : here.index("# -- its test")].strip()
    harness = here[here.index("class ToyHarness") : here.index("def test_the_docs")].strip()
    assert plugin in docs
    assert harness in docs
