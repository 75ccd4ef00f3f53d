"""One entity sync, through the six steps every source shares:
fetch → map → validate → merge → verify → record.

The caller (a Dagster asset, the CLI, a test) supplies the source as plain callables and
gets back a `SyncReport`; nothing here knows which source it is syncing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import polars as pl
import sqlalchemy as sa

from sync_platform.alerting.abandoned import LEASE_STALE_MINUTES
from sync_platform.config.models import EntityConfig
from sync_platform.crashpoints import crashpoint
from sync_platform.engine import audit, gaps, held, read_alerts, review, state
from sync_platform.engine.leases import Lease, acquire_lease, holder_name
from sync_platform.engine.loadable import (
    SOURCE_ROW,
    SourceShape,
    first_of_each_key,
    loadable_page,
)
from sync_platform.engine.mapping import mapped_keys, record_key_expr, record_keys
from sync_platform.engine.merge import merge_snapshot
from sync_platform.engine.ports import (
    EntitySource,
    OnCommit,
    Records,
    RejectedRecord,
    SyncReport,
    SyncRequest,
    Verification,
)
from sync_platform.engine.quality import quality_metrics, trailing_fetched
from sync_platform.engine.scope import describe as describe_scope
from sync_platform.engine.validation import entity_schema, polars_type
from sync_platform.engine.verify import verify_keys
from sync_platform.errors import SchemaDriftError, SourceDownError
from sync_platform.runtime_config import (
    non_negative_int,
    setting,
    share,
)
from sync_platform.warehouse.connection import lost_connection, unreachable
from sync_platform.warehouse.entity_tables import ROW_HASH, entity_table

log = logging.getLogger(__name__)
MAX_FIELDS_SHOWN = 20

MASS_DELETE_MAX_SHARE = setting(
    "mass_delete_max_share",
    0.2,
    share,
    "largest share of an entity's active rows one snapshot may soft-delete",
)
CURSOR_FUTURE_SKEW_MINUTES = setting(
    "cursor_future_skew_minutes",
    15,
    non_negative_int,
    "minutes a record's cursor value may lie ahead of this clock; a record dated later is "
    "quarantined (it loads once its time has come) and never moves the cursor",
)
RECORD_LOG_LIMIT = setting(
    "record_log_limit",
    10_000,
    non_negative_int,
    "changed records written to sync_record_log per sync run",
)


class _PhaseTimer:
    def __init__(self, report: SyncReport):
        self.report = report

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.report.phase_seconds[phase] += time.perf_counter() - started

    def timed(self, phase: str, items: Iterable[Records]) -> Iterator[Records]:
        iterator = iter(items)
        while True:
            with self(phase):
                item = next(iterator, None)
            if item is None:
                return
            yield item


def _key_reason(reason: str) -> str:
    """Group quarantine reasons by column and rule, without the offending value."""
    return (
        reason.split(":")[0] + ": " + reason.split("fails ")[-1] if "fails " in reason else reason
    )


def _fetch_and_validate(
    entity: EntityConfig,
    pages: Iterable[Records],
    timer: _PhaseTimer,
    report: SyncReport,
    progress: Callable[[], None] = lambda: None,
    shape: SourceShape | None = None,
) -> tuple[pl.DataFrame, list[RejectedRecord]]:
    """Map and validate page by page, so raw records never pile up in memory; then the
    first row of each key over the whole read (loadable.py). `shape` watches the records
    against the mapping (schema drift)."""
    schema = entity_schema(entity)
    frames: list[pl.DataFrame] = []
    rejects: list[RejectedRecord] = []
    for page in timer.timed("fetch", pages):
        first_row = report.fetched
        report.fetched += len(page)
        progress()
        if shape is not None:
            shape.observe(page)
        loaded = loadable_page(page, entity, first_row, phase=timer, schema=schema)
        rejects.extend(loaded.rejects)
        report.skipped += loaded.skipped
        frames.append(loaded.frame)
    with timer("validate"):
        frame = (
            pl.concat(frames)
            if frames
            else pl.DataFrame(schema=schema_of(entity) | {SOURCE_ROW: pl.Int64})
        )
        frame, repeated = first_of_each_key(frame, entity)
        rejects.extend(repeated)
    return frame.drop(SOURCE_ROW), rejects


def schema_of(entity: EntityConfig) -> dict[str, pl.DataType]:
    return {name: polars_type(spec) for name, spec in entity.fields.items()} | {ROW_HASH: pl.Int64}


def _listed_keys(entity: EntityConfig, source: EntitySource, read_keys: pl.Series) -> pl.Series:
    """The keys the source has: its own key listing (cleaned like the data) when it has one
    that can tell (a record listed but never served stays a gap), else the keys a whole read
    brought. A listing cannot tell which keys have data for an entity that skips empty rows."""
    if source.key_listing is None or entity.skip_when_empty:
        return read_keys
    return mapped_keys(source.key_listing(), entity)


def _since(entity: EntityConfig, cursor: str | None) -> datetime | None:
    """Where an incremental read starts: the cursor minus the overlap margin (clock skew)."""
    if cursor is None:
        return None
    return datetime.fromisoformat(cursor) - timedelta(seconds=entity.overlap_seconds)


def _advanced_cursor(
    entity: EntityConfig, frame: pl.DataFrame, cursor: str | None, latest: datetime
) -> str | None:
    """The newest cursor value loaded, never moving backwards, never beyond `latest`."""
    if not entity.cursor_field or frame.height == 0:
        return cursor
    newest = frame.get_column(entity.cursor_field).max()
    if isinstance(newest, datetime):
        newest = min(newest, latest)
    elif isinstance(newest, date):
        newest = min(newest, latest.date())
    if cursor is not None and _before(newest, cursor):
        return cursor
    return newest.isoformat()


def _before(value: date, cursor: str) -> bool:
    """Whether a cursor value is at or before the stored cursor."""
    stored = datetime.fromisoformat(cursor)
    if isinstance(value, datetime):
        return value <= stored
    return value <= stored.date()


def _from_the_future(
    request: SyncRequest, frame: pl.DataFrame, latest: datetime
) -> tuple[pl.DataFrame, list[RejectedRecord]]:
    """Rows whose cursor value lies beyond `latest` (this clock plus the allowed skew): a
    source clock running ahead, or a wrong date such as 9999-12-31. Loaded, one would carry
    the cursor past every change to come; refused, it is read again by later syncs and loads
    once its time has come."""
    column = request.entity.cursor_field
    if column is None or frame.height == 0:
        return frame, []
    bound = latest if frame.schema[column] != pl.Date else latest.date()
    ahead = pl.col(column) > pl.lit(bound, dtype=frame.schema[column])
    future = frame.filter(ahead)
    rejects = [
        RejectedRecord(
            {k: str(v) for k, v in row.items() if k != ROW_HASH},
            "|".join(str(row[c]) for c in request.entity.key),
            [
                f"{column}: {row[column]} is later than this clock allows "
                f"({latest.isoformat(timespec='seconds')}, with cursor_future_skew_minutes): "
                "the source's clock or this record is wrong; it loads once that time has come"
            ],
        )
        for row in future.iter_rows(named=True)
    ]
    return frame.filter(~ahead), rejects


def _with_held_records(
    engine: sa.Engine, request: SyncRequest, frame: pl.DataFrame, report: SyncReport
) -> tuple[pl.DataFrame, list[RejectedRecord]]:
    """Add the entity's waiting (held) records to a delta, unless the source sent a newer
    version of them this time. A complete snapshot needs no help: it holds them already."""
    with engine.connect() as connection:
        waiting = held.waiting_records(connection, request.source, request.entity.name)
    if not waiting or request.complete_snapshot:
        return frame, []
    retried, rejects = _fetch_and_validate(request.entity, [waiting], _PhaseTimer(report), report)
    report.fetched -= len(waiting)  # retried from the hold, not fetched from the source
    fetched_keys = frame.select(record_key_expr(request.entity.key)).to_series()
    fresh = retried.filter(~record_key_expr(request.entity.key).is_in(fetched_keys.implode()))
    return pl.concat([frame, fresh]), rejects


def _outside_scope(
    request: SyncRequest, frame: pl.DataFrame
) -> tuple[pl.DataFrame, list[RejectedRecord]]:
    """Rows a scoped run was not asked for (e.g. a GA4 row dated outside the partition) are
    refused: merging them would touch data the run does not own."""
    if not request.scope:
        return frame, []
    inside = pl.lit(True)
    for column, value in request.scope.items():
        first, last = value if isinstance(value, tuple) else (value, value)
        inside = inside & pl.col(column).is_between(first, last)
    outside = frame.filter(~inside)
    reason = f"outside this run's scope ({describe_scope(request.scope)})"
    rejects = [
        RejectedRecord(
            {k: str(v) for k, v in row.items() if k != ROW_HASH},
            "|".join(str(row[c]) for c in request.entity.key),
            [f"{', '.join(request.scope)}: {reason}"],
        )
        for row in outside.iter_rows(named=True)
    ]
    return frame.filter(inside), rejects


def _judge_shape(request: SyncRequest, report: SyncReport, shape: SourceShape) -> None:
    """Schema drift: a required field no record carried fails the sync before anything is
    written (every row would be refused); a missing optional one is recorded for an alert."""
    report.fields_unmapped = sorted(shape.unmapped)[:MAX_FIELDS_SHOWN]
    required, optional = shape.drift()
    report.fields_missing = required | optional
    if not required:
        return
    unmapped = ", ".join(report.fields_unmapped) or "none"
    raise SchemaDriftError(
        f"{request.source}.{request.entity.name}: none of the {shape.records} records the "
        f"source sent carries {read_alerts.fields_text(required)}: its shape changed. "
        "Nothing was written",
        hint="restore the field at the source, or point the entity's `from:` at its new name "
        f"in the source's YAML (fields the source sends that nothing maps: {unmapped})",
    )


def _merge_and_record(
    engine: sa.Engine,
    request: SyncRequest,
    report: SyncReport,
    frame: pl.DataFrame,
    rejects: list[RejectedRecord],
    latest: datetime,
    on_commit: OnCommit | None = None,
    subject: str | None = None,
) -> None:
    """Step 4, in one transaction: data, quarantine, held records, conflicts, record log,
    cursor (never beyond `latest`), audit counts and the source's own bookkeeping commit
    together or not at all."""
    entity = request.entity
    now = audit.utcnow()
    where = {"sync_run_id": report.sync_run_id, "entity": entity.name, "now": now}
    with engine.begin() as connection:
        loadable, orphans = held.split_orphans(connection, frame, request.references)
        report.held = held.hold(connection, orphans, entity, source=request.source, now=now)
        waiting = held.waiting_keys(connection, request.source, entity.name)
        report.merge = merge_snapshot(
            connection,
            entity_table(entity),
            entity,
            loadable,
            complete_snapshot=request.complete_snapshot,
            sync_run_id=report.sync_run_id,
            now=now,
            max_delete_share=MASS_DELETE_MAX_SHARE.read(connection),
            allow_mass_delete=request.allow_mass_delete,
            protected_keys=[r.record_key for r in rejects if r.record_key] + waiting,
            scope=request.scope,
            force_source=request.force_source,
        )
        report.held_for_review = review.hold_for_review(
            connection,
            report.merge.review,
            source=request.source,
            entity=entity,
            sync_run_id=report.sync_run_id,
            now=now,
        )
        report.merge.conflicts = audit.unreported_conflicts(
            connection, report.merge.conflicts, source=request.source, entity=entity.name
        )
        loaded = loadable.select(record_key_expr(entity.key)).to_series()
        released = loaded.filter(loaded.is_in(waiting)).to_list()
        if request.complete_snapshot:  # held records the source no longer has are done too
            in_snapshot = frame.select(record_key_expr(entity.key)).to_series()
            released += [key for key in waiting if key not in set(in_snapshot.to_list())]
        report.released = held.release(
            connection,
            released,
            source=request.source,
            entity=entity.name,
            sync_run_id=report.sync_run_id,
            now=now,
        )
        audit.write_quarantine(connection, rejects, source=request.source, **where)
        audit.write_conflicts(connection, report.merge.conflicts, source=request.source, **where)
        report.record_log_truncated = audit.write_record_log(
            connection,
            report.merge.changes,
            rejects,
            limit=RECORD_LOG_LIMIT.read(connection),
            **where,
        )
        read_alerts.after_read(connection, request, report, rejects, subject, now)
        crashpoint("merge:before_state")
        if entity.sync_mode == "incremental" and not request.only_keys:
            report.cursor_after = _advanced_cursor(entity, frame, report.cursor_before, latest)
        state.save_cursor(
            connection,
            request.source,
            entity.name,
            report.cursor_after,
            sync_run_id=report.sync_run_id,
            now=now,
        )
        audit.update_sync_run(
            connection,
            report.sync_run_id,
            fetched=report.fetched,
            inserted=report.merge.inserted,
            updated=report.merge.updated,
            unchanged=report.merge.unchanged,
            soft_deleted=report.merge.soft_deleted,
            quarantined=report.quarantined,
        )
        if on_commit is not None:
            on_commit(connection, report.sync_run_id, rejects)
        crashpoint("merge:before_commit")


def _verify(
    engine: sa.Engine,
    request: SyncRequest,
    report: SyncReport,
    source: EntitySource,
    frame: pl.DataFrame,
    rejects: list[RejectedRecord],
    read_keys: pl.Series | None,
) -> Verification:
    """Step 5: a delta must be in the warehouse; a snapshot must match the source's keys;
    a targeted resync must have brought its keys, unless the source no longer has them."""
    entity = request.entity
    with engine.connect() as connection:
        waiting = held.waiting_keys(connection, request.source, entity.name)
        max_attempts = gaps.GAP_RESYNC_MAX_ATTEMPTS.read(connection)
    known_failures = [r.record_key for r in rejects if r.record_key] + waiting
    source_keys = None  # all the source has, when this sync read it whole
    if request.only_keys:
        expected = pl.Series(request.only_keys, dtype=pl.String)
        if request.scope is None and read_keys is not None:  # a key it lacks was deleted
            source_keys = _listed_keys(entity, source, read_keys)
            expected = expected.filter(expected.is_in(source_keys.implode()))
    elif request.incremental:
        expected = record_keys(frame, entity.key)
    else:
        expected = _listed_keys(entity, source, record_keys(frame, entity.key))
    expected = expected.filter(~expected.is_in(known_failures))
    if request.complete_snapshot and request.scope is None:
        source_keys = expected
    return verify_keys(
        engine,
        entity_table(entity),
        entity,
        source=request.source,
        expected_keys=expected,
        sync_run_id=report.sync_run_id,
        now=audit.utcnow(),
        max_attempts=max_attempts,
        scope=request.scope,
        complete=request.complete_snapshot,
        source_keys=source_keys,
    )


def run_entity_sync(engine: sa.Engine, request: SyncRequest, source: EntitySource) -> SyncReport:
    """Run one sync end to end; the audit row records it whether it succeeds or fails.

    Raises SyncAlreadyRunningError, before doing anything, when another sync of the
    entity holds its lease.
    """
    entity = request.entity
    with engine.connect() as connection:
        stale_after = timedelta(minutes=LEASE_STALE_MINUTES.read(connection))
    holder = holder_name(request.dagster_run_id)
    acquire_lease(engine, request.source, entity.name, holder, stale_after)
    lease = Lease(engine, request.source, entity.name, holder)
    try:
        return _run_with_lease(engine, request, source, lease)
    finally:
        try:
            lease.release()
        except sa.exc.SQLAlchemyError as exc:  # never hides the sync's own outcome
            log.warning(
                "could not release the lease of %s.%s (%s): it goes stale in %s",
                request.source,
                entity.name,
                exc,
                stale_after,
            )


def _full_refresh_due(engine: sa.Engine, request: SyncRequest) -> bool:
    """An incremental entity with `full_refresh_hours` reads everything when its last full
    read is older than that: keys its change feed never sent are found and loaded."""
    hours = request.entity.full_refresh_hours
    if not hours or not request.incremental or request.only_keys:
        return False
    with engine.connect() as connection:
        last = audit.last_good_start(
            connection, request.source, request.entity.name, kind="snapshot"
        )
    return last is None or last < audit.utcnow() - timedelta(hours=hours)


def _run_with_lease(
    engine: sa.Engine, request: SyncRequest, source: EntitySource, lease: Lease
) -> SyncReport:
    entity = request.entity
    if _full_refresh_due(engine, request):
        log.info(
            "%s.%s: a full read (no full read in full_refresh_hours = %s)",
            request.source,
            entity.name,
            entity.full_refresh_hours,
        )
        request = dataclasses.replace(request, full_refresh=True)
    sync_run_id = audit.start_sync_run(
        engine,
        source=request.source,
        entity=entity.name,
        trigger=request.trigger,
        kind=request.kind,
        dagster_run_id=request.dagster_run_id,
        partition_key=request.partition_key,
    )
    lease.attach(sync_run_id)
    report = SyncReport(sync_run_id, request.source, entity.name)
    timer = _PhaseTimer(report)
    merged = False
    try:
        if request.only_keys:
            gaps.record_attempt(
                engine,
                source=request.source,
                entity=entity.name,
                keys=request.only_keys,
                now=audit.utcnow(),
            )
        if entity.sync_mode == "incremental":  # a full refresh moves the cursor too
            with engine.connect() as connection:
                report.cursor_before = state.read_cursor(connection, request.source, entity.name)
        report.cursor_after = report.cursor_before
        since = _since(entity, report.cursor_before) if request.incremental else None
        shape = SourceShape(entity)
        frame, rejects = _fetch_and_validate(
            entity,
            source.pages(None if request.only_keys else since),
            timer,
            report,
            progress=lambda: lease.beat(sync_run_id, report.fetched),
            shape=shape,
        )
        _judge_shape(request, report, shape)
        frame, held_rejects = _with_held_records(engine, request, frame, report)
        rejects += held_rejects
        frame, outside = _outside_scope(request, frame)
        rejects += outside
        with engine.connect() as connection:
            latest = audit.utcnow() + timedelta(minutes=CURSOR_FUTURE_SKEW_MINUTES.read(connection))
        frame, future = _from_the_future(request, frame, latest)
        rejects += future
        read_keys = None  # what a resync's whole read brought, before it keeps its own keys
        if request.only_keys:
            read_keys = pl.concat(
                [
                    record_keys(frame, entity.key),
                    pl.Series([r.record_key for r in rejects], dtype=pl.String),
                ]
            )
            wanted = pl.Series(request.only_keys, dtype=pl.String)
            frame = frame.filter(record_key_expr(entity.key).is_in(wanted.implode()))
            rejects = [r for r in rejects if r.record_key in set(request.only_keys)]
        report.quarantined = len(rejects)
        report.quarantine_reasons.update(
            _key_reason(reason) for reject in rejects for reason in reject.reasons
        )
        with timer("merge"):
            _merge_and_record(
                engine, request, report, frame, rejects, latest, source.on_commit, source.subject
            )
        crashpoint("sync:after_merge")
        merged = True
        with timer("verify"):
            report.verification = _verify(
                engine, request, report, source, frame, rejects, read_keys
            )
            report.verification.deletes_refused = bool(report.merge and report.merge.delete_refused)
        with engine.connect() as connection:
            history = trailing_fetched(connection, request.source, entity.name, sync_run_id)
        report.quality = quality_metrics(entity, report.fetched, rejects, history)
        report.error_counts = {"validation": report.quarantined} if report.quarantined else {}
        degraded = (
            report.quarantined
            or report.held
            or report.merge.delete_refused
            or report.verification.gap_count
        )
        report.status = "warning" if degraded else "succeeded"
        _finish(engine, report)
        return report
    except BaseException as exc:
        _record_failure(engine, request, report, exc)
        if lost_connection(exc):
            raise unreachable(
                engine.url.render_as_string(hide_password=False),
                exc,
                during=f"sync #{sync_run_id} of {request.source}.{entity.name}: "
                + (
                    "its merge had committed, the data it read is in"
                    if merged
                    else "the sync changed nothing"
                ),
            ) from exc
        raise


def _record_failure(
    engine: sa.Engine, request: SyncRequest, report: SyncReport, exc: BaseException
) -> None:
    """Audit a failed sync; if even that fails (the database is the problem), say so in the
    log and let the original error through."""
    report.status = "failed"
    report.failed = report.fetched - report.quarantined
    try:
        with engine.begin() as connection:
            category = audit.record_error(
                connection,
                exc,
                sync_run_id=report.sync_run_id,
                dagster_run_id=request.dagster_run_id,
                source=request.source,
                entity=request.entity.name,
            )
            if isinstance(exc, SourceDownError):
                read_alerts.source_down(connection, request, exc)
        report.error_counts = {category: 1}
        _finish(engine, report, message=str(exc))
    except Exception as audit_error:  # the sync's own error matters more
        log.error("could not record the failure of sync %s: %s", report.sync_run_id, audit_error)


def _finish(engine: sa.Engine, report: SyncReport, message: str | None = None) -> None:
    verification = report.verification
    with engine.begin() as connection:
        audit.update_sync_run(
            connection,
            report.sync_run_id,
            status=report.status,
            finished_at=audit.utcnow(),
            failed=report.failed,
            verification=verification.status if verification else None,
            source_count=verification.source_count if verification else None,
            warehouse_count=verification.warehouse_count if verification else None,
            gap_count=verification.gap_count if verification else None,
            phase_seconds={phase: round(s, 4) for phase, s in report.phase_seconds.items()},
            error_counts=report.error_counts,
            rows_per_second=round(report.rows_per_second, 1),
            message=message or report.message,
            source_fields=(
                {"missing": report.fields_missing, "unmapped": report.fields_unmapped}
                if report.fields_missing or report.fields_unmapped
                else None
            ),
        )
