"""The reconciliation as an operator runs it: the `dealer_reconciliation_job` (metadata that
plots, the top discrepancies, the report files, the high-severity check, the alert of a
scheduled run) and the `dealer_reconciliation_resolve` job filled in from run config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from sync_platform.definitions import defs
from sync_platform.defs.ops.alerting import check_conditions
from sync_platform.warehouse.platform_tables import reconciliation_actions, sync_alerts
from sync_platform_tests.dagster_runs import check_results, materializations, run_job
from sync_platform_tests.test_reconciliation import _plant

SCHEDULED = {"dagster/schedule_name": "dealer_reconciliation_weekly"}


def _alerts(engine) -> list:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(sync_alerts).where(sync_alerts.c.type == "reconciliation_discrepancies")
            )
        )


def test_the_job_reports_every_class_and_fails_its_check_on_high_severity(synced, simulator):
    engine, _ = synced
    _, _, severities = _plant(engine, simulator)

    instance = dg.DagsterInstance.ephemeral()
    result = run_job("dealer_reconciliation_job", tags=SCHEDULED, instance=instance)

    assert result.success
    found = materializations(result)["dealer_reconciliation"]
    levels = list(severities.values())
    assert (found["open_high"], found["open_medium"], found["open_low"]) == (
        levels.count("high"),
        levels.count("medium"),
        levels.count("low"),
    )
    assert found["open_missing"] == 2 and found["open_extra"] == 1
    assert found["open_status_mismatch"] == 1 and found["new"] == len(severities)
    assert found["dealer_stock/pending"] == 1
    for key in severities:
        assert f"`{key}`" in found["top_discrepancies"]
    assert all(Path(found[f"report_{fmt}"]).is_file() for fmt in ("csv", "json", "html"))
    assert check_results(result)["dealer_reconciliation:no_high_severity_discrepancies"] is False
    (alert,) = _alerts(engine)
    assert alert.status == "open" and alert.severity == "high"
    assert alert.details["open"] == len(severities)
    # The failed check is reported by that alert, which closes when the discrepancies are
    # resolved outside Dagster; a check_failed alert would stay until next week's run.
    conditions = check_conditions(instance, defs().get_repository_def(), set())
    named = {c.dedup_key: c for c in conditions}
    assert not named["check_failed:dealer_reconciliation:no_high_severity_discrepancies"].holds


def test_a_manual_run_raises_no_alert_and_a_clean_scheduled_run_closes_it(synced, simulator):
    engine, _ = synced
    _plant(engine, simulator)
    assert run_job("dealer_reconciliation_job").success
    assert _alerts(engine) == []
    assert run_job("dealer_reconciliation_job", tags=SCHEDULED).success
    assert [a.status for a in _alerts(engine)] == ["open"]

    resolve = {
        "ops": {
            "resolve_discrepancies": {
                "config": {"action": "take_source", "severities": ["high", "medium", "low"]}
            }
        }
    }
    done = run_job(
        "dealer_reconciliation_resolve",
        run_config=resolve,
        tags={"sync_platform/requested_by": "ana@dealer"},
    )
    assert done.success
    assert [a.status for a in _alerts(engine)] == ["resolved"]  # nothing open any more
    assert run_job("dealer_reconciliation_job", tags=SCHEDULED).success
    assert [a.status for a in _alerts(engine)] == ["resolved"]
    with engine.connect() as connection:
        actors = {a.actor for a in connection.execute(sa.select(reconciliation_actions))}
    assert actors == {"ana@dealer"}


def test_the_resolve_job_refuses_to_act_on_everything_unasked(synced, simulator):
    engine, _ = synced
    _plant(engine, simulator)
    assert run_job("dealer_reconciliation_job").success
    result = run_job(
        "dealer_reconciliation_resolve",
        run_config={"ops": {"resolve_discrepancies": {"config": {"action": "take_source"}}}},
    )
    assert not result.success
    with engine.connect() as connection:
        assert connection.execute(sa.select(reconciliation_actions)).first() is None
