"""The Salesforce connector wired to the emulator: configs per auth flow and the harness."""

from __future__ import annotations

import functools
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from acw_connector_salesforce import SalesforceConfig, SalesforceConnector
from acw_sync.connector import Connector
from acw_sync.testing import ConnectorHarness
from acw_sync.testing.conformance import Fault
from tests.emulators.salesforce import SalesforceEmulator


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    """The connected app's certificate key (generated once per test run)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sf_config(
    emu: SalesforceEmulator, auth: str = "client_credentials", **kw: Any
) -> SalesforceConfig:
    """A config for ``auth`` against the emulator (its URL is also the login URL)."""
    org = emu.org
    base: dict[str, Any] = {"auth": auth, "login_url": emu.url, "ca_bundle": emu.ca_bundle}
    base["timeout"] = 5.0
    if auth == "token":
        base |= {"instance_url": emu.url, "access_token": SecretStr(emu.access_token())}
    elif auth == "client_credentials":
        base |= {"client_id": org.client_id, "client_secret": SecretStr(org.client_secret)}
    elif auth == "jwt":
        key = rsa_key()
        org.jwt_public_key = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        base |= {
            "client_id": org.client_id,
            "username": org.username,
            "private_key": SecretStr(pem),
        }
    elif auth == "password":
        base |= {
            "username": org.username,
            "password": SecretStr(org.password),
            "security_token": SecretStr(org.security_token),
        }
    return SalesforceConfig(**(base | kw))


def sf_connector(
    emu: SalesforceEmulator, auth: str = "client_credentials", **kw: Any
) -> SalesforceConnector:
    return SalesforceConnector("sf", sf_config(emu, auth, **kw))


def public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


class SalesforceHarness(ConnectorHarness):
    """The conformance suite's view of the emulated org."""

    def __init__(self, emu: SalesforceEmulator, **options: Any) -> None:
        self.emu = emu
        self.org = emu.org
        self.options = options

    @property  # type: ignore[override]
    def secrets(self) -> list[str]:
        org = self.org
        return [org.client_secret, org.password + org.security_token, *org.issued]

    def make_connector(self) -> Connector:
        return sf_connector(self.emu, **self.options)

    def add_customer(self, phone_as_stored: str, name: str) -> str:
        return self.org.insert("Contact", {"LastName": name, "Phone": phone_as_stored})

    def _by_key(self, key: str) -> list[dict[str, Any]]:
        field = self.options.get("external_id_field") or "CallObject"
        with self.org.lock:
            rows = list(self.org.records["Task"].values())
        return [public(r) for r in rows if r.get(field) == key]

    def activities(self, key: str) -> list[dict[str, Any]]:
        return [r for r in self._by_key(key) if r["TaskSubtype"] == "Call"]

    def tasks(self, key: str) -> list[dict[str, Any]]:
        return [r for r in self._by_key(key) if r["TaskSubtype"] != "Call"]

    def inject(self, fault: Fault, *, retry_after: float = 2.0) -> None:
        # Salesforce has no burst 429: its throttle is the concurrent-request limit.
        kind = {"rate_limit": "concurrency"}.get(fault, fault)
        self.org.inject(kind)
