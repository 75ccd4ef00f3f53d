"""The environment variables that point every source at a running simulator (demo, tests).

Production sets the same variables to the real systems; nothing else differs. The names are
the ones the platform reads (its settings and source configs); they are repeated here, not
imported, so that the simulator stays independent of the platform: this module is the list of
what a platform needs to be pointed at the simulator.
"""

from __future__ import annotations

import httpx

DEALER_FEED_BASE_URL_ENV = "DEALER_FEED_BASE_URL"
DEALER_FEED_API_KEY_ENV = "DEALER_FEED_API_KEY"
LEGACY_ERP_BASE_URL_ENV = "LEGACY_ERP_BASE_URL"
LEGACY_ERP_USERNAME_ENV = "LEGACY_ERP_USERNAME"
LEGACY_ERP_PASSWORD_ENV = "LEGACY_ERP_PASSWORD"
SELLER_SHEET_BASE_URL_ENV = "SELLER_SHEET_BASE_URL"
SELLER_SHEET_ID_ENV = "SELLER_SHEET_ID"
GOOGLE_SERVICE_ACCOUNT_JSON_ENV = "GOOGLE_SERVICE_ACCOUNT_JSON"
GA4_BASE_URL_ENV = "GA4_BASE_URL"
GA4_PROPERTY_ID_ENV = "GA4_PROPERTY_ID"
N8N_BASE_URL_ENV = "N8N_BASE_URL"
N8N_API_KEY_ENV = "N8N_API_KEY"
# One per workflow: N8N_WEBHOOK_SECRET_<KEY> and N8N_WORKFLOW_ID_<KEY> (key in upper case).
N8N_WEBHOOK_SECRET_PREFIX = "N8N_WEBHOOK_SECRET_"
N8N_WORKFLOW_ID_PREFIX = "N8N_WORKFLOW_ID_"


def simulator_environment(url: str) -> dict[str, str]:
    service_account_json = httpx.get(f"{url}/_sim/google/service_account", timeout=10).text
    n8n = httpx.get(f"{url}/_sim/n8n/environment", timeout=10).json()
    return {
        DEALER_FEED_BASE_URL_ENV: f"{url}/dealer",
        DEALER_FEED_API_KEY_ENV: "sim-dealer-key",
        LEGACY_ERP_BASE_URL_ENV: f"{url}/erp",
        LEGACY_ERP_USERNAME_ENV: "sim-user",
        LEGACY_ERP_PASSWORD_ENV: "sim-pass",
        SELLER_SHEET_BASE_URL_ENV: f"{url}/sheets",
        SELLER_SHEET_ID_ENV: "sim-seller-sheet",
        GOOGLE_SERVICE_ACCOUNT_JSON_ENV: service_account_json,
        GA4_BASE_URL_ENV: f"{url}/ga4",
        GA4_PROPERTY_ID_ENV: "123456789",
        N8N_BASE_URL_ENV: f"{url}/n8n",
        **n8n,  # N8N_API_KEY, N8N_WEBHOOK_SECRET_<KEY>, N8N_WORKFLOW_ID_<KEY>
    }
