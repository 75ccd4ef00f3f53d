"""The environment variables that point every source at a running simulator (demo, tests).

Production sets the same variables to the real systems; nothing else differs.
"""

from __future__ import annotations

import httpx


def simulator_environment(url: str) -> dict[str, str]:
    service_account_json = httpx.get(f"{url}/_sim/google/service_account", timeout=10).text
    n8n = httpx.get(f"{url}/_sim/n8n/environment", timeout=10).json()
    return {
        "DEALER_FEED_BASE_URL": f"{url}/dealer",
        "DEALER_FEED_API_KEY": "sim-dealer-key",
        "LEGACY_ERP_BASE_URL": f"{url}/erp",
        "LEGACY_ERP_USERNAME": "sim-user",
        "LEGACY_ERP_PASSWORD": "sim-pass",
        "SELLER_SHEET_BASE_URL": f"{url}/sheets",
        "SELLER_SHEET_ID": "sim-seller-sheet",
        "GOOGLE_SERVICE_ACCOUNT_JSON": service_account_json,
        "GA4_BASE_URL": f"{url}/ga4",
        "GA4_PROPERTY_ID": "123456789",
        "N8N_BASE_URL": f"{url}/n8n",
        **n8n,  # N8N_API_KEY, N8N_WEBHOOK_SECRET_<KEY>, N8N_WORKFLOW_ID_<KEY>
    }
