"""The Dagster building blocks every defs folder shares: the asset per entity, the checks per
source, the resource bases, the job and schedule builder, the tags."""
