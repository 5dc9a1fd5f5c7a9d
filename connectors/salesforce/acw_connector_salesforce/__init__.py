"""Salesforce connector: calls as Tasks on Contacts and Leads, follow-ups as Tasks.

Speaks the REST API through ``simple-salesforce``; see ``docs/salesforce.md`` for the options.
"""

from acw_connector_salesforce.client import ApiUsage, SalesforceClient
from acw_connector_salesforce.config import SalesforceConfig
from acw_connector_salesforce.connector import SalesforceConnector

__all__ = ["ApiUsage", "SalesforceClient", "SalesforceConfig", "SalesforceConnector"]
