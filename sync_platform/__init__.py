"""sync_platform: a Dagster code location for trustworthy data syncs."""
