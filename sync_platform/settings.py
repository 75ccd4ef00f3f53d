"""Environment settings of the platform itself: where the warehouse and local files are,
which config overlay applies, the receiver's limits and the backups' location and key.

A source's own variables live with its client (`sources/<source>/`), next to the errors
that name them, and are read by its resource (`defs/<source>/resources.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

WAREHOUSE_URL_ENV = "SYNC_PLATFORM_WAREHOUSE_URL"
HOME_ENV = "SYNC_PLATFORM_HOME"
ENVIRONMENT_ENV = "SYNC_PLATFORM_ENV"
# The environment when SYNC_PLATFORM_ENV is unset: the shipped config files as they are (an
# `environments/dev/` folder, if someone makes one, is still merged over them).
DEFAULT_ENVIRONMENT = "dev"
CONFIG_DIR_ENV = "SYNC_PLATFORM_CONFIG_DIR"
CRASHPOINT_ENV = "SYNC_PLATFORM_CRASHPOINT"
# Who an operator's CLI action is recorded as (reconcile resolve --by overrides it).
OPERATOR_ENV = "SYNC_PLATFORM_USER"
# Soak only, never production: schedules and sensors run this many times more often.
CADENCE_SPEEDUP_ENV = "SYNC_PLATFORM_CADENCE_SPEEDUP"

# The webhook receiver's limits (defaults in sync_platform/receiver/settings.py).
RECEIVER_MAX_BODY_BYTES_ENV = "SYNC_PLATFORM_RECEIVER_MAX_BODY_BYTES"
RECEIVER_BODY_TIMEOUT_ENV = "SYNC_PLATFORM_RECEIVER_BODY_TIMEOUT_SECONDS"
RECEIVER_MAX_HEADER_BYTES_ENV = "SYNC_PLATFORM_RECEIVER_MAX_HEADER_BYTES"
RECEIVER_HEADER_TIMEOUT_ENV = "SYNC_PLATFORM_RECEIVER_HEADER_TIMEOUT_SECONDS"
RECEIVER_TIMESTAMP_TOLERANCE_ENV = "SYNC_PLATFORM_RECEIVER_TIMESTAMP_TOLERANCE_SECONDS"


# Backups: where they are written, the age identity that encrypts them (AGE-SECRET-KEY-1…),
# the explicit opt-out of encryption (dev only), and other PostgreSQL client binaries.
BACKUP_DIR_ENV = "SYNC_PLATFORM_BACKUP_DIR"
BACKUP_KEY_ENV = "SYNC_PLATFORM_BACKUP_KEY"
BACKUP_ALLOW_UNENCRYPTED_ENV = "SYNC_PLATFORM_BACKUP_ALLOW_UNENCRYPTED"
PG_BIN_DIR_ENV = "SYNC_PLATFORM_PG_BIN_DIR"

# Where a run's steps execute (orchestration/executor.py, docs/distributed.md): unset or
# "multiprocess", a process per step on the run worker's host; "dask", on the Dask cluster
# whose scheduler SYNC_PLATFORM_DASK_SCHEDULER names (tcp://host:8786).
EXECUTOR_ENV = "SYNC_PLATFORM_EXECUTOR"
DASK_SCHEDULER_ENV = "SYNC_PLATFORM_DASK_SCHEDULER"
EXECUTORS = ("multiprocess", "dask")


def platform_home() -> Path:
    """Directory for the embedded default's files (warehouse file, local state)."""
    return Path(os.environ.get(HOME_ENV, ".sync_platform")).resolve()


def default_warehouse_url() -> str:
    return f"sqlite:///{platform_home() / 'warehouse.db'}"


def warehouse_url() -> str:
    """The warehouse URL: the environment's, else the embedded SQLite file."""
    return os.environ.get(WAREHOUSE_URL_ENV) or default_warehouse_url()


def environment() -> str:
    """Which config overlay applies (dev, test, prod …); dev when unset or empty."""
    return os.environ.get(ENVIRONMENT_ENV) or DEFAULT_ENVIRONMENT


def cadence_speedup() -> float:
    """How many times faster than written the schedules and sensors run (1 unless the soak
    compresses the hours of a day into minutes)."""
    raw = os.environ.get(CADENCE_SPEEDUP_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        speedup = float(raw)
    except ValueError:
        speedup = 0.0
    if not speedup >= 1:
        raise ValueError(
            f"{CADENCE_SPEEDUP_ENV}={raw!r} is not a number of at least 1: unset it (production) "
            "or set e.g. 24 to run an hourly schedule every 2.5 minutes (soak)"
        )
    return speedup


def executor() -> str:
    """Which executor runs the steps: "multiprocess" (the default) or "dask"."""
    chosen = os.environ.get(EXECUTOR_ENV, "").strip().lower() or "multiprocess"
    if chosen not in EXECUTORS:
        raise ValueError(
            f"{EXECUTOR_ENV}={chosen!r} is not an executor this code location has: unset it "
            f"(a process per step) or set one of {', '.join(EXECUTORS)} (docs/distributed.md)"
        )
    return chosen


def backup_dir() -> Path:
    """Where backups and their manifests are written (a local path or a mounted volume)."""
    configured = os.environ.get(BACKUP_DIR_ENV)
    return Path(configured).resolve() if configured else platform_home() / "backups"
