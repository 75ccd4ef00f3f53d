"""The source systems as external assets: one per entity endpoint, upstream of the entity's
table, so the Dagster UI's lineage starts where the data does (system → table → mart).
Dagster never materializes them; the sync asset that reads one depends on it."""

import dagster as dg

from sync_platform.config.models import EntityConfig, SourceConfig

PREFIX = "source_systems"


def source_system_key(source: SourceConfig, entity: EntityConfig) -> dg.AssetKey | None:
    """The external asset an entity's sync reads; None for a source without a `system:`."""
    if source.system is None:
        return None
    return dg.AssetKey([PREFIX, source.source, entity.name])


def _docs_link(docs: str) -> dg.MetadataValue:
    return (
        dg.MetadataValue.url(docs) if docs.startswith("https://") else dg.MetadataValue.path(docs)
    )


def source_system_specs(source: SourceConfig) -> list[dg.AssetSpec]:
    """One external asset per entity of `source` (none when the YAML names no `system:`)."""
    system = source.system
    if system is None:
        return []
    specs = []
    for entity in source.entities.values():
        metadata: dict[str, object] = {"endpoint": entity.endpoint, "system": system.name}
        if system.docs:
            metadata["docs"] = _docs_link(system.docs)
        specs.append(
            dg.AssetSpec(
                key=source_system_key(source, entity),
                group_name=source.source,
                description=f"{entity.name} as {system.name} serves it ({entity.endpoint}). "
                f"Read by the {entity.name} sync; Dagster does not materialize it.",
                kinds=set(system.kinds) or None,
                owners=source.owners or None,
                metadata=metadata,
            )
        )
    return specs
