"""Alerting under the daemon.

- `alert_rules_sensor`: the rules over the audit tables (consecutive failures, stale syncs,
  slow syncs, too many open gaps), then delivery of pending alerts to every configured
  channel. Raising is deduplicated and delivery retries what failed, so a tick that dies
  loses nothing — the one place a sensor writes, like Dagster's own alerting sensors.
- `check_failure_alert_sensor`: a failed asset check (a pandera schema, the property rule,
  in_step_with_source …) is a data-integrity alert until the check passes again.
- `record_run_failures` (defs/platform/sensors.py) raises the consecutive job failures alert.
"""

from datetime import UTC, datetime

import dagster as dg

from sync_platform.alerting import rules
from sync_platform.alerting.channels import configured_channels
from sync_platform.alerting.store import deliver_pending, raise_alert, resolve_alerts
from sync_platform.config import all_source_configs
from sync_platform.orchestration.resources import WarehouseResource

CHECK_SEVERITY = {"ERROR": "medium", "WARN": "warning"}


@dg.sensor(
    name="alert_rules_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the alert rules and delivers pending alerts.",
)
def alert_rules_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    engine = warehouse.get_engine()
    now = datetime.now(UTC)
    with engine.begin() as connection:
        counts = rules.apply(connection, rules.evaluate(connection, all_source_configs(), now), now)
    delivered = deliver_pending(engine, configured_channels())
    return dg.SkipReason(
        f"{counts['raised']} condition(s) alerting, {counts['resolved']} resolved; "
        f"{delivered['sent']} message(s) sent, {delivered['failed']} to retry"
    )


def check_alert(record, check_key: dg.AssetCheckKey):
    """(holds, severity, message) for a check's latest evaluation."""
    evaluation = record.evaluation if record else None
    if evaluation is None or evaluation.passed:
        return False, "medium", ""
    severity = CHECK_SEVERITY.get(evaluation.severity.value, "medium")
    text = evaluation.description or "see the check's metadata in the Dagster UI"
    return (
        True,
        severity,
        f"check {check_key.name} failed on {check_key.asset_key.to_user_string()}: {text}",
    )


@dg.sensor(
    name="check_failure_alert_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed asset check is a data-integrity alert until it passes again.",
)
def check_failure_alert_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    now = datetime.now(UTC)
    failing = 0
    with warehouse.get_engine().begin() as connection:
        for check_key in context.repository_def.asset_graph.asset_check_keys:
            record = context.instance.get_latest_asset_check_evaluation_record(check_key)
            holds, severity, message = check_alert(record, check_key)
            key = f"check_failed:{check_key.asset_key.to_user_string()}:{check_key.name}"
            if holds:
                failing += 1
                raise_alert(
                    connection,
                    severity=severity,
                    type="data_integrity",
                    message=message,
                    dedup_key=key,
                    details={"run_id": record.run_id},
                    now=now,
                )
            else:
                resolve_alerts(connection, key, now)
    return dg.SkipReason(f"{failing} failing check(s)")
