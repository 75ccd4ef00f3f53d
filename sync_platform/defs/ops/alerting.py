"""Alerting under the daemon: a sensor that decides, a run that acts.

- `alert_rules_sensor` reads: the rules over the audit tables (consecutive failures, stale
  and slow syncs, open gaps, missing backups), the latest evaluation of every asset check,
  failing op jobs, and the alerts due for delivery. When applying them would change
  something, it requests an `apply_alerts` run; it writes nothing and sends nothing, so a
  slow mail server or an unreachable warehouse cannot break its ticks.
- `apply_alerts` (the run) raises and resolves the alerts, records which sources are
  configured, then delivers what is due to every configured channel, in a bounded time; a
  channel that fails stays pending and is tried again later (alerting/store.py).

A source that is not configured raises nothing: its conditions, including its assets'
checks, never hold.
"""

import hashlib
from datetime import UTC, datetime

import dagster as dg
import sqlalchemy as sa

from sync_platform.alerting import rules
from sync_platform.alerting.abandoned import abandoned_runs, close_abandoned_runs
from sync_platform.alerting.channels import configured_channels
from sync_platform.alerting.sources import configured_since, record_configured
from sync_platform.alerting.store import deliver_due, deliveries_due
from sync_platform.config import all_source_configs
from sync_platform.orchestration.automation import sensor_interval
from sync_platform.orchestration.configuration import (
    required_env_by_source,
    unconfigured_sources,
)
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.orchestration.runs import unfinished
from sync_platform.orchestration.tags import (
    ALERTED_BY_METADATA,
    AREA_TAG,
    HEALING_METADATA,
    SOURCE_TAG,
)
from sync_platform.warehouse.connection import READ_ONLY

CHECK_SEVERITY = {"ERROR": "medium", "WARN": "warning"}
TAGS = {AREA_TAG: "alerting"}
RETRY_BUCKET_MINUTES = 10  # a decision whose run failed is asked for again after this
# Jobs whose failures are not alerted per job: the alerting machinery itself (it could not
# raise its own alert). Jobs that sync entities are counted per source and entity instead.
NOT_ALERTED_PER_JOB = {"apply_alerts", "record_run_failure"}


def _completed_evaluation(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, record):
    """The latest record of a check whose evaluation finished (a run that failed before
    evaluating it leaves only a planned record, which says nothing about the data)."""
    if record is None or isinstance(record.evaluation, dg.AssetCheckEvaluation):
        return record
    for earlier in instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=10
    ):
        if isinstance(earlier.evaluation, dg.AssetCheckEvaluation):
            return earlier
    return None


def _healing(evaluation: dg.AssetCheckEvaluation) -> bool:
    """The check says the platform is already healing what it saw (HEALING_METADATA), or
    that another alert type reports it (ALERTED_BY_METADATA)."""
    metadata = evaluation.metadata or {}
    value = metadata.get(HEALING_METADATA) or metadata.get(ALERTED_BY_METADATA)
    return bool(getattr(value, "value", value))


def check_conditions(
    instance: dg.DagsterInstance, repository: dg.RepositoryDefinition, unconfigured
) -> list[rules.Condition]:
    """A failed check is a data-integrity alert until it passes again, unless the check says
    the platform is already healing it (a gap being resynced: the resync either succeeds or
    ends in its own unrecovered-gap alert)."""
    graph = repository.asset_graph
    keys = sorted(graph.asset_check_keys, key=str)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    conditions = []
    for check_key in keys:
        source = graph.get(check_key.asset_key).tags.get(SOURCE_TAG)
        record = _completed_evaluation(instance, check_key, latest.get(check_key))
        evaluation = record.evaluation if record else None
        failed = evaluation is not None and not evaluation.passed and not _healing(evaluation)
        text = (evaluation.description if evaluation else None) or (
            "see the check's metadata in the Dagster UI"
        )
        conditions.append(
            rules.Condition(
                f"check_failed:{check_key.asset_key.to_user_string()}:{check_key.name}",
                failed and source not in unconfigured,
                CHECK_SEVERITY.get(evaluation.severity.value, "medium") if failed else "medium",
                "data_integrity",
                f"check {check_key.name} failed on {check_key.asset_key.to_user_string()}: {text}",
                {"run_id": record.run_id} if failed else {},
                source,
            )
        )
    return conditions


def op_job_conditions(
    instance: dg.DagsterInstance, repository: dg.RepositoryDefinition, limit: int
) -> list[rules.Condition]:
    """The last `limit` runs of a job that syncs no source entity (backups, restores, the
    health report, retention) all failed. A job that syncs entities is counted per source
    and entity instead (sync_runs), whichever job or sensor launched it."""
    entities = {name for source in all_source_configs() for name in source.entities}
    conditions = []
    for job in repository.get_all_jobs():
        if job.name.startswith("__") or job.name in NOT_ALERTED_PER_JOB:
            continue
        assets = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
        if assets & entities:
            continue
        latest = instance.get_runs(filters=dg.RunsFilter(job_name=job.name), limit=limit)
        holds = len(latest) == limit and all(
            run.status == dg.DagsterRunStatus.FAILURE for run in latest
        )
        conditions.append(
            rules.Condition(
                f"job_failures:{job.name}",
                holds,
                "high",
                "consecutive_failures",
                f"job {job.name}: the last {limit} runs failed. Open the latest in the Dagster "
                "UI; runbook: docs/operations.md",
                {"runs": [run.run_id for run in latest]} if holds else {},
            )
        )
    return conditions


def leased_entities() -> set[tuple[str, str]]:
    """Every configured (source, entity): their syncs hold a lease while they run (the n8n
    gap check's rows do not, and are not judged here)."""
    return {(source.source, name) for source in all_source_configs() for name in source.entities}


def all_conditions(
    connection: sa.Connection,
    instance: dg.DagsterInstance,
    repository: dg.RepositoryDefinition,
    now: datetime,
    since: dict[str, datetime],
) -> list[rules.Condition]:
    unconfigured = unconfigured_sources(repository)
    return [
        *rules.evaluate(
            connection,
            all_source_configs(),
            now,
            unconfigured=unconfigured,
            configured_since=since,
        ),
        *check_conditions(instance, repository, unconfigured),
        *op_job_conditions(instance, repository, rules.CONSECUTIVE_FAILURES.read(connection)),
    ]


def configured(repository: dg.RepositoryDefinition) -> list[str]:
    unconfigured = unconfigured_sources(repository)
    return [source for source in required_env_by_source(repository) if source not in unconfigured]


def pending_work(
    engine: sa.Engine, instance: dg.DagsterInstance, repository: dg.RepositoryDefinition
) -> list[str]:
    """What an `apply_alerts` run would do now (read only)."""
    now = datetime.now(UTC)
    with engine.connect().execution_options(**READ_ONLY) as connection, connection.begin():
        # A source configured since the last run counts from now (the run records it).
        since = {source: now for source in configured(repository)} | configured_since(connection)
        conditions = all_conditions(connection, instance, repository, now, since)
        work = rules.changes(connection, conditions, now)
        if abandoned := abandoned_runs(connection, now, leased_entities()):
            work.append(f"close {len(abandoned)} abandoned sync(s)")
        if due := deliveries_due(connection, now):
            work.append(f"deliver {due}")
    return work


def apply_alert_work(
    engine: sa.Engine, instance: dg.DagsterInstance, repository: dg.RepositoryDefinition
) -> tuple[dict[str, int], dict[str, int]]:
    """Raise and resolve alerts by the rules and the checks, then deliver what is due:
    ({"raised", "resolved"}, {"sent", "failed", "left"})."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        close_abandoned_runs(connection, leased_entities(), now)  # failures for the rules
        since = record_configured(connection, configured(repository), now)
        conditions = all_conditions(connection, instance, repository, now, since)
        counts = rules.apply(connection, conditions, now)
    return counts, deliver_due(engine, configured_channels(), now=now)


@dg.op(tags=TAGS, retry_policy=dg.RetryPolicy(max_retries=2, delay=30))
def raise_resolve_and_deliver(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    """Raise and resolve alerts by the rules and the checks, then deliver what is due."""
    counts, delivered = apply_alert_work(
        warehouse.ready_engine(), context.instance, context.repository_def
    )
    context.log.info(
        f"{counts['raised']} condition(s) alerting, {counts['resolved']} resolved; "
        f"{delivered['sent']} message(s) sent, {delivered['failed']} to retry later, "
        f"{delivered['left']} for the next round"
    )
    context.add_output_metadata({**counts, **delivered})


@dg.job(
    tags=TAGS, description="Raise, resolve and deliver alerts (requested by alert_rules_sensor)."
)
def apply_alerts():
    raise_resolve_and_deliver()


@dg.sensor(
    name="alert_rules_sensor",
    job=apply_alerts,
    minimum_interval_seconds=sensor_interval(60),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Decides whether alerts must be raised, resolved or delivered, and requests an "
    "apply_alerts run when so (reads only).",
)
def alert_rules_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.RunRequest | dg.SkipReason:
    if unfinished(context.instance, apply_alerts.name):
        return dg.SkipReason("an apply_alerts run is in progress")
    work = pending_work(warehouse.get_engine(), context.instance, context.repository_def)
    if not work:
        return dg.SkipReason("nothing to raise, resolve or deliver")
    digest = hashlib.sha256("\n".join(sorted(work)).encode()).hexdigest()[:16]
    bucket = int(datetime.now(UTC).timestamp() // (RETRY_BUCKET_MINUTES * 60))
    context.log.info(f"alert work: {', '.join(sorted(work)[:20])}")
    return dg.RunRequest(run_key=f"alerts:{digest}:{bucket}", tags=TAGS)
