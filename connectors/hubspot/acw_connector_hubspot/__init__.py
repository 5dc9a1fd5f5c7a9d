"""The HubSpot connector: calls as Calls engagements, follow-ups as Tasks, through
hubspot-api-client, within HubSpot's rate limits and never twice.

Layout: ``config`` (the ``options`` model), ``client`` (the wire), with ``auth`` (tokens),
``limits`` (the request budget) and ``errors`` (HubSpot's answers as intents); ``mapping``
(canonical -> HubSpot properties, pure); ``connector`` (the contract), with ``batch`` (batch
writes) and ``memory`` (what this process wrote, ahead of the search index).
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
