"""Turn an entity's config into a Dagster asset that runs the six-step sync.

The asset writes to the warehouse itself (merge by key, safe to re-run) and returns a
`MaterializeResult` whose metadata carries the audit figures, so the UI plots rows,
timings and errors over time, plus the result of the `in_step_with_source` check
(verification: every source key is in the warehouse).
"""

import inspect
from datetime import date, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from sync_platform.config.models import EntityConfig, SourceConfig
from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import SyncReport, SyncRequest
from sync_platform.errors import SyncError, WarehouseUnavailableError
from sync_platform.orchestration.configuration import REQUIRED_ENV_METADATA
from sync_platform.orchestration.resources import EntitySourceResource, WarehouseResource
from sync_platform.orchestration.source_systems import source_system_key
from sync_platform.orchestration.tags import (
    FULL_REFRESH_TAG,
    HEALING_METADATA,
    LAYER_TAG,
    PARTITIONING_TAG,
    RESYNC_TAG,
    SOURCE_TAG,
    trigger_of,
)
from sync_platform.sources import shared_state

VERIFICATION_CHECK = "in_step_with_source"
MAX_KEYS_IN_METADATA = 25

# For transient infrastructure failures (a dropped database connection, a killed worker).
# Source outages are not retried here: the HTTP layer already made its bounded retries,
# and the schedule's next tick is the next attempt.
SOURCE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class SyncRunConfig(dg.Config):
    """Run-time switches for a manual run (Launchpad or `dagster job execute -c`)."""

    full_refresh: bool = Field(
        default=False,
        description="read everything and soft-delete what the source no longer has (jobs "
        "tagged sync_platform/full_refresh=true always do)",
    )
    allow_mass_delete: bool = Field(
        default=False, description="confirm a soft-delete larger than mass_delete_max_share"
    )
    resync_keys: list[str] = Field(
        default=[], description="targeted resync of these record keys (set by sync_gap_sensor)"
    )
    source_settings: dict[str, Any] = Field(
        default={},
        description="the source's tunable settings changed for this run only (e.g. "
        '{"page_size": 5000, "timeout_seconds": 40}); the others keep their configured values',
    )


def report_metadata(report: SyncReport, entity: EntityConfig | None = None) -> dict[str, Any]:
    """The audit figures as materialization metadata, what plots best first (throughput,
    time, rows read and changed). A counter that is zero by the entity's nature is left out
    (held rows of an entity without references, conflicts without a conflict_timestamp,
    skipped rows without skip_when_empty); error counts appear when there are errors."""
    verification = report.verification
    metadata: dict[str, Any] = {
        "rows_per_second": round(report.rows_per_second, 1),
        "seconds_total": round(report.total_seconds, 3),
        "fetched": report.fetched,
        "inserted": report.merge.inserted,
        "updated": report.merge.updated,
        "soft_deleted": report.merge.soft_deleted,
        "unchanged": report.merge.unchanged,
        "quarantined": report.quarantined,
    }
    metadata |= {f"seconds_{phase}": round(s, 3) for phase, s in report.phase_seconds.items()}
    if entity is None or entity.references:
        metadata |= {"held": report.held, "released": report.released}
    if entity is None or entity.skip_when_empty:
        metadata["skipped"] = report.skipped
    if entity is None or entity.conflict_timestamp:
        metadata["conflicts"] = len(report.merge.conflicts)
    metadata |= {f"errors_{category}": n for category, n in report.error_counts.items() if n}
    metadata |= {"sync_run_id": report.sync_run_id, "status": report.status}
    if verification:
        metadata |= {
            "gap_count": verification.gap_count,
            "source_count": verification.source_count,
            "warehouse_count": verification.warehouse_count,
            "dagster/row_count": verification.warehouse_count,
        }
    # One plot for the required columns' null rates (the worst of them), not one per column:
    # the UI plots every number, alphabetically, and these are zero but for a broken feed,
    # whose columns the trouble preview names.
    null_rates = {n: v for n, v in report.quality.items() if n.startswith(NULL_RATE)}
    if null_rates:
        metadata["quality_worst_null_rate"] = max(null_rates.values())
    metadata |= {f"quality_{n}": v for n, v in report.quality.items() if n not in null_rates}
    if report.fields_missing:
        metadata["source_fields_missing"] = ", ".join(report.fields_missing.values())
    if report.fields_unmapped:
        metadata["source_fields_unmapped"] = ", ".join(report.fields_unmapped)
    if report.held_for_review:
        metadata["held_for_review"] = report.held_for_review  # `sync-platform conflicts list`
    if report.cursor_after:
        metadata["cursor"] = report.cursor_after
    if report.message:
        metadata["notes"] = report.message
    if preview := _trouble_preview(report):
        metadata["trouble"] = dg.MetadataValue.md(preview)
    return metadata


PREVIEW_ROWS = 5
NULL_RATE = "null_rate_"


def _trouble_preview(report: SyncReport) -> str | None:
    """The top quarantine reasons and the first gap keys as markdown, for the asset's page;
    the whole lists are in the `sync_quarantine` and `sync_gaps` tables."""
    parts = []
    if report.quarantine_reasons:
        rows = "\n".join(
            f"| {_cell(reason)} | {n} |"
            for reason, n in report.quarantine_reasons.most_common(PREVIEW_ROWS)
        )
        parts.append(
            f"**Quarantined, top reasons**\n\n| reason | records |\n| --- | ---: |\n{rows}"
        )
    nulls = [
        f"{name.removeprefix(NULL_RATE)} {rate:.1%}"
        for name, rate in sorted(report.quality.items(), key=lambda item: -item[1])
        if name.startswith(NULL_RATE) and rate
    ]
    if nulls:
        parts.append(f"**Required values missing**: {', '.join(nulls[:PREVIEW_ROWS])}")
    missing = report.verification.missing_keys if report.verification else []
    if missing:
        shown = ", ".join(f"`{_cell(key)}`" for key in missing[:PREVIEW_ROWS])
        more = f" and {len(missing) - PREVIEW_ROWS} more" if len(missing) > PREVIEW_ROWS else ""
        parts.append(f"**Gaps** (in the source, not in the warehouse): {shown}{more}")
    return "\n\n".join(parts) or None


def _cell(text: str) -> str:
    """A value shown in a markdown table: one line, no column breaks, bounded."""
    flat = " ".join(str(text).split()).replace("|", "\\|").replace("`", "'")
    return flat if len(flat) <= 120 else flat[:119] + "…"


def _out_of_step(verification) -> str:
    """What the failed verification saw, naming keys, ahead of the sync's own message (which
    may be about something else, e.g. quarantined records)."""
    parts = []
    if verification.missing_keys:
        shown = ", ".join(verification.missing_keys[:MAX_KEYS_IN_METADATA])
        lost = len(verification.lost_keys)
        state = f"{lost} given up as unrecoverable" if lost else "being resynced"
        parts.append(
            f"{verification.gap_count} key(s) the source lists are not in the warehouse "
            f"({state}): {shown}"
        )
    if verification.unexpected_keys:
        shown = ", ".join(verification.unexpected_keys[:MAX_KEYS_IN_METADATA])
        why = (
            "a refused mass delete: confirm it with allow_mass_delete"
            if verification.deletes_refused
            else "deleted at the source after its data was read: the next sync removes them"
        )
        parts.append(
            f"{verification.unexpected_count} key(s) in the warehouse the source no longer "
            f"lists ({why}): {shown}"
        )
    return "; ".join(parts)


def verification_check(report: SyncReport) -> dg.AssetCheckResult:
    verification = report.verification
    assert verification is not None
    passed = verification.gap_count == 0 and verification.unexpected_count == 0
    return dg.AssetCheckResult(
        check_name=VERIFICATION_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if passed else f"{_out_of_step(verification)}. {report.message}",
        metadata={
            "gap_count": verification.gap_count,
            "missing_keys": ", ".join(verification.missing_keys[:MAX_KEYS_IN_METADATA]),
            "unexpected_in_warehouse": verification.unexpected_count,
            "unexpected_keys": ", ".join(verification.unexpected_keys[:MAX_KEYS_IN_METADATA]),
            "source_count": verification.source_count,
            "warehouse_count": verification.warehouse_count,
            "gaps_resolved": verification.gaps_resolved,
            HEALING_METADATA: verification.healing,
        },
    )


COLUMN_TYPES = {"decimal": "decimal({precision},{scale})"}


def table_column_schema(table: sa.Table) -> dg.TableSchema:
    """A platform-defined table's columns (a mart's) for the UI's Columns tab, from the
    SQLAlchemy table itself: type, nullability, the primary key as unique when it is one
    column, the column's comment as its description."""
    keyed = [c.name for c in table.primary_key.columns]
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=str(column.type).lower(),
                description=column.comment,
                constraints=dg.TableColumnConstraints(
                    nullable=column.nullable, unique=keyed == [column.name]
                ),
            )
            for column in table.columns
        ]
    )


def column_schema(entity: EntityConfig) -> dg.TableSchema:
    """The entity's columns as the UI's Columns tab shows them: type, description (with the
    source field each comes from), nullability and the key."""
    columns = []
    for name, spec in entity.fields.items():
        kind = COLUMN_TYPES.get(spec.type, spec.type).format(
            precision=spec.precision, scale=spec.scale
        )
        origin = f"from {spec.source}"
        columns.append(
            dg.TableColumn(
                name,
                kind,
                description=f"{spec.description} ({origin})" if spec.description else origin,
                constraints=dg.TableColumnConstraints(
                    nullable=not spec.required, unique=entity.key == [name]
                ),
            )
        )
    return dg.TableSchema(
        columns=columns,
        constraints=dg.TableConstraints(other=[f"primary key ({', '.join(entity.key)})"]),
    )


def partition_scope(
    context: dg.AssetExecutionContext, entity: EntityConfig
) -> tuple[str | None, dict[str, Any] | None]:
    """(audit partition key, merge scope) of a daily-partitioned run: one day, or the
    inclusive range a single-run backfill covers."""
    partitioned = context.has_partition_key or context.has_partition_key_range
    if entity.partition_column is None or not partitioned:
        return None, None
    keys = context.partition_key_range
    first, last = date.fromisoformat(keys.start), date.fromisoformat(keys.end)
    if first == last:
        return keys.start, {entity.partition_column: first}
    return f"{keys.start}...{keys.end}", {entity.partition_column: (first, last)}


def daily_partitions(entity: EntityConfig) -> dg.DailyPartitionsDefinition | None:
    if entity.partition_column is None:
        return None
    return dg.DailyPartitionsDefinition(
        start_date=entity.partition_start.isoformat(), timezone="UTC", end_offset=0
    )


def build_sync_asset(
    source: SourceConfig,
    entity: EntityConfig,
    resource: type[EntitySourceResource],
    *,
    retry_policy: dg.RetryPolicy | None = SOURCE_RETRY_POLICY,
    kinds: set[str] | None = None,
    upstream: tuple[str, ...] = (),
) -> dg.AssetsDefinition:
    """One asset per entity, reading the source through its `resource` (registered under
    `resource.key`); a new source reuses this unchanged. An entity with a `partition_column`
    becomes a daily-partitioned asset whose backfills run as one run per range (one source
    request for the whole range, not one per day). `upstream` names assets outside the
    source config that feed this one (for lineage and run order)."""
    key = dg.AssetKey(entity.name)
    partitions_def = daily_partitions(entity)

    def _sync(
        context: dg.AssetExecutionContext,
        config: SyncRunConfig,
        warehouse: WarehouseResource,
        **resources: EntitySourceResource,
    ) -> dg.MaterializeResult:
        partition_key, scope = partition_scope(context, entity)
        request = SyncRequest(
            source=source.source,
            entity=entity,
            trigger=trigger_of(context.run.tags),
            dagster_run_id=context.run.run_id,
            partition_key=partition_key,
            full_refresh=config.full_refresh or context.run.tags.get(FULL_REFRESH_TAG) == "true",
            allow_mass_delete=config.allow_mass_delete,
            only_keys=config.resync_keys or None,
            references=source.reference_targets(entity.name),
            scope=scope,
        )
        extra: dict[str, Any] = {}
        try:
            engine = warehouse.ready_engine()
            shared_state.share_through(engine)  # breakers and rate limits across processes
            source_resource = resources[resource.key].with_settings(config.source_settings)
            with source_resource.entity_source(entity, scope) as reader:
                report = run_entity_sync(engine, request, reader)
                extra = reader.extra_metadata() if reader.extra_metadata else {}
        except SyncError as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={"category": str(exc.category)},
                # a lost warehouse connection changed nothing: retried with backoff
                allow_retries=isinstance(exc, WarehouseUnavailableError),
            ) from exc
        context.log.info(
            f"{entity.name}: {report.status}; fetched {report.fetched}, inserted "
            f"{report.merge.inserted}, updated {report.merge.updated}, soft-deleted "
            f"{report.merge.soft_deleted}, quarantined {report.quarantined}"
            + (f"; {report.message}" if report.message else "")
        )
        return dg.MaterializeResult(
            metadata={**report_metadata(report, entity), **extra},
            check_results=[verification_check(report)],
        )

    # Dagster hands resources to the parameters named by their keys: give the function the
    # signature a hand-written asset would have (`<resource.key>: <the resource class>`).
    parameters = list(inspect.signature(_sync).parameters.values())[:-1]
    parameters.append(
        inspect.Parameter(resource.key, inspect.Parameter.KEYWORD_ONLY, annotation=resource)
    )
    _sync.__signature__ = inspect.signature(_sync).replace(parameters=parameters)
    return dg.asset(
        key=key,
        group_name=source.source,
        description=entity.description or f"{entity.name} from {source.source}",
        deps=[
            *filter(None, [source_system_key(source, entity)]),
            *(dg.AssetKey(name) for name in [*entity.depends_on, *upstream]),
        ],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        retry_policy=retry_policy,
        pool=f"sync_{entity.name}",
        freshness_policy=(
            dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=entity.freshness_minutes))
            if entity.freshness_minutes
            else None
        ),
        kinds=kinds or {"python", "polars"},
        tags={
            SOURCE_TAG: source.source,
            LAYER_TAG: "source",
            **({RESYNC_TAG: "keys"} if partitions_def is None else {PARTITIONING_TAG: "daily"}),
        },
        owners=source.owners or None,
        metadata={
            "dagster/table_name": entity.table,
            "dagster/column_schema": column_schema(entity),
            "key": ", ".join(entity.key),
            "sync_mode": entity.sync_mode,
            REQUIRED_ENV_METADATA: ",".join(resource.required_env),
        },
        check_specs=[
            dg.AssetCheckSpec(
                VERIFICATION_CHECK,
                asset=key,
                description="every key the source lists is active in the warehouse",
            )
        ],
    )(_sync)
