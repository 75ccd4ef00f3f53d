"""Asset checks every synced entity gets from its config.

- `schema_valid` (blocking): the entity's pandera schema — the same one the sync uses to
  quarantine — run over the active warehouse rows; downstream assets do not run on failure.
- `quarantine_rate` (warning): the share of records the last sync had to quarantine.
- freshness: a successful sync within the entity's `freshness_minutes`.
"""

from collections import Counter
from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig, SourceConfig
from sync_platform.engine.readback import read_active_rows
from sync_platform.engine.runtime_config import get_setting
from sync_platform.engine.validation import entity_schema, find_invalid_rows
from sync_platform.warehouse.connection import READ_ONLY
from sync_platform.warehouse.platform_tables import sync_runs

MAX_EXAMPLES = 10


def build_schema_check(entity: EntityConfig) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(entity.name),
        name="schema_valid",
        blocking=True,
        required_resource_keys={"warehouse"},
        description=f"pandera schema of {entity.name} holds for every active warehouse row",
    )
    def _schema_valid(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        engine = context.resources.warehouse.ready_engine()
        with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
            frame = read_active_rows(connection, entity)
        invalid = find_invalid_rows(frame, entity_schema(entity), entity.key)
        reasons = Counter(reason for found in invalid.values() for reason in found)
        keys = frame.select(entity.key).to_dicts()
        examples = [
            f"{'|'.join(str(v) for v in keys[position].values())}: {'; '.join(found)}"
            for position, found in list(invalid.items())[:MAX_EXAMPLES]
        ]
        return dg.AssetCheckResult(
            passed=not invalid,
            metadata={
                "rows_checked": frame.height,
                "rows_failing": len(invalid),
                "failures_by_rule": dg.MetadataValue.json(dict(reasons.most_common(20))),
                "examples": dg.MetadataValue.md("\n".join(f"- {e}" for e in examples) or "none"),
            },
        )

    return _schema_valid


def build_quarantine_check(source: SourceConfig, entity: EntityConfig) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(entity.name),
        name="quarantine_rate",
        required_resource_keys={"warehouse"},
        description="share of fetched records the last sync quarantined stays under "
        "the runtime setting quarantine_warn_share",
    )
    def _quarantine_rate(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        engine = context.resources.warehouse.ready_engine()
        with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
            limit = get_setting(connection, "quarantine_warn_share")
            last = connection.execute(
                sa.select(sync_runs.c.id, sync_runs.c.fetched, sync_runs.c.quarantined)
                .where(
                    sync_runs.c.source == source.source,
                    sync_runs.c.entity == entity.name,
                    sync_runs.c.status != "running",
                )
                .order_by(sync_runs.c.id.desc())
                .limit(1)
            ).first()
        if last is None:
            return dg.AssetCheckResult(passed=True, metadata={"note": "no sync has run yet"})
        share = last.quarantined / last.fetched if last.fetched else 0.0
        return dg.AssetCheckResult(
            passed=share <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                None
                if share <= limit
                else f"{last.quarantined} of {last.fetched} records quarantined; "
                "see sync_quarantine for the reasons"
            ),
            metadata={
                "sync_run_id": last.id,
                "quarantined": last.quarantined,
                "fetched": last.fetched,
                "quarantine_share": round(share, 4),
                "limit": limit,
            },
        )

    return _quarantine_rate


def freshness_checks(entities: list[EntityConfig]) -> list[dg.AssetChecksDefinition]:
    checks: list[dg.AssetChecksDefinition] = []
    for entity in entities:
        if entity.freshness_minutes:
            checks.extend(
                dg.build_last_update_freshness_checks(
                    assets=[dg.AssetKey(entity.name)],
                    lower_bound_delta=timedelta(minutes=entity.freshness_minutes),
                    severity=dg.AssetCheckSeverity.ERROR,
                )
            )
    return checks


def freshness_sensor(source: str, checks: list[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    """Evaluates a source's freshness checks between runs (a stale asset fails its check
    even when nothing runs)."""
    return dg.build_sensor_for_freshness_checks(
        freshness_checks=checks,
        name=f"{source}_freshness_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )


def entity_checks(source: SourceConfig) -> list[dg.AssetChecksDefinition]:
    """Schema and quarantine checks for every entity of a source (freshness is separate)."""
    checks = []
    for entity in source.entities.values():
        checks += [build_schema_check(entity), build_quarantine_check(source, entity)]
    return checks
