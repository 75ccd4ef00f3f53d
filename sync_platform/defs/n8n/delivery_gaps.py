"""Delivery gaps: executions n8n ran successfully whose webhook never reached the inbox.

For each workflow: list its successful executions of the lookback window from the n8n API,
compare with the execution ids the inbox carries, and for each missing one fetch its run
data, extract the payload its send node sent and insert it into the inbox as a `resync`
delivery (the same delivery id the webhook had, so a late original is a duplicate, not a
second event). Gaps are kept in `sync_gaps` (source `n8n`, entity = workflow key, key =
execution id) so attempts are counted across runs; a delivery that cannot be recovered, or
that n8n has already pruned, raises one high alert naming the executions.

This runs as a scheduled asset (`n8n_delivery_gaps`), never in a sensor: it writes, and a
failed sensor tick drops its cursor. It is plain Python over the n8n client, the inbox and
the engine's gap and audit records; the asset around it lives in assets.py.
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
from sync_platform.config.webhooks import DEFAULT_SEND_NODE, load_webhooks_config
from sync_platform.engine import audit, gaps
from sync_platform.inbox.queries import received_execution_ids, where_delivery_is
from sync_platform.inbox.store import store_resynced
from sync_platform.sources.n8n.api import (
    WORKFLOW_ID_ENV_PREFIX,
    N8nApiClient,
    PayloadNotFound,
    sent_payload,
    stopped_at,
)

log = logging.getLogger(__name__)
GAP_SOURCE = "n8n"  # sync_gaps.source of delivery gaps (resynced here, not by sync_gap_sensor)
MAX_IDS_IN_ALERT = 50


@dataclass
class WorkflowGaps:
    workflow_key: str
    listed: int = 0
    missing: list[str] = field(default_factory=list)
    resynced: list[str] = field(default_factory=list)
    rejected_at_receiver: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    unrecoverable: list[str] = field(default_factory=list)
    retrying: dict[str, str] = field(default_factory=dict)  # execution id → why not yet

    def summary(self) -> str:
        parts = [f"{self.listed} executions listed", f"{len(self.missing)} missing"]
        parts.append(f"{len(self.resynced)} resynced")
        if self.rejected_at_receiver:
            parts.append(f"{len(self.rejected_at_receiver)} kept as rejected by the receiver")
        if self.retrying:
            parts.append(f"{len(self.retrying)} to retry")
        if self.pruned:
            parts.append(f"{len(self.pruned)} pruned by n8n (lost)")
        if self.unrecoverable:
            parts.append(f"{len(self.unrecoverable)} unrecoverable (lost)")
        return ", ".join(parts)


def _alert_lost(connection: sa.Connection, result: WorkflowGaps, max_attempts: int, now) -> None:
    """One alert per workflow naming every delivery lost so far (the union across runs, kept
    in `sync_gaps` as unrecoverable), notified again whenever new ones join it."""
    joined = sorted(result.pruned + result.unrecoverable)
    if not joined:
        return
    lost = gaps.lost_keys(connection, GAP_SOURCE, result.workflow_key)
    shown = ", ".join(lost[:MAX_IDS_IN_ALERT])
    more = f" (+{len(lost) - MAX_IDS_IN_ALERT} more)" if len(lost) > MAX_IDS_IN_ALERT else ""
    reasons = []
    if result.pruned:
        reasons.append(f"{len(result.pruned)} already pruned by n8n")
    if result.unrecoverable:
        reasons.append(f"{len(result.unrecoverable)} unreadable after {max_attempts} attempts")
    raise_alert(
        connection,
        severity="high",
        type="webhook_delivery_lost",
        message=(
            f"n8n workflow {result.workflow_key}: {len(lost)} successful execution(s) never "
            f"reached the inbox and cannot be resynced: {shown}{more}; {len(joined)} new in "
            f"this check ({'; '.join(reasons)}). Recover the events from the sending system, "
            "or re-run those executions in n8n; see docs/sources/n8n.md, 'Gap resync and "
            "alerts'."
        ),
        dedup_key=f"webhook_delivery_lost:{result.workflow_key}",
        details={
            "lost": lost,
            "joined": joined,
            "pruned": result.pruned,
            "unrecoverable": result.unrecoverable,
        },
        now=now,
        notify=True,
    )


def resync_workflow(
    engine: sa.Engine,
    client: N8nApiClient,
    *,
    workflow_key: str,
    n8n_workflow_id: str,
    lookback: timedelta,
    max_attempts: int,
    sync_run_id: int,
    send_node: str = DEFAULT_SEND_NODE,
    now: datetime | None = None,
) -> WorkflowGaps:
    now = now or datetime.now(UTC)
    result = WorkflowGaps(workflow_key)
    listed: list[str] = []
    for execution in client.executions(n8n_workflow_id):
        finished = stopped_at(execution)
        if finished is not None and finished < now - lookback:
            break  # newest first: everything after this is older still
        listed.append(str(execution["id"]))
    result.listed = len(listed)
    with engine.begin() as connection:
        received = received_execution_ids(connection, workflow_key, listed)
        result.missing = [execution_id for execution_id in listed if execution_id not in received]
        gaps.record_gaps(
            connection,
            source=GAP_SOURCE,
            entity=workflow_key,
            missing=result.missing,
            settled=sorted(received),
            sync_run_id=sync_run_id,
            now=now,
        )
        # Gaps of earlier checks may have left the listing (older than the lookback, or
        # pruned): they are tried too, by id.
        candidates = sorted(gaps.open_gaps(connection, GAP_SOURCE, workflow_key))
    if candidates:
        gaps.record_attempt(
            engine, source=GAP_SOURCE, entity=workflow_key, keys=candidates, now=now
        )
    for execution_id in candidates:
        _resync_one(engine, client, result, execution_id, send_node, now)
    with engine.begin() as connection:
        where = {"source": GAP_SOURCE, "entity": workflow_key}
        gaps.record_gaps(
            connection,
            **where,
            missing=[],
            settled=result.resynced + result.rejected_at_receiver,
            sync_run_id=sync_run_id,
            now=now,
        )
        gaps.mark_unrecoverable(connection, **where, keys=result.pruned)
        result.unrecoverable = gaps.take_exhausted(
            connection, **where, missing=list(result.retrying), max_attempts=max_attempts
        )
        _alert_lost(connection, result, max_attempts, now)
    return result


def _resync_one(
    engine: sa.Engine,
    client: N8nApiClient,
    result: WorkflowGaps,
    execution_id: str,
    send_node: str,
    now: datetime,
) -> None:
    execution = client.execution(execution_id)
    if execution is None:
        result.pruned.append(execution_id)
        return
    try:
        payload = sent_payload(execution, send_node)
    except PayloadNotFound as exc:
        result.retrying[execution_id] = str(exc)
        log.warning("n8n execution %s: cannot extract its payload: %s", execution_id, exc)
        return
    with engine.begin() as connection:
        where = where_delivery_is(connection, payload.delivery_id)
        if where == "rejected":
            result.rejected_at_receiver.append(execution_id)
            return
        if where is None:
            store_resynced(
                connection,
                delivery_id=payload.delivery_id,
                workflow_key=result.workflow_key,
                execution_id=execution_id,
                body=payload.body,
                now=now,
            )
    result.resynced.append(execution_id)


@dataclass(frozen=True)
class GapTarget:
    """A workflow whose deliveries are checked: its receiver key, its id in n8n, and the
    node whose input item is the payload it sends."""

    workflow_key: str
    n8n_workflow_id: str
    send_node: str = DEFAULT_SEND_NODE


def check_workflow(
    engine: sa.Engine,
    client: N8nApiClient,
    target: GapTarget,
    *,
    lookback: timedelta,
    max_attempts: int,
    trigger: str,
    dagster_run_id: str | None,
) -> WorkflowGaps:
    """One workflow's check, audited as a sync run (source `n8n`, entity = workflow key):
    fetched = executions listed, inserted = deliveries resynced."""
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
            workflow_key=target.workflow_key,
            n8n_workflow_id=target.n8n_workflow_id,
            lookback=lookback,
            max_attempts=max_attempts,
            sync_run_id=sync_run_id,
            send_node=target.send_node,
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
    lost = len(result.pruned) + len(result.unrecoverable)
    with engine.begin() as connection:
        audit.update_sync_run(
            connection,
            sync_run_id,
            status="warning" if lost or result.retrying else "succeeded",
            finished_at=audit.utcnow(),
            fetched=result.listed,
            inserted=len(result.resynced),
            failed=lost,
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
            targets.append(GapTarget(key, workflow_id, workflow.send_node))
        else:
            problems.append(f"{key}: set {id_env} to check its deliveries")
    return targets, problems, not_configured
