"""ERP deltas every hour, a full sync every Sunday night."""

from sync_platform.defs.legacy_erp.jobs import legacy_erp_full_sync, legacy_erp_sync
from sync_platform.defs.legacy_erp.resources import LegacyErpResource
from sync_platform.orchestration.automation import utc_schedule

REQUIRES = LegacyErpResource.required_env

legacy_erp_hourly = utc_schedule(
    "legacy_erp_delta_hourly",
    legacy_erp_sync,
    "10 * * * *",
    requires=REQUIRES,
    description="Hourly at :10: what changed in the ERP since the last cursor.",
)
legacy_erp_weekly_full = utc_schedule(
    "legacy_erp_full_weekly",
    legacy_erp_full_sync,
    "30 3 * * 0",
    requires=REQUIRES,
    description="Sundays 03:30 UTC: everything, read as a snapshot, so a change the delta "
    "feed never sent (or a deletion) is found.",
)
