"""Environment settings shared by Dagster, the CLI and the receiver.

One place names every environment variable the platform reads, so docs, errors and
code agree on the spelling.
"""

from __future__ import annotations

import os
from pathlib import Path

WAREHOUSE_URL_ENV = "SYNC_PLATFORM_WAREHOUSE_URL"
HOME_ENV = "SYNC_PLATFORM_HOME"
ENVIRONMENT_ENV = "SYNC_PLATFORM_ENV"
CONFIG_DIR_ENV = "SYNC_PLATFORM_CONFIG_DIR"
CRASHPOINT_ENV = "SYNC_PLATFORM_CRASHPOINT"

DEALER_FEED_BASE_URL_ENV = "DEALER_FEED_BASE_URL"
DEALER_FEED_API_KEY_ENV = "DEALER_FEED_API_KEY"

LEGACY_ERP_BASE_URL_ENV = "LEGACY_ERP_BASE_URL"
LEGACY_ERP_USERNAME_ENV = "LEGACY_ERP_USERNAME"
LEGACY_ERP_PASSWORD_ENV = "LEGACY_ERP_PASSWORD"

SELLER_SHEET_BASE_URL_ENV = "SELLER_SHEET_BASE_URL"
SELLER_SHEET_ID_ENV = "SELLER_SHEET_ID"
GOOGLE_SERVICE_ACCOUNT_JSON_ENV = "GOOGLE_SERVICE_ACCOUNT_JSON"
GA4_PROPERTY_ID_ENV = "GA4_PROPERTY_ID"
GA4_BASE_URL_ENV = "GA4_BASE_URL"
GOOGLE_TOKEN_URI_ENV = "GOOGLE_TOKEN_URI"

# n8n webhooks: one secret per workflow (N8N_WEBHOOK_SECRET_<KEY>) unless webhooks.yaml names
# another variable; the n8n public API (gap resync) and each workflow's id in n8n.
N8N_WEBHOOK_SECRET_PREFIX = "N8N_WEBHOOK_SECRET_"
N8N_WORKFLOW_ID_PREFIX = "N8N_WORKFLOW_ID_"
N8N_BASE_URL_ENV = "N8N_BASE_URL"
N8N_API_KEY_ENV = "N8N_API_KEY"

# The webhook receiver's limits (defaults in sync_platform/receiver/settings.py).
RECEIVER_MAX_BODY_BYTES_ENV = "SYNC_PLATFORM_RECEIVER_MAX_BODY_BYTES"
RECEIVER_BODY_TIMEOUT_ENV = "SYNC_PLATFORM_RECEIVER_BODY_TIMEOUT_SECONDS"
RECEIVER_MAX_HEADER_BYTES_ENV = "SYNC_PLATFORM_RECEIVER_MAX_HEADER_BYTES"
RECEIVER_TIMESTAMP_TOLERANCE_ENV = "SYNC_PLATFORM_RECEIVER_TIMESTAMP_TOLERANCE_SECONDS"


# Backups: where they are written, the age identity that encrypts them (AGE-SECRET-KEY-1…),
# the explicit opt-out of encryption (dev only), and other PostgreSQL client binaries.
BACKUP_DIR_ENV = "SYNC_PLATFORM_BACKUP_DIR"
BACKUP_KEY_ENV = "SYNC_PLATFORM_BACKUP_KEY"
BACKUP_ALLOW_UNENCRYPTED_ENV = "SYNC_PLATFORM_BACKUP_ALLOW_UNENCRYPTED"
PG_BIN_DIR_ENV = "SYNC_PLATFORM_PG_BIN_DIR"


def platform_home() -> Path:
    """Directory for the embedded default's files (warehouse file, local state)."""
    return Path(os.environ.get(HOME_ENV, ".sync_platform")).resolve()


def default_warehouse_url() -> str:
    return f"sqlite:///{platform_home() / 'warehouse.db'}"


def warehouse_url() -> str:
    """The warehouse URL: the environment's, else the embedded SQLite file."""
    return os.environ.get(WAREHOUSE_URL_ENV) or default_warehouse_url()


def environment() -> str:
    """Which config overlay applies (dev, test, prod); dev when unset."""
    return os.environ.get(ENVIRONMENT_ENV, "dev")


def backup_dir() -> Path:
    """Where backups and their manifests are written (a local path or a mounted volume)."""
    configured = os.environ.get(BACKUP_DIR_ENV)
    return Path(configured).resolve() if configured else platform_home() / "backups"
