"""Schema and quarantine checks of the GA4 reports (one op for the source)."""

from sync_platform.defs.ga4.assets import GA4
from sync_platform.orchestration.checks import entity_checks

ga4_checks = entity_checks(GA4)
