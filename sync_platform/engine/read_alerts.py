"""The alerts a sync raises about its own read, in the transaction that loads it: records
quarantined (data integrity), a read with no rows where the warehouse holds some (empty
read), fields no record carried (schema drift), and a source whose breaker refused the read
(source down). Each closes when a later read no longer shows its condition.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from sync_platform.alerting.store import raise_alert, resolve_alerts
from sync_platform.engine.ports import RejectedRecord, SyncReport, SyncRequest
from sync_platform.engine.scope import describe as describe_scope
from sync_platform.runtime_config import setting, share_or_zero

MAX_KEYS_IN_ALERT = 20
ALERT_QUARANTINE_SHARE = setting(
    "alert_quarantine_share",
    0.0,
    share_or_zero,
    "quarantined share of a sync above which a data-integrity alert is raised",
)


def after_read(
    connection: sa.Connection,
    request: SyncRequest,
    report: SyncReport,
    rejects: list[RejectedRecord],
    subject: str | None,
    now: datetime,
) -> None:
    """Raise or close each read alert for a sync that reached its merge. `subject` names
    what was read ("GA4 property 123"), when the source says."""
    resolve_alerts(connection, f"source_down:{request.source}", now)  # it answered
    if not request.only_keys:
        _integrity_alert(connection, request, rejects, report.fetched, now)
        _drift_alert(connection, request, report, subject, now)
    if request.complete_snapshot:
        _empty_read_alert(connection, request, report, subject, now)


def source_down(connection: sa.Connection, request: SyncRequest, exc: Exception) -> None:
    """A sync refused by its source's open breaker: said at the first such run."""
    raise_alert(
        connection,
        severity="high",
        type="source_down",
        message=f"{request.source} is down: {exc}",
        dedup_key=f"source_down:{request.source}",
        details={"entity": request.entity.name, "error": str(exc)[:2000]},
    )


def _integrity_alert(
    connection: sa.Connection,
    request: SyncRequest,
    rejects: list[RejectedRecord],
    fetched: int,
    now: datetime,
) -> None:
    """Quarantined records are a data-integrity issue a person should hear about once; a
    later sync that quarantines nothing closes the alert."""
    key = f"data_integrity:{request.source}:{request.entity.name}"
    share = len(rejects) / fetched if fetched else 0.0
    if not rejects or share <= ALERT_QUARANTINE_SHARE.read(connection):
        resolve_alerts(connection, key, now)
        return
    shown = "; ".join(
        f"{reject.record_key or '(no key)'}: {reject.reason}"
        for reject in rejects[:MAX_KEYS_IN_ALERT]
    )
    raise_alert(
        connection,
        severity="medium",
        type="data_integrity",
        message=(
            f"{request.source}.{request.entity.name}: {len(rejects)} record(s) failed validation "
            f"and were quarantined (the rest loaded): {shown}. Fix them at the source; the next "
            "sync picks them up."
        ),
        dedup_key=key,
        details={
            "records": [
                {"key": reject.record_key, "reason": reject.reason} for reject in rejects[:200]
            ]
        },
        now=now,
    )


def fields_text(fields: dict[str, str]) -> str:
    return ", ".join(f"{source!r} (column {column})" for column, source in fields.items())


def _drift_alert(
    connection: sa.Connection,
    request: SyncRequest,
    report: SyncReport,
    subject: str | None,
    now: datetime,
) -> None:
    """Optional fields no record carried load as NULL, so a person must hear of it; a read
    that carries them again closes the alert."""
    key = f"schema_drift:{request.source}:{request.entity.name}"
    if not report.fields_missing:
        resolve_alerts(connection, key, now)
        return
    unmapped = ", ".join(report.fields_unmapped) or "none"
    raise_alert(
        connection,
        severity="high",
        type="schema_drift",
        message=(
            f"{subject or request.source}: none of the {report.fetched} records of "
            f"{request.entity.name} carries {fields_text(report.fields_missing)}; those columns "
            "loaded empty. Restore the field at the source, or point `from:` at its new name "
            f"(fields the source sends that nothing maps: {unmapped})"
        ),
        dedup_key=key,
        details={"missing": report.fields_missing, "unmapped": report.fields_unmapped},
        now=now,
    )


def _empty_read_alert(
    connection: sa.Connection,
    request: SyncRequest,
    report: SyncReport,
    subject: str | None,
    now: datetime,
) -> None:
    """A complete read that returned nothing where the warehouse holds rows is never silent,
    whether the mass-delete guard kept the rows or a confirmed run removed them; a read that
    returns rows again closes the alert."""
    scope = describe_scope(request.scope)
    key = f"empty_read:{request.source}:{request.entity.name}" + (f":{scope}" if scope else "")
    held_before = report.merge.active_before
    if report.fetched or not held_before:
        resolve_alerts(connection, key, now)
        return
    outcome = (
        "nothing was deleted (the mass-delete guard refused)"
        if report.merge.delete_refused
        else f"all {report.merge.soft_deleted} were soft-deleted (the run allowed it)"
    )
    raise_alert(
        connection,
        severity="high",
        type="empty_read",
        message=(
            f"{subject or request.source}: {request.entity.name} returned no rows"
            f"{' for ' + scope if scope else ''} where the warehouse holds {held_before}; "
            f"{outcome}. If the source really has nothing there, re-run with "
            "allow_mass_delete=true; otherwise check the source (tracking, sharing, range)."
        ),
        dedup_key=key,
        details={
            "source": request.source,
            "entity": request.entity.name,
            "subject": subject,
            "scope": scope,
            "warehouse_rows": held_before,
            "fetched": 0,
            "deleted": report.merge.soft_deleted,
        },
        now=now,
    )
