from sync_platform.config.loader import (
    all_source_configs,
    cached_source_config,
    load_source_config,
    source_names,
)
from sync_platform.config.models import EntityConfig, FieldSpec, SourceConfig

__all__ = [
    "EntityConfig",
    "FieldSpec",
    "SourceConfig",
    "all_source_configs",
    "cached_source_config",
    "load_source_config",
    "source_names",
]
