"""The HubSpot connector: calls as Calls engagements, follow-ups as Tasks, through
hubspot-api-client, within HubSpot's rate limits and never twice.

Layout: ``config`` (the ``options`` model), ``client`` (the wire: tokens, limits, errors),
``mapping`` (canonical -> HubSpot properties, pure), ``connector`` (the contract).
"""

from acw_connector_hubspot.client import HubSpotClient
from acw_connector_hubspot.config import HubSpotConfig
from acw_connector_hubspot.connector import CallWrite, HubSpotConnector, TaskWrite
from acw_connector_hubspot.limits import RateLimiter, RateLimitStatus, WindowLimiter

__all__ = [
    "CallWrite",
    "HubSpotClient",
    "HubSpotConfig",
    "HubSpotConnector",
    "RateLimitStatus",
    "RateLimiter",
    "TaskWrite",
    "WindowLimiter",
]
