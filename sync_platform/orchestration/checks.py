"""Asset checks every synced entity gets from its config, evaluated by one op per source
(a `@multi_asset_check`, subsettable: a run of one entity evaluates only its checks).

- `schema_valid` (blocking): the entity's pandera schema — the same one the sync uses to
  quarantine — run over the active warehouse rows; downstream assets do not run on failure.
- `quarantine_rate` (warning): the share of records the last sync had to quarantine.
- `volume_normal` (warning): the latest sync's row counts against its trailing 14 syncs.

Freshness is a `FreshnessPolicy.time_window` on each asset (orchestration/sync_asset.py),
and `in_step_with_source` is reported by the sync asset itself.
"""

import statistics
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig, SourceConfig
from sync_platform.engine.quality import TRAILING, robust_z
from sync_platform.engine.readback import read_active_rows
from sync_platform.engine.validation import entity_schema, find_invalid_rows
from sync_platform.runtime_config import setting, share
from sync_platform.warehouse.connection import READ_ONLY
from sync_platform.warehouse.platform_tables import sync_runs

SCHEMA_VALID = "schema_valid"
QUARANTINE_RATE = "quarantine_rate"
VOLUME_NORMAL = "volume_normal"
ANOMALY_Z = 3.5  # |robust z| above this is an anomaly (Iglewicz and Hoaglin's cut-off)
# … and the jump is at least this share of the entity's rows: rows fetched move little
# from sync to sync, rows written follow how much changed since the last sync, which a late
# run (a busy queue, a skipped tick) multiplies
MIN_SHARE = {"fetched": 0.10, "written": 0.25}
MAX_EXAMPLES = 10
QUARANTINE_WARN_SHARE = setting(
    "quarantine_warn_share",
    0.05,
    share,
    "quarantined share of a sync's records above which its check warns",
)


def schema_valid(connection: sa.Connection, entity: EntityConfig) -> dg.AssetCheckResult:
    frame = read_active_rows(connection, entity)
    invalid = find_invalid_rows(frame, entity_schema(entity), entity.key)
    reasons = Counter(reason for found in invalid.values() for reason in found)
    keys = frame.select(entity.key).to_dicts()
    examples = [
        f"{'|'.join(str(v) for v in keys[position].values())}: {'; '.join(found)}"
        for position, found in list(invalid.items())[:MAX_EXAMPLES]
    ]
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(entity.name),
        check_name=SCHEMA_VALID,
        passed=not invalid,
        metadata={
            "rows_checked": frame.height,
            "rows_failing": len(invalid),
            "failures_by_rule": dg.MetadataValue.json(dict(reasons.most_common(20))),
            "examples": dg.MetadataValue.md("\n".join(f"- {e}" for e in examples) or "none"),
        },
    )


def quarantine_rate(
    connection: sa.Connection, source: SourceConfig, entity: EntityConfig
) -> dg.AssetCheckResult:
    limit = QUARANTINE_WARN_SHARE.read(connection)
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
    key = {"asset_key": dg.AssetKey(entity.name), "check_name": QUARANTINE_RATE}
    if last is None:
        return dg.AssetCheckResult(**key, passed=True, metadata={"note": "no sync has run yet"})
    share = last.quarantined / last.fetched if last.fetched else 0.0
    return dg.AssetCheckResult(
        **key,
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


def volume_normal(
    connection: sa.Connection, source: SourceConfig, entity: EntityConfig
) -> dg.AssetCheckResult:
    """Rows fetched (and written) by the latest sync against its trailing 14 syncs."""
    runs = connection.execute(
        sa.select(sync_runs.c.fetched, sync_runs.c.inserted, sync_runs.c.updated)
        .where(
            sync_runs.c.source == source.source,
            sync_runs.c.entity == entity.name,
            sync_runs.c.status.in_(("succeeded", "warning")),
        )
        .order_by(sync_runs.c.id.desc())
        .limit(TRAILING + 1)
    ).all()
    key = {"asset_key": dg.AssetKey(entity.name), "check_name": VOLUME_NORMAL}
    if len(runs) < 6:
        return dg.AssetCheckResult(**key, passed=True, metadata={"note": "not enough history"})
    latest, history = runs[0], runs[1:]
    series = {
        "fetched": (latest.fetched, [r.fetched for r in history]),
        "written": (latest.inserted + latest.updated, [r.inserted + r.updated for r in history]),
    }
    scores = {name: robust_z(value, past) for name, (value, past) in series.items()}
    # A jump must also be material: a sync that wrote 30 rows of 212 after a run of 5s scores
    # a high z, but it is not a truncated or flooded source.
    size = max(latest.fetched, statistics.median(r.fetched for r in history), 1)
    anomalies = {
        name: z
        for name, z in scores.items()
        if z is not None
        and abs(z) > ANOMALY_Z
        and abs(series[name][0] - statistics.median(series[name][1])) >= MIN_SHARE[name] * size
    }
    return dg.AssetCheckResult(
        **key,
        passed=not anomalies,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            None
            if not anomalies
            else "unusual volume: "
            + ", ".join(f"{name} robust z = {z:.1f}" for name, z in anomalies.items())
            + f" (latest fetched {latest.fetched}); was the source truncated or flooded?"
        ),
        metadata={
            f"robust_z_{name}": round(z, 2) if z is not None else 0.0 for name, z in scores.items()
        }
        | {"fetched": latest.fetched},
    )


def entity_checks(source: SourceConfig, volume: bool = True) -> dg.AssetChecksDefinition:
    """`schema_valid`, `quarantine_rate` and (unless `volume` is off) `volume_normal` for
    every entity of a source, in one op."""
    specs = []
    for entity in source.entities.values():
        specs += [
            dg.AssetCheckSpec(
                SCHEMA_VALID,
                asset=entity.name,
                blocking=True,
                description=f"pandera schema of {entity.name} holds for every active row",
            ),
            dg.AssetCheckSpec(
                QUARANTINE_RATE,
                asset=entity.name,
                description="share of fetched records the last sync quarantined stays under "
                "the runtime setting quarantine_warn_share",
            ),
        ]
        if volume:
            specs.append(
                dg.AssetCheckSpec(
                    VOLUME_NORMAL,
                    asset=entity.name,
                    description="rows of the latest sync are not an outlier against its "
                    "trailing 14 syncs (robust z-score)",
                )
            )

    @dg.multi_asset_check(
        name=f"{source.source}_checks",
        specs=specs,
        can_subset=True,
        required_resource_keys={"warehouse"},
    )
    def _checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        engine = context.resources.warehouse.ready_engine()
        with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
            for check in sorted(context.selected_asset_check_keys, key=str):
                entity = source.entities[check.asset_key.path[-1]]
                if check.name == SCHEMA_VALID:
                    yield schema_valid(connection, entity)
                elif check.name == QUARANTINE_RATE:
                    yield quarantine_rate(connection, source, entity)
                else:
                    yield volume_normal(connection, source, entity)

    return _checks
