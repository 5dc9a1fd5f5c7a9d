"""The connector contract: what a CRM plugin implements, and how plugins are found.

A connector is one class in its own folder under ``connectors/`` (``config`` / ``client`` /
``mapping`` / ``connector`` modules), registered in the ``acw_sync.connectors`` entry-point
group. It knows its CRM's wire format and nothing of Celery, Redis or telephony providers.

Required: :meth:`Connector.find_customers`, :meth:`Connector.upsert_call`,
:meth:`Connector.create_task`, :meth:`Connector.check`, and the pure mapping pair
:meth:`Connector.preview_call` / :meth:`Connector.preview_task` (used by ``map --dry-run``).
Optional, declared in :class:`Capabilities`: creating customers, updating customer fields,
owner look-up by agent email, batch writes (:meth:`Connector.upsert_calls`, which by default
writes one call at a time).

Idempotency: every write carries a deterministic ``key`` (``CallRecord.key`` for the activity,
``FollowUp.key`` for a task). The core passes the object id it recorded in its ledger as
``existing`` when it has one; when it has none the connector must reconcile on the CRM side
(upsert on an external id, or search by the stored key) before creating, so that a worker killed
between the CRM write and the ledger write never causes a duplicate.

Errors: raise the intents in :mod:`acw_sync.errors` (``RetryableError``, ``RateLimited``,
``QuotaExhausted``, ``AuthExpired``, ``CredentialsInvalid``, ``PermanentError``); never a raw
library exception.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from acw_sync.errors import ConfigError, ConnectorError
from acw_sync.model import Agent, CallRecord, CrmObjectRef, CustomerRef, FollowUp

__all__ = [
    "CallWrite",
    "Capabilities",
    "Check",
    "Connector",
    "ConnectorConfig",
    "TaskWrite",
    "WritePreview",
    "available_connectors",
    "load_connector_class",
]

ENTRY_POINT_GROUP = "acw_sync.connectors"


class ConnectorConfig(BaseModel):
    """Base of each connector's typed config. Mark secrets as ``pydantic.SecretStr``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do beyond the required contract."""

    create_customer: bool = False
    update_customer: bool = False
    owner_lookup: bool = False
    external_ids: bool = False
    """The CRM can upsert or search by our idempotency key (reconciliation after a crash)."""
    batch_size: int = 1
    """Most records one batch write may carry; 1 means no batching."""


@dataclass(frozen=True)
class Check:
    """One line of ``acw-sync connectors test``: what was checked and whether it passed."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class WritePreview:
    """A CRM write as the connector would send it (``map --dry-run``)."""

    object_type: str
    operation: str
    fields: Mapping[str, Any]
    associations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CallWrite:
    """One call activity write of a batch: the arguments of :meth:`Connector.upsert_call`."""

    call: CallRecord
    key: str
    customer: CustomerRef | None = None
    owner_id: str | None = None
    existing: CrmObjectRef | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    fresh: bool = False
    """No earlier attempt can have written this key (the core recorded none): the connector may
    create without first searching the CRM for it (saves the reconciliation request)."""


@dataclass(frozen=True)
class TaskWrite:
    """One follow-up task write of a batch: the arguments of :meth:`Connector.create_task`."""

    task: FollowUp
    customer: CustomerRef | None = None
    owner_id: str | None = None
    existing: CrmObjectRef | None = None
    activity: CrmObjectRef | None = None
    fresh: bool = False
    """No earlier attempt can have written this task's key (the core recorded none): the
    connector may create it without first searching the CRM for the key."""


class Connector(abc.ABC):
    """Base class of every CRM connector.

    Subclasses set :attr:`type_name`, :attr:`config_model` and :attr:`capabilities`, and take
    ``(instance, config)`` in their constructor. One object serves one connector instance
    (for example one Salesforce org) and may be reused across many calls in one worker.
    """

    type_name: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]
    capabilities: ClassVar[Capabilities] = Capabilities()
    rate_limits: ClassVar[dict[str, tuple[int, float]]] = {}
    """The CRM's documented limits as ``{bucket: (requests, seconds)}``: ``"*"`` for the whole
    account, an operation name (``"find_customers"``) for an endpoint with its own limit. The
    core enforces them across all workers; admins override them per instance."""

    def __init__(self, instance: str, config: ConnectorConfig) -> None:
        self.instance = instance
        self.config = config

    # -- required ------------------------------------------------------------------------
    @abc.abstractmethod
    def find_customers(self, phone: str) -> list[CustomerRef]:
        """Every customer whose stored number is ``phone`` (E.164), best candidates first."""

    @abc.abstractmethod
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
        """Create the call activity, or update it when it exists (``existing`` or found by key).

        ``fields`` are the admin's mapped CRM fields; they override the connector's defaults.
        """

    @abc.abstractmethod
    def create_task(
        self,
        task: FollowUp,
        *,
        customer: CustomerRef | None,
        activity: CrmObjectRef | None,
        owner_id: str | None,
        existing: CrmObjectRef | None,
    ) -> CrmObjectRef:
        """Create the follow-up task once: when ``existing`` or a task with ``task.key`` exists,
        return it unchanged."""

    @abc.abstractmethod
    def check(self) -> list[Check]:
        """Check credentials and the permissions the connector needs; name what is missing."""

    @abc.abstractmethod
    def preview_call(
        self,
        call: CallRecord,
        *,
        customer: CustomerRef | None,
        owner_id: str | None,
        fields: Mapping[str, Any],
    ) -> WritePreview:
        """The activity write :meth:`upsert_call` would send, without touching the CRM."""

    @abc.abstractmethod
    def preview_task(
        self, task: FollowUp, *, customer: CustomerRef | None, owner_id: str | None
    ) -> WritePreview:
        """The task write :meth:`create_task` would send, without touching the CRM."""

    # -- optional, declared in capabilities ------------------------------------------------
    def create_customer(self, call: CallRecord, *, key: str) -> CustomerRef:
        """Create a customer for an unknown number (when the matching policy says so)."""
        raise NotImplementedError(f"{self.type_name} cannot create customers")

    def update_customer(self, customer: CustomerRef, fields: Mapping[str, Any]) -> None:
        """Write configured fields on the customer (for example a lead status)."""
        raise NotImplementedError(f"{self.type_name} cannot update customers")

    def find_owner(self, agent: Agent) -> str | None:
        """The CRM owner/user id of ``agent`` (usually by email), or None."""
        return None

    def find_customers_many(
        self, phones: Sequence[str], *, all_matches: bool = True
    ) -> dict[str, list[CustomerRef]]:
        """:meth:`find_customers` for many numbers: every number of ``phones`` is a key.

        Connectors whose CRM can search several numbers in one request (an ``IN`` filter)
        override this; the default searches one number at a time. With ``all_matches`` False
        the caller uses only the best candidate, so a connector may stop searching further
        object types for a number that already has one.
        """
        return {phone: self.find_customers(phone) for phone in dict.fromkeys(phones)}

    def create_tasks(self, items: Sequence[TaskWrite]) -> list[CrmObjectRef | ConnectorError]:
        """Create many follow-up tasks once each; one result per item, in order.

        Same contract as :meth:`upsert_calls` (per-record errors in place, whole-request
        failures may raise). This default creates them one at a time.
        """
        results: list[CrmObjectRef | ConnectorError] = []
        for item in items:
            try:
                results.append(
                    self.create_task(
                        item.task,
                        customer=item.customer,
                        activity=item.activity,
                        owner_id=item.owner_id,
                        existing=item.existing,
                    )
                )
            except ConnectorError as exc:
                results.append(exc)
        return results

    def upsert_calls(self, items: Sequence[CallWrite]) -> list[CrmObjectRef | ConnectorError]:
        """Write many call activities; one result per item, in order.

        Callers pass at most ``capabilities.batch_size`` items. A record the CRM rejects is
        returned as its error in place, so one bad record does not fail the others; a failure
        of the whole request (rate limit, outage, credentials) may be raised instead. This
        default writes the items one at a time.
        """
        results: list[CrmObjectRef | ConnectorError] = []
        for item in items:
            try:
                results.append(
                    self.upsert_call(
                        item.call,
                        key=item.key,
                        customer=item.customer,
                        owner_id=item.owner_id,
                        existing=item.existing,
                        fields=item.fields,
                    )
                )
            except ConnectorError as exc:
                results.append(exc)
        return results

    def close(self) -> None:
        """Release connections. Called when a worker shuts down."""


def available_connectors() -> dict[str, type[Connector]]:
    """Every installed connector plugin, by type name."""
    found: dict[str, type[Connector]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load()
    return found


def load_connector_class(type_name: str) -> type[Connector]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == type_name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Connector)):
                raise ConfigError(f"entry point {ep.value!r} is not a Connector subclass")
            return cls
    names = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    raise ConfigError(
        f"connector type {type_name!r} is not installed; installed types: {', '.join(names)}"
    )
