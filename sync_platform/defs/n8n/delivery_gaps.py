"""Delivery gaps: deliveries n8n sent whose webhook never reached the inbox, put back from the
n8n executions API; and executions that failed, reported (and resent where so configured).

For each workflow: list its executions of the lookback window (n8n's retention by default)
and read each one not read before, once: its deliveries (one per item of its payload node,
where webhooks.yaml says; sources/n8n/deliveries.py) are compared with the inbox by delivery
id, and each missing one is inserted as a `resync` delivery with the id the webhook had (a late
original is then a duplicate, not a second event). An execution read this way is remembered
(`n8n_checked_executions`) and not read again. A workflow that sends one delivery per execution
(`items: one`) is cheaper: an execution with a delivery in the inbox is complete unread.

An execution that cannot be read is a gap in `sync_gaps` (source `n8n`, entity = workflow
key, key = execution id), tried again by later checks up to `gap_resync_max_attempts`; one
that n8n pruned first, or whose attempts ran out, is lost: one alert per workflow names every
lost execution. Error executions are read too: where they failed, and what they had built,
is reported in one alert per workflow; with `resend_failed` what was built goes to the inbox.

This runs as a scheduled asset (`n8n_delivery_gaps`), never in a sensor: it writes, and a
failed sensor tick drops its cursor. The asset around it lives in assets.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from sync_platform.alerting.store import raise_alert
from sync_platform.config.webhooks import WorkflowConfig, load_webhooks_config
from sync_platform.engine import audit, gaps
from sync_platform.inbox import checked_executions
from sync_platform.inbox.checked_executions import Checked
from sync_platform.inbox.queries import received_execution_ids, where_deliveries_are
from sync_platform.inbox.store import store_resynced
from sync_platform.sources.n8n.api import WORKFLOW_ID_ENV_PREFIX, N8nApiClient, stopped_at
from sync_platform.sources.n8n.deliveries import (
    ExecutionRead,
    PayloadMisconfigured,
    PayloadNotFound,
    read_execution,
)
from sync_platform.warehouse.platform_tables import webhook_inbox

log = logging.getLogger(__name__)
GAP_SOURCE = "n8n"  # sync_gaps.source of delivery gaps (resynced here, not by sync_gap_sensor)
MAX_IDS_IN_ALERT = 50
MISFIT = "webhooks.yaml does not fit: "
DEFAULT_MAX_READS = 2000  # executions read from n8n per workflow and check; the rest wait


@dataclass(frozen=True)
class GapTarget:
    """A workflow whose deliveries are checked: its receiver key, its id in n8n, and where its
    deliveries are in an execution (its webhooks.yaml entry)."""

    workflow_key: str
    n8n_workflow_id: str
    config: WorkflowConfig = field(default_factory=WorkflowConfig)


@dataclass
class WorkflowGaps:
    workflow_key: str
    listed: int = 0  # successful executions in the lookback window
    read: int = 0  # executions read from n8n in this check
    deferred: int = 0  # left for the next check (max_reads)
    missing: list[str] = field(default_factory=list)  # delivery ids not in the inbox
    resynced: list[str] = field(default_factory=list)  # delivery ids put into the inbox
    rejected_at_receiver: list[str] = field(default_factory=list)  # delivery ids kept refused
    pruned: list[str] = field(default_factory=list)  # execution ids n8n no longer has
    unrecoverable: list[str] = field(default_factory=list)  # execution ids, attempts used up
    retrying: dict[str, str] = field(default_factory=dict)  # execution id → why not yet
    arrived: dict[str, list[str]] = field(default_factory=dict)  # lost execution → ids in
    failed: dict[str, str] = field(default_factory=dict)  # error execution → where, why
    resent: list[str] = field(default_factory=list)  # delivery ids of failed executions
    misconfigured: str | None = None  # the first configuration problem met
    unchecked_period: tuple[datetime, datetime] | None = None

    def summary(self) -> str:
        parts = [f"{self.listed} executions listed", f"{self.read} read"]
        parts += [f"{len(self.missing)} deliveries missing", f"{len(self.resynced)} resynced"]
        if self.deferred:
            parts.append(f"{self.deferred} executions left for the next check")
        if self.rejected_at_receiver:
            parts.append(f"{len(self.rejected_at_receiver)} kept as rejected by the receiver")
        if self.retrying:
            parts.append(f"{len(self.retrying)} executions to retry")
        if self.pruned:
            parts.append(f"{len(self.pruned)} executions pruned by n8n (lost)")
        if self.unrecoverable:
            parts.append(f"{len(self.unrecoverable)} executions unrecoverable (lost)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed executions ({len(self.resent)} resent)")
        if self.misconfigured:
            parts.append(f"webhooks.yaml does not fit the workflow: {self.misconfigured}")
        if self.unchecked_period:
            start, end = (moment.isoformat(timespec="minutes") for moment in self.unchecked_period)
            parts.append(
                f"executions that finished between {start} and {end} could not be checked: "
                "n8n no longer lists them"
            )
        return "; ".join(parts)

    @property
    def lost(self) -> list[str]:
        return sorted(self.pruned + self.unrecoverable, key=_numeric)


def _numeric(execution_id: str) -> tuple[int, str]:
    return (int(execution_id), "") if execution_id.isdigit() else (0, execution_id)


def _listed(
    client: N8nApiClient, n8n_workflow_id: str, status: str, since: datetime
) -> dict[str, datetime | None]:
    """Executions of one status that finished since `since`: id → when, newest first."""
    listed: dict[str, datetime | None] = {}
    for execution in client.executions(n8n_workflow_id, status=status):
        finished = stopped_at(execution)
        if finished is not None and finished < since:
            break  # newest first: everything after this is older still
        listed[str(execution["id"])] = finished
    return listed


def _unchecked_period(
    connection: sa.Connection, workflow_key: str, since: datetime
) -> tuple[datetime, datetime] | None:
    """The time before `since` that no check covered: since the previous check began (or,
    on a first check, since the workflow's first delivery), when that is before `since`."""
    previous = audit.last_good_start(connection, GAP_SOURCE, workflow_key)
    if previous is None:
        previous = connection.execute(
            sa.select(webhook_inbox.c.received_at)
            .where(webhook_inbox.c.workflow_key == workflow_key)
            .order_by(webhook_inbox.c.received_at)
            .limit(1)
        ).scalar()
    if previous is None:
        return None
    previous = previous if previous.tzinfo else previous.replace(tzinfo=UTC)
    return (previous, since) if previous < since else None


def resync_workflow(
    engine: sa.Engine,
    client: N8nApiClient,
    target: GapTarget,
    *,
    lookback: timedelta,
    max_attempts: int,
    sync_run_id: int,
    max_reads: int = DEFAULT_MAX_READS,
    now: datetime | None = None,
) -> WorkflowGaps:
    now = now or datetime.now(UTC)
    key, config = target.workflow_key, target.config
    result = WorkflowGaps(key)
    since = now - lookback
    listed = _listed(client, target.n8n_workflow_id, "success", since)
    errored = _listed(client, target.n8n_workflow_id, "error", since)
    result.listed = len(listed)
    where = {"source": GAP_SOURCE, "entity": key}
    with engine.begin() as connection:
        result.unchecked_period = _unchecked_period(connection, key, since)
        done = checked_executions.checked_ids(connection, key, [*listed, *errored])
        tracked = gaps.tracked_keys(connection, **where)
        unread = [e for e in listed if e not in done and e not in tracked]
        if config.items == "one":  # a delivery in the inbox: the execution is complete
            received = received_execution_ids(connection, key, unread)
            checked_executions.remember(
                connection, key, (Checked(e, "complete", 1, listed[e]) for e in received), now
            )
            unread = [e for e in unread if e not in received]
            gaps.record_gaps(
                connection, **where, missing=unread, settled=[], sync_run_id=sync_run_id, now=now
            )
        retries = sorted(gaps.open_gaps(connection, **where), key=_numeric)
    # Gaps first (they may have left the listing), then the oldest unread: nearest to pruning.
    queue = retries + [e for e in reversed(unread) if e not in set(retries)]
    queue += [e for e in reversed(errored) if e not in done and e not in tracked]
    result.deferred = max(0, len(queue) - max_reads)
    queue = queue[:max_reads]
    gaps.record_attempt(engine, **where, keys=[e for e in queue if e in set(retries)], now=now)
    settled: list[str] = []
    for execution_id in queue:
        result.read += 1
        if execution_id in errored:
            _read_failed(engine, client, target, result, execution_id, errored[execution_id], now)
        elif _read_one(engine, client, target, result, execution_id, listed.get(execution_id), now):
            settled.append(execution_id)
    known = tracked.keys() | set(retries)
    with engine.begin() as connection:
        new_gaps = [e for e in [*result.pruned, *result.retrying] if e not in known]
        gaps.record_gaps(
            connection, **where, missing=new_gaps, settled=[], sync_run_id=sync_run_id, now=now
        )
        fresh = [e for e in result.retrying if e not in known]  # read once already
        gaps.count_attempt(connection, **where, keys=fresh, now=now)
        gaps.record_gaps(
            connection, **where, missing=[], settled=settled, sync_run_id=sync_run_id, now=now
        )
        gaps.mark_unrecoverable(connection, **where, keys=result.pruned)
        result.unrecoverable = gaps.take_exhausted(
            connection, **where, missing=list(result.retrying), max_attempts=max_attempts
        )
        _note_arrivals(connection, result)
        _alert_lost(connection, result, max_attempts, now)
        _alert_failed(connection, result, config, now)
        checked_executions.forget_before(connection, since - timedelta(days=1))
    return result


def _read_one(
    engine: sa.Engine,
    client: N8nApiClient,
    target: GapTarget,
    result: WorkflowGaps,
    execution_id: str,
    finished: datetime | None,
    now: datetime,
) -> bool:
    """Read one successful execution and put what the inbox lacks into it; True when every
    delivery it sent is now accounted for."""
    execution = client.execution(execution_id)
    if execution is None:
        result.pruned.append(execution_id)
        return False
    read = _read(target, result, execution_id, execution)
    if read is None:
        return False
    if target.config.items == "one" and len(read.deliveries) > 1:
        log.warning(
            "n8n workflow %s sent %d deliveries in execution %s: set `items: many` in "
            "webhooks.yaml, or deliveries lost from executions with one arrived go unnoticed",
            target.workflow_key,
            len(read.deliveries),
            execution_id,
        )
    with engine.begin() as connection:
        _put_back(connection, target.workflow_key, execution_id, read, result, now)
        checked_executions.remember(
            connection,
            target.workflow_key,
            [Checked(execution_id, "complete", len(read.deliveries), finished)],
            now,
        )
    return True


def _read(
    target: GapTarget, result: WorkflowGaps, execution_id: str, execution: dict
) -> ExecutionRead | None:
    try:
        return read_execution(
            execution, send_node=target.config.send_node, payload=target.config.payload
        )
    except PayloadMisconfigured as exc:
        result.misconfigured = result.misconfigured or str(exc)
        result.retrying[execution_id] = f"{MISFIT}{exc}"
    except PayloadNotFound as exc:
        result.retrying[execution_id] = str(exc)
    log.warning(
        "n8n workflow %s: cannot read execution %s: %s",
        target.workflow_key,
        execution_id,
        result.retrying[execution_id],
    )
    return None


def _put_back(
    connection: sa.Connection,
    workflow_key: str,
    execution_id: str,
    read: ExecutionRead,
    result: WorkflowGaps,
    now: datetime,
) -> list[str]:
    """Insert the execution's deliveries the inbox lacks; their ids."""
    where = where_deliveries_are(connection, [d.delivery_id for d in read.deliveries])
    put = []
    for delivery in read.deliveries:
        if where.get(delivery.delivery_id) == "rejected":
            result.rejected_at_receiver.append(delivery.delivery_id)
        elif delivery.delivery_id not in where:
            store_resynced(
                connection,
                delivery_id=delivery.delivery_id,
                workflow_key=workflow_key,
                execution_id=execution_id,
                body=delivery.body,
                now=now,
            )
            put.append(delivery.delivery_id)
    if read.failed_node is None:
        result.missing += put
        result.resynced += put
    return put


def _read_failed(
    engine: sa.Engine,
    client: N8nApiClient,
    target: GapTarget,
    result: WorkflowGaps,
    execution_id: str,
    finished: datetime | None,
    now: datetime,
) -> None:
    """Read one error execution: where it failed is reported; what it built is resent when
    the workflow says so."""
    execution = client.execution(execution_id)
    read: ExecutionRead | None = None
    if execution is None:
        reason = "pruned by n8n before it could be read"
    else:
        try:
            read = read_execution(
                execution, send_node=target.config.send_node, payload=target.config.payload
            )
            reason = read.failure
        except PayloadNotFound as exc:
            reason = f"failed; what it built cannot be read: {exc}"
    status = "failed"
    with engine.begin() as connection:
        if read is not None and read.deliveries and target.config.resend_failed:
            sent = _put_back(connection, target.workflow_key, execution_id, read, result, now)
            result.resent += sent
            status = "resent"
            reason += f" (resent {len(sent)} of its {len(read.deliveries)} deliveries)"
        elif read is not None and read.deliveries:
            reason += f" (its payload was built: {len(read.deliveries)} deliveries)"
        checked_executions.remember(
            connection,
            target.workflow_key,
            [Checked(execution_id, status, len(read.deliveries) if read else 0, finished, reason)],
            now,
        )
    result.failed[execution_id] = reason


def _note_arrivals(connection: sa.Connection, result: WorkflowGaps) -> None:
    """For each execution lost in this check, the deliveries of it that did arrive."""
    lost = result.pruned + result.unrecoverable
    if not lost:
        return
    rows = connection.execute(
        sa.select(webhook_inbox.c.execution_id, webhook_inbox.c.delivery_id).where(
            webhook_inbox.c.workflow_key == result.workflow_key,
            webhook_inbox.c.execution_id.in_(lost),
        )
    )
    for execution_id, delivery_id in rows:
        result.arrived.setdefault(execution_id, []).append(delivery_id)


def _alert_lost(connection: sa.Connection, result: WorkflowGaps, max_attempts: int, now) -> None:
    """One alert per workflow naming every execution lost so far (the union across runs, kept
    in `sync_gaps` as unrecoverable), notified again whenever new ones join it."""
    joined = result.lost
    if not joined:
        return
    lost = sorted(gaps.lost_keys(connection, GAP_SOURCE, result.workflow_key), key=_numeric)
    shown = ", ".join(lost[:MAX_IDS_IN_ALERT])
    more = f" (+{len(lost) - MAX_IDS_IN_ALERT} more)" if len(lost) > MAX_IDS_IN_ALERT else ""
    reasons = []
    if result.pruned:
        reasons.append(f"{len(result.pruned)} already pruned by n8n")
    if result.unrecoverable:
        why = "; ".join(sorted({result.retrying[e] for e in result.unrecoverable}))[:500]
        reasons.append(
            f"{len(result.unrecoverable)} unreadable after {max_attempts} attempts: {why}"
        )
    advice = "Recover the events from the sending system, or re-run those executions in n8n; "
    if any(result.retrying[e].startswith(MISFIT) for e in result.unrecoverable):
        advice = (
            "Where webhooks.yaml does not fit the workflow, fix send_node or payload there "
            "(docs/sources/n8n.md, 'Workflows built another way'); " + advice
        )
    partly = [e for e in joined if e in result.arrived]
    if partly:
        reasons.append(f"of {', '.join(partly[:10])} some deliveries did arrive")
    raise_alert(
        connection,
        severity="high",
        type="webhook_delivery_lost",
        message=(
            f"n8n workflow {result.workflow_key}: {len(lost)} execution(s) whose deliveries "
            f"did not all reach the inbox cannot be resynced: {shown}{more}; {len(joined)} new in "
            f"this check ({'; '.join(reasons)}). {advice}see docs/sources/n8n.md, 'Gap "
            "resync and alerts'."
        ),
        dedup_key=f"webhook_delivery_lost:{result.workflow_key}",
        details={
            "lost": lost,
            "joined": joined,
            "pruned": sorted(result.pruned, key=_numeric),
            "unrecoverable": result.unrecoverable,
            "arrived": result.arrived,
        },
        now=now,
        notify=True,
    )


def _alert_failed(
    connection: sa.Connection, result: WorkflowGaps, config: WorkflowConfig, now
) -> None:
    """One alert per workflow naming its failed executions n8n still holds, notified again
    when new ones join; high while one of them sent nothing that was resent."""
    if not result.failed:
        return
    remembered = checked_executions.failed(connection, result.workflow_key)
    failed = sorted(remembered, key=_numeric)
    unsent = [e for e in failed if remembered[e][0] == "failed"]
    listed = "; ".join(f"{e} {remembered[e][1]}" for e in failed[:10])
    more = f" (+{len(failed) - 10} more)" if len(failed) > 10 else ""
    advice = (
        "Fix the cause in n8n and retry those executions (n8n: Executions → Retry)"
        + ("" if config.resend_failed else ", or set resend_failed: true in webhooks.yaml to "
           "resend what a failed execution built")
    )  # fmt: skip
    raise_alert(
        connection,
        severity="high" if unsent else "warning",
        type="n8n_execution_failed",
        message=(
            f"n8n workflow {result.workflow_key}: {len(failed)} execution(s) failed "
            f"({len(unsent)} not resent): {listed}{more}. {advice}; see docs/sources/n8n.md, "
            "'Failed executions'."
        )[:4000],
        dedup_key=f"n8n_execution_failed:{result.workflow_key}",
        details={
            "failed": failed,
            "not_resent": unsent,
            "joined": sorted(result.failed, key=_numeric),
            "resent_deliveries": result.resent,
        },
        now=now,
        notify=True,
    )


def check_workflow(
    engine: sa.Engine,
    client: N8nApiClient,
    target: GapTarget,
    *,
    lookback: timedelta,
    max_attempts: int,
    trigger: str,
    dagster_run_id: str | None,
    max_reads: int = DEFAULT_MAX_READS,
) -> WorkflowGaps:
    """One workflow's check, audited as a sync run (source `n8n`, entity = workflow key):
    fetched = executions listed, inserted = deliveries resynced or resent."""
    sync_run_id = audit.start_sync_run(
        engine,
        source=GAP_SOURCE,
        entity=target.workflow_key,
        trigger=trigger,
        dagster_run_id=dagster_run_id,
        partition_key=None,
    )
    started = time.monotonic()
    try:
        result = resync_workflow(
            engine,
            client,
            target,
            lookback=lookback,
            max_attempts=max_attempts,
            sync_run_id=sync_run_id,
            max_reads=max_reads,
        )
    except Exception as exc:
        with engine.begin() as connection:
            audit.update_sync_run(
                connection,
                sync_run_id,
                status="failed",
                finished_at=audit.utcnow(),
                failed=1,
                message=str(exc),
            )
        raise
    trouble = result.lost or result.retrying or result.failed or result.unchecked_period
    with engine.begin() as connection:
        audit.update_sync_run(
            connection,
            sync_run_id,
            status="warning" if trouble else "succeeded",
            finished_at=audit.utcnow(),
            fetched=result.listed,
            inserted=len(result.resynced) + len(result.resent),
            failed=len(result.lost) + len(result.failed),
            gap_count=len(result.missing),
            phase_seconds={"check": round(time.monotonic() - started, 4)},
            message=result.summary(),
        )
    return result


def gap_targets(
    environ: Mapping[str, str] | None = None,
) -> tuple[list[GapTarget], list[str], list[str]]:
    """Workflows to check (the enabled ones of webhooks.yaml, their n8n ids from the
    environment); the problems of configured ones that cannot be (no id in n8n); and the
    workflows not configured here (no secret: the receiver takes none of their deliveries,
    so there is nothing to compare), which are not a problem."""
    environ = os.environ if environ is None else environ
    targets, problems, not_configured = [], [], []
    for key, workflow in load_webhooks_config().enabled().items():
        secret_env = workflow.secret_variable(key)
        id_env = workflow.n8n_workflow_id_env or WORKFLOW_ID_ENV_PREFIX + key.upper()
        if not environ.get(secret_env):
            not_configured.append(key)
        elif workflow_id := environ.get(id_env):
            targets.append(GapTarget(key, workflow_id, workflow))
        else:
            problems.append(f"{key}: set {id_env} to check its deliveries")
    return targets, problems, not_configured
