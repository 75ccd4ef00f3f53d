"""Asset checks every synced entity gets from its config, evaluated by one op per source
(a `@multi_asset_check`, subsettable: a run of one entity evaluates only its checks).

- `schema_valid` (blocking): the entity's pandera schema — the same one the sync uses to
  quarantine — run over the active warehouse rows; downstream assets do not run on failure.
- `quarantine_rate` (warning): the share of records the last sync had to quarantine.
- `volume_normal` (warning): the latest sync's row counts against its trailing 14 syncs
  of the same kind.

Freshness is a `FreshnessPolicy.time_window` on each asset (orchestration/sync_asset.py),
and `in_step_with_source` is reported by the sync asset itself.
"""

import itertools
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa

from sync_platform.config.models import EntityConfig, SourceConfig
from sync_platform.engine.quality import TRAILING, robust_z
from sync_platform.engine.readback import read_active_rows
from sync_platform.engine.validation import entity_schema, find_invalid_rows
from sync_platform.runtime_config import setting, share
from sync_platform.warehouse.connection import READ_ONLY
from sync_platform.warehouse.entity_tables import DELETED_AT, entity_table
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
HISTORY_SCANNED = 100  # syncs read to find the trailing ones of the latest sync's kind
MIN_HOURS = 1 / 60  # two syncs a moment apart: a rate over at least a minute
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
    """The latest sync's volume against its trailing 14 syncs of the same kind (a snapshot
    with snapshots, a delta with deltas; a resync of named keys is not judged). What a sync
    reads or writes in proportion to the time since the previous sync (a delta's rows, the
    rows a snapshot changed) is judged per hour, so a late sync catching up is not a flood."""
    runs = _judged_syncs(connection, source.source, entity.name)
    key = {"asset_key": dg.AssetKey(entity.name), "check_name": VOLUME_NORMAL}
    if len(runs) < 6:
        return dg.AssetCheckResult(**key, passed=True, metadata={"note": "not enough history"})
    latest, history = runs[0], runs[1:]
    series = {"fetched": ("rate" if latest.kind == "changes" else "level", _fetched)}
    if latest.kind != "slice":  # a day re-pulled writes what changed, not what time passed
        series["written"] = ("rate", _written)
    scores, excess = {}, {}
    for name, (measure, count) in series.items():
        if measure == "level":
            past = [count(r) for r in history]
            scores[name] = robust_z(count(latest), past)
            excess[name] = count(latest) - statistics.median(past)
        else:
            past = [count(r) / r.hours for r in history]
            scores[name] = robust_z(count(latest) / latest.hours, past)
            excess[name] = count(latest) - statistics.median(past) * latest.hours
    # A jump must also be material against the entity's size: a sync that wrote 30 rows of
    # 212 after a run of 5s scores a high z, but it is not a truncated or flooded source.
    size = max(
        _active_rows(connection, entity) if latest.kind == "changes" else 0,
        latest.fetched,
        statistics.median(r.fetched for r in history),
        1,
    )
    anomalies = {
        name: z
        for name, z in scores.items()
        if z is not None and abs(z) > ANOMALY_Z and abs(excess[name]) >= MIN_SHARE[name] * size
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
            + f" (latest fetched {latest.fetched}, {latest.kind or 'sync'} against the same kind)"
            "; was the source truncated or flooded?"
        ),
        metadata={
            f"robust_z_{name}": round(z, 2) if z is not None else 0.0 for name, z in scores.items()
        }
        | {"fetched": latest.fetched, "sync_kind": latest.kind or "unrecorded"},
    )


def _fetched(run: sa.Row) -> int:
    return run.fetched


def _written(run: sa.Row) -> int:
    return run.inserted + run.updated


@dataclass(frozen=True)
class _JudgedSync:
    kind: str | None
    fetched: int
    inserted: int
    updated: int
    hours: float  # since the previous sync that read the source (not a key resync)


def _judged_syncs(connection: sa.Connection, source: str, entity: str) -> list[_JudgedSync]:
    """The latest successful sync that is not a key resync, then up to TRAILING earlier
    ones of its kind, newest first, each with the hours since the sync before it."""
    rows = connection.execute(
        sa.select(
            sync_runs.c.kind,
            sync_runs.c.started_at,
            sync_runs.c.fetched,
            sync_runs.c.inserted,
            sync_runs.c.updated,
        )
        .where(
            sync_runs.c.source == source,
            sync_runs.c.entity == entity,
            sync_runs.c.status.in_(("succeeded", "warning")),
            sa.or_(sync_runs.c.kind.is_(None), sync_runs.c.kind != "keys"),
        )
        .order_by(sync_runs.c.id.desc())
        .limit(HISTORY_SCANNED)
    ).all()
    judged = [
        _JudgedSync(
            row.kind,
            row.fetched,
            row.inserted,
            row.updated,
            max((row.started_at - before.started_at).total_seconds() / 3600, MIN_HOURS),
        )
        for row, before in itertools.pairwise(rows)
    ]
    if not judged:
        return []
    latest, *earlier = judged
    return [latest, *[s for s in earlier if s.kind == latest.kind][:TRAILING]]


def _active_rows(connection: sa.Connection, entity: EntityConfig) -> int:
    table = entity_table(entity)
    return connection.execute(
        sa.select(sa.func.count()).select_from(table).where(table.c[DELETED_AT].is_(None))
    ).scalar_one()


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
