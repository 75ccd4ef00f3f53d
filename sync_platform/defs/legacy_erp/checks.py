"""Schema and quarantine checks of the ERP entities (one op for the source)."""

from sync_platform.defs.legacy_erp.assets import LEGACY_ERP
from sync_platform.orchestration.checks import entity_checks

legacy_erp_checks = entity_checks(LEGACY_ERP)
