"""The source systems as external assets: one per endpoint a source's entities read, upstream
of their tables, so the Dagster UI's lineage starts where the data does (system → table →
mart). Dagster never materializes them; the sync assets that read one depend on it."""

import re

import dagster as dg

from sync_platform.config.models import EntityConfig, SourceConfig


def endpoint_name(endpoint: str) -> str:
    """What the UI's graph calls an endpoint (it shows a key's last part alone, cut in the
    middle past ~17 characters): its last path segment, or a sheet range's tab name —
    `/api/v1/stock` → `stock`, `Sellers!A1:H` → `Sellers`, `runReport` → `runReport`."""
    last = endpoint.split("!", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"\W", "_", last) or "endpoint"


def source_system_key(source: SourceConfig, entity: EntityConfig) -> dg.AssetKey | None:
    """The external asset an entity's sync reads; None for a source without a `system:`."""
    if source.system is None:
        return None
    return dg.AssetKey([source.source, endpoint_name(entity.endpoint)])


def _docs_link(docs: str) -> dg.MetadataValue:
    if docs.startswith("https://"):
        return dg.MetadataValue.url(docs)
    return dg.MetadataValue.path(docs)


def source_system_specs(source: SourceConfig) -> list[dg.AssetSpec]:
    """One external asset per endpoint of `source` (none when the YAML names no `system:`);
    entities reading the same endpoint (GA4's reports, the sheet's two views) share it."""
    system = source.system
    if system is None:
        return []
    readers: dict[dg.AssetKey, list[EntityConfig]] = {}
    for entity in source.entities.values():
        readers.setdefault(source_system_key(source, entity), []).append(entity)
    specs = []
    for key, entities in readers.items():
        endpoints = sorted({entity.endpoint for entity in entities})
        names = ", ".join(entity.name for entity in entities)
        metadata: dict[str, object] = {"endpoint": ", ".join(endpoints), "system": system.name}
        if system.docs:
            metadata["docs"] = _docs_link(system.docs)
        specs.append(
            dg.AssetSpec(
                key=key,
                group_name=source.source,
                description=f"{system.name}: {', '.join(endpoints)}, read by {names}. "
                "Dagster does not materialize it.",
                kinds=set(system.kinds) or None,
                owners=source.owners or None,
                metadata=metadata,
            )
        )
    return specs
