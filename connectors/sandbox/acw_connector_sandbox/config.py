"""Sandbox connector settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from acw_sync.connector import ConnectorConfig

__all__ = ["SandboxConfig"]


class SandboxConfig(ConnectorConfig):
    path: str = ".acw-sync/sandbox.db"
    """The SQLite file holding the sandbox CRM."""
    api_token: SecretStr | None = None
    """Optional: when set, the token must match the CRM's (``sandbox tokens``) to write."""
    base_url: str = "sandbox://crm"
    """Prefix of the links shown for sandbox objects."""
    timeout: float = Field(default=5.0, gt=0)
