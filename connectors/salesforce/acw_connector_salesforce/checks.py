"""``acw-sync connectors test`` for Salesforce: what the org must grant, each gap named."""

from __future__ import annotations

from typing import Any

from acw_connector_salesforce.client import SalesforceClient
from acw_connector_salesforce.config import SalesforceConfig
from acw_connector_salesforce.mapping import CALL_FIELDS
from acw_sync.connector import Check
from acw_sync.errors import ConnectorError

__all__ = ["NEEDED_PERMISSIONS", "org_checks"]

#: Object permissions the connector uses, as ``describe`` reports them for the API user.
NEEDED_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "Task": ("createable", "updateable", "queryable"),
    "Contact": ("queryable", "updateable"),
    "Lead": ("queryable", "createable", "updateable"),
}


def org_checks(client: SalesforceClient, config: SalesforceConfig) -> list[Check]:
    """Login, API version, object permissions, call fields, the external id, API usage."""
    checks: list[Check] = []
    version = config.api_version
    try:
        versions = client.versions()  # logs in first (login flows); the list itself is public
        if version in versions:
            client.rest("GET", "", "checking the session")  # the token is accepted
    except ConnectorError as exc:
        return [Check("login", False, f"{exc} ({exc.crm_message or 'no detail'})")]
    checks.append(Check("login", True, f"{config.auth} -> {client.instance_url}"))
    checks.append(
        Check(
            "api version",
            version in versions,
            f"v{version}"
            if version in versions
            else f"v{version} not served; org has {', '.join(versions[-3:])}",
        )
    )
    if version not in versions:
        return checks
    task_fields: dict[str, Any] = {}
    for sobject, perms in NEEDED_PERMISSIONS.items():
        try:
            described = client.describe(sobject)
        except ConnectorError as exc:
            checks.append(Check(f"{sobject} permissions", False, f"cannot describe: {exc}"))
            continue
        missing = [p for p in perms if not described.get(p)]
        checks.append(
            Check(
                f"{sobject} permissions",
                not missing,
                f"missing: {', '.join(missing)}" if missing else ", ".join(perms),
            )
        )
        if sobject == "Task":
            task_fields = {f["name"]: f for f in described.get("fields", [])}
    if task_fields:
        absent = [f for f in CALL_FIELDS if f not in task_fields]
        checks.append(
            Check(
                "Task call fields",
                True,
                f"absent, calls logged in Subject/Description: {', '.join(absent)}"
                if absent
                else "present",
            )
        )
    ext = config.external_id_field
    if ext:
        spec = task_fields.get(ext)
        if spec is None:
            checks.append(Check("external id field", False, f"Task.{ext} does not exist"))
        elif not spec.get("externalId"):
            checks.append(
                Check("external id field", False, f"Task.{ext} is not marked External ID")
            )
        else:
            unique = "" if spec.get("unique") else " (not Unique: concurrent writers may twin)"
            checks.append(Check("external id field", True, f"Task.{ext}{unique}"))
    usage = client.api_usage
    if usage is not None:
        checks.append(
            Check("api usage", usage.remaining > 0, f"{usage.used}/{usage.limit} in 24 h")
        )
    return checks
