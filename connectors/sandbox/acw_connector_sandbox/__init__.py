"""The sandbox CRM: a local SQLite CRM implementing the whole connector contract.

It is the default connector when no configuration is given, so a new user sees the whole flow
without a CRM account; it is also the reference implementation of the contract.
"""

from acw_connector_sandbox.config import SandboxConfig
from acw_connector_sandbox.connector import SandboxConnector
from acw_connector_sandbox.store import SandboxStore

__all__ = ["SandboxConfig", "SandboxConnector", "SandboxStore"]
