"""A delivery the gap resync cannot rebuild, planted as it happens in production: the HTTP
node was renamed in n8n, so an execution whose webhook was lost has no "Send to warehouse"
to read the payload from. It must end unrecoverable with one alert naming it, while the
lost deliveries of ordinary executions are still resynced."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from sync_platform.warehouse.platform_tables import sync_alerts, sync_gaps, webhook_inbox
from sync_platform_tests.dagster_runs import materializations, run_job

RENAMED = "HTTP Request"


def lost_check(result) -> bool:
    """Whether the run's `no_lost_deliveries` asset check passed."""
    (check,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.check_name == "no_lost_deliveries"
    ]
    return check.passed


def gap_status(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(sync_gaps.c.record_key, sync_gaps.c.status).where(
                sync_gaps.c.source == "n8n", sync_gaps.c.entity == "new_lead"
            )
        ).all()
    return dict(rows)


def test_a_lost_delivery_of_a_renamed_node_is_unrecoverable_and_the_others_are_resynced(
    source_env, n8n_receiver, engine
):
    simulator = source_env
    before = simulator.send_webhooks(n8n_receiver.url, "new_lead", 20, drop_rate=0.25, seed=11)
    planted = simulator.send_webhooks(
        n8n_receiver.url, "new_lead", 1, drop_rate=1.0, seed=12, send_node=RENAMED
    )
    after = simulator.send_webhooks(n8n_receiver.url, "new_lead", 20, drop_rate=0.25, seed=13)
    (lost,) = planted["dropped"]
    recoverable = set(before["dropped"]) | set(after["dropped"])
    assert before["dropped"] and after["dropped"]

    # Three checks: the configured gap_resync_max_attempts.
    runs = [run_job("n8n_gap_resync") for _ in range(3)]

    assert all(run.success for run in runs)
    first = materializations(runs[0])["n8n_delivery_gaps"]
    assert first["new_lead/missing"] == len(recoverable)  # deliveries read and put back
    assert first["new_lead/resynced"] == len(recoverable)
    assert [lost_check(run) for run in runs] == [True, True, False]
    assert gap_status(engine) == {lost: "unrecoverable"} | dict.fromkeys(recoverable, "resolved")
    with engine.connect() as connection:
        (alert,) = connection.execute(
            sa.select(sync_alerts).where(sync_alerts.c.type == "webhook_delivery_lost")
        ).all()
        resynced = set(
            connection.execute(
                sa.select(webhook_inbox.c.delivery_id).where(webhook_inbox.c.origin == "resync")
            ).scalars()
        )
    assert alert.severity == "high"
    assert alert.details == {
        "lost": [lost],
        "joined": [lost],
        "pruned": [],
        "unrecoverable": [lost],
        "arrived": {},
    }
    # Said as what it is: the configuration does not fit the workflow, naming its nodes.
    assert (
        f"cannot be resynced: {lost}; 1 new in this check (1 unreadable after 3 attempts: "
        f"webhooks.yaml does not fit: node 'Send to warehouse' (send_node) not found in "
        f"execution {lost}; its nodes are 'CRM webhook', 'Build payload', 'Sign', 'HTTP Request')"
        in alert.message
    )
    assert "fix send_node or payload there" in alert.message
    workflow_id = planted["workflow_id"]
    assert resynced == {f"n8n-{workflow_id}-{execution_id}" for execution_id in recoverable}
