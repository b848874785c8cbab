"""HubSpot CRM connector: Invoiced customers as companies and contacts, invoices as deals.

    [connectors.hubspot]
    enabled = true
    mapping = "mappings/hubspot.toml"
    token = ""                         # or SYNCD_CONNECTORS__HUBSPOT__TOKEN / HUBSPOT_TOKEN
    base_url = "https://api.hubapi.com"
    create_properties = false          # create the unique id properties at start
    archive_deleted_companies = false  # a deleted customer archives its company and contact
    batch_size = 100                   # inputs per batch request (HubSpot's maximum)

The private app needs read and write on companies, contacts and deals, and schema read
(schema write with `create_properties`). Deal currencies are checked against the
account's (`/account-info/v3/details`); requests are paced by `X-HubSpot-RateLimit-*`.
"""

from connectors.hubspot.client import HubSpotClient, HubSpotError, RetryPolicy
from connectors.hubspot.connector import HubSpotConnector, HubSpotSettings

__all__ = ["HubSpotClient", "HubSpotConnector", "HubSpotError", "HubSpotSettings", "RetryPolicy"]
