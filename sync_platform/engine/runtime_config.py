"""Runtime thresholds in the `sync_config` table, read at every use.

Changing one (`sync-platform config set KEY VALUE`) applies at the next sync or sensor
tick without reloading the code location. Every setting is validated on write, so a bad
value is refused with a message instead of breaking the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sync_platform.errors import ConfigurationError
from sync_platform.warehouse.platform_tables import sync_config


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError("must be a share between 0 (exclusive) and 1, e.g. 0.2 for 20%")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number ≥ 0")
    return value


def _share_or_zero(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError("must be a share between 0 and 1 (0: any quarantined record alerts)")
    return value


def _factor(text: str) -> float:
    value = float(text)
    if value <= 1:
        raise ValueError("must be greater than 1, e.g. 1.5")
    return value


def _positive_minutes(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be a number of minutes > 0, e.g. 15")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a whole number ≥ 1")
    return value


@dataclass(frozen=True)
class Setting:
    default: Any
    parse: Callable[[str], Any]
    description: str


SETTINGS: dict[str, Setting] = {
    "mass_delete_max_share": Setting(
        0.2, _share, "largest share of an entity's active rows one snapshot may soft-delete"
    ),
    "quarantine_warn_share": Setting(
        0.05, _share, "quarantined share of a sync's records above which its check warns"
    ),
    "lease_stale_minutes": Setting(
        30, _positive_int, "minutes without a heartbeat after which a sync's lease is taken over"
    ),
    "gap_resync_max_attempts": Setting(
        3, _positive_int, "targeted resync attempts for a gap before it is declared unrecoverable"
    ),
    "gap_resync_backoff_minutes": Setting(
        5, _non_negative_int, "wait before the first resync of a gap; doubles each attempt"
    ),
    "n8n_gap_lookback_hours": Setting(
        72,
        _positive_int,
        "hours of n8n executions the delivery-gap check compares with the inbox (keep it well "
        "under n8n's execution retention, 336 h by default)",
    ),
    "ga4_lookback_days": Setting(
        3, _non_negative_int, "days before yesterday the nightly GA4 run pulls again"
    ),
    "alert_consecutive_failures": Setting(
        3, _positive_int, "failed syncs (or runs of a job) in a row that raise a high alert"
    ),
    "alert_open_gaps": Setting(
        10, _positive_int, "open gaps of one entity that raise a high alert"
    ),
    "alert_renotify_minutes": Setting(
        240, _positive_int, "minutes before an unacknowledged open alert is sent again (≥ 1)"
    ),
    "alert_slow_factor": Setting(
        1.5, _factor, "a sync slower than this many times its trailing median raises a warning"
    ),
    "alert_quarantine_share": Setting(
        0.0,
        _share_or_zero,
        "quarantined share of a sync above which a data-integrity alert is raised",
    ),
    "backup_keep_daily": Setting(
        7, _non_negative_int, "full backups kept: the newest of each of the last N days with one"
    ),
    "backup_keep_weekly": Setting(
        4, _non_negative_int, "full backups kept: the newest of each of the last N ISO weeks"
    ),
    "backup_keep_monthly": Setting(
        6, _non_negative_int, "full backups kept: the newest of each of the last N months"
    ),
    "backup_inbox_keep_hours": Setting(
        72, _positive_int, "hours the hourly webhook-inbox backups are kept"
    ),
    "backup_max_age_hours": Setting(
        26, _positive_int, "no verified full backup for this many hours raises backup_missing"
    ),
    "backup_inbox_max_age_minutes": Setting(
        150, _positive_int, "no webhook-inbox backup for this many minutes raises backup_missing"
    ),
    "restore_rto_minutes": Setting(
        15.0, _positive_minutes, "recovery time objective: a slower restore drill alerts"
    ),
    "record_log_limit": Setting(
        10_000, _non_negative_int, "changed records written to sync_record_log per sync run"
    ),
}


def _known(key: str) -> Setting:
    if key not in SETTINGS:
        raise ConfigurationError(
            f"unknown setting {key!r}", hint=f"known settings: {', '.join(sorted(SETTINGS))}"
        )
    return SETTINGS[key]


def get_setting(connection: sa.Connection, key: str) -> Any:
    setting = _known(key)
    stored = connection.execute(
        sa.select(sync_config.c.value).where(sync_config.c.key == key)
    ).scalar()
    return setting.default if stored is None else setting.parse(stored)


def set_setting(connection: sa.Connection, key: str, value: str, updated_by: str = "cli") -> Any:
    setting = _known(key)
    try:
        parsed = setting.parse(value)
    except ValueError as exc:
        raise ConfigurationError(f"{key}={value!r} is not valid: {exc}") from None
    row = {"value": str(parsed), "updated_at": datetime.now(UTC), "updated_by": updated_by}
    updated = connection.execute(sa.update(sync_config).where(sync_config.c.key == key).values(row))
    if updated.rowcount == 0:
        connection.execute(sa.insert(sync_config).values(key=key, **row))
    return parsed


def all_settings(connection: sa.Connection) -> dict[str, Any]:
    return {key: get_setting(connection, key) for key in SETTINGS}
