"""The simulator names the platform's environment variables itself (it imports nothing of the
platform): the names it sets must be exactly the ones the platform reads."""

from __future__ import annotations

from sync_platform.config.webhooks import SECRET_ENV_PREFIX, load_webhooks_config
from sync_platform.sources import google_auth
from sync_platform.sources.dealer_feed import client as dealer_feed
from sync_platform.sources.ga4 import client as ga4
from sync_platform.sources.legacy_erp import client as legacy_erp
from sync_platform.sources.n8n import api as n8n
from sync_platform.sources.seller_sheet import client as seller_sheet
from sync_platform_simulator.environment import simulator_environment


def test_the_simulator_sets_every_variable_the_platform_reads_and_no_other(simulator):
    workflows = [key.upper() for key in load_webhooks_config().workflows]
    expected = {
        dealer_feed.BASE_URL_ENV,
        dealer_feed.API_KEY_ENV,
        legacy_erp.BASE_URL_ENV,
        legacy_erp.USERNAME_ENV,
        legacy_erp.PASSWORD_ENV,
        seller_sheet.BASE_URL_ENV,
        seller_sheet.SHEET_ID_ENV,
        google_auth.SERVICE_ACCOUNT_JSON_ENV,
        ga4.BASE_URL_ENV,
        ga4.PROPERTY_ID_ENV,
        n8n.BASE_URL_ENV,
        n8n.API_KEY_ENV,
        *(SECRET_ENV_PREFIX + key for key in workflows),
        *(n8n.WORKFLOW_ID_ENV_PREFIX + key for key in workflows),
    }
    assert set(simulator_environment(simulator.url)) == expected
