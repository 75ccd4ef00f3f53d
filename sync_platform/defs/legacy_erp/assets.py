"""One asset per ERP entity, built from config/sources/legacy_erp.yaml (variants depend on
products, so the graph and every run load parents first)."""

from sync_platform.config import cached_source_config
from sync_platform.defs.legacy_erp.resources import LegacyErpResource
from sync_platform.orchestration.source_systems import source_system_specs
from sync_platform.orchestration.sync_asset import build_sync_asset

LEGACY_ERP = cached_source_config("legacy_erp")
legacy_erp_system = source_system_specs(LEGACY_ERP)

legacy_erp_assets = [
    build_sync_asset(LEGACY_ERP, entity, LegacyErpResource)
    for entity in LEGACY_ERP.entities.values()
]
