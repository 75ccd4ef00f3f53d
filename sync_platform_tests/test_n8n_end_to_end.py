"""n8n → receiver → inbox → webhook_inbox_sensor → event tables, and the gap resync that
brings back what never arrived: every successful execution ends up exactly once."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import sqlalchemy as sa

from sync_platform.definitions import build_definitions
from sync_platform.defs.n8n.schedules import webhook_inbox_safety_net
from sync_platform.defs.n8n.sensors import webhook_inbox_sensor
from sync_platform.errors import ConfigurationError
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.runtime_config import set_setting
from sync_platform.warehouse.platform_tables import sync_alerts, sync_gaps, webhook_inbox
from sync_platform_tests.dagster_runs import materializations, run_job, run_requested

TABLE = {
    "form_submission": "webhook_form_submissions",
    "new_lead": "webhook_new_leads",
    "order_update": "webhook_order_updates",
}


def sensor_tick(warehouse_url: str, cursor: str | None = None, instance=None):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
    )
    return webhook_inbox_sensor(context), context


def event_ids(engine: sa.Engine, workflow: str) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(sa.text(f"SELECT event_id FROM {TABLE[workflow]}")).scalars()
        )


def sent_event_ids(simulator, workflow: str) -> set[str]:
    return {
        e["event"]["eventId"]
        for e in simulator.n8n("GET", "/executions")
        if e["workflow_key"] == workflow and e["status"] == "success"
    }


def inbox_status(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(webhook_inbox.c.status, sa.func.count()).group_by(webhook_inbox.c.status)
        ).all()
    return dict(rows)


def test_thousand_deliveries_with_duplicates_and_drops_are_processed_exactly_once(
    source_env, n8n_receiver, warehouse_url, engine
):
    simulator = source_env
    report = simulator.send_webhooks(
        n8n_receiver.url, "new_lead", 1000, duplicate_rate=0.1, drop_rate=0.05, seed=3,
        concurrency=16,
    )  # fmt: skip
    shop = simulator.send_webhooks(n8n_receiver.url, "order_update", 40, drop_rate=0.1, seed=4)
    assert len(report["dropped"]) > 20 and len(report["duplicated"]) > 50
    assert shop["dropped"]

    result, _ = sensor_tick(warehouse_url)
    (request,) = result.run_requests
    assert set(request.asset_selection) == {
        dg.AssetKey("webhook_new_leads"),
        dg.AssetKey("webhook_order_updates"),
    }
    processed = run_requested(request)
    assert processed.success
    delivered = 1000 - len(report["dropped"])
    assert len(event_ids(engine, "new_lead")) == delivered
    assert materializations(processed)["webhook_new_leads"]["inserted"] == delivered

    gaps_run = run_job("n8n_gap_resync")
    assert gaps_run.success
    metadata = materializations(gaps_run)["n8n_delivery_gaps"]
    assert metadata["new_lead/resynced"] == len(report["dropped"])
    assert metadata["order_update/resynced"] == len(shop["dropped"])

    for workflow in ("new_lead", "order_update"):
        loaded = event_ids(engine, workflow)
        assert len(loaded) == len(set(loaded)), "an event was loaded twice"
        assert set(loaded) == sent_event_ids(simulator, workflow)
    assert inbox_status(engine) == {"processed": 1040}
    with engine.connect() as connection:
        resynced = connection.execute(
            sa.select(sa.func.count()).where(webhook_inbox.c.origin == "resync")
        ).scalar_one()
        open_gaps = connection.execute(
            sa.select(sa.func.count()).where(sync_gaps.c.status == "open")
        ).scalar_one()
    assert resynced == len(report["dropped"]) + len(shop["dropped"])
    assert open_gaps == 0

    # A second check finds nothing missing and changes nothing.
    again = materializations(run_job("n8n_gap_resync"))["n8n_delivery_gaps"]
    assert again["new_lead/missing"] == 0 and again["new_lead/resynced"] == 0
    assert len(event_ids(engine, "new_lead")) == 1000


def test_sensor_launches_once_per_batch_and_moves_its_cursor(
    source_env, n8n_receiver, warehouse_url
):
    simulator = source_env
    first, _ = sensor_tick(warehouse_url)
    assert isinstance(first, dg.SkipReason) or not first.run_requests

    simulator.send_webhooks(n8n_receiver.url, "form_submission", 5, seed=1)
    result, _ = sensor_tick(warehouse_url)
    (request,) = result.run_requests
    assert request.asset_selection == [dg.AssetKey("webhook_form_submissions")]
    cursor = result.cursor
    # The same tick again (cursor not saved) asks for the same run key: Dagster launches once.
    repeat, _ = sensor_tick(warehouse_url)
    assert repeat.run_requests[0].run_key == request.run_key
    # With the cursor saved and nothing new, no run.
    idle, _ = sensor_tick(warehouse_url, cursor=cursor)
    assert not getattr(idle, "run_requests", None)

    simulator.send_webhooks(n8n_receiver.url, "form_submission", 2, seed=2)
    later, _ = sensor_tick(warehouse_url, cursor=cursor)
    assert later.run_requests[0].run_key != request.run_key
    assert int(later.cursor) > int(cursor)


def test_sensor_waits_while_a_processing_run_is_in_progress(
    source_env, n8n_receiver, warehouse_url
):
    source_env.send_webhooks(n8n_receiver.url, "new_lead", 3, seed=5)
    instance = dg.DagsterInstance.ephemeral()
    from sync_platform.definitions import build_definitions

    job = build_definitions().resolve_job_def("process_webhooks")
    instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)

    result, _ = sensor_tick(warehouse_url, instance=instance)

    assert isinstance(result, dg.SkipReason)
    assert "in progress" in (result.skip_message or "")


def test_invalid_events_are_quarantined_with_their_reason_and_the_rest_load(
    source_env, warehouse_url, engine
):
    good = {
        "event": "form_submission",
        "eventId": "evt_ok",
        "submissionId": "FS-1",
        "formId": "contact",
        "submittedAt": "2026-11-30T09:00:00.000Z",
        "fields": {"name": "Ava Chen", "email": "ava@example.com"},
    }
    bodies = {
        "d-good": json.dumps(good),
        "d-bad-email": json.dumps(
            {**good, "eventId": "e2", "fields": {"name": "X", "email": "no"}}
        ),
        "d-no-id": json.dumps({k: v for k, v in good.items() if k != "submissionId"}),
        "d-list": "[1, 2]",
        "d-not-json": "{not json",
    }
    with engine.begin() as connection:
        for delivery_id, body in bodies.items():
            connection.execute(
                webhook_inbox.insert().values(
                    delivery_id=delivery_id,
                    workflow_key="form_submission",
                    received_at=sa.func.current_timestamp(),
                    origin="resync",
                    headers={},
                    body=body,
                )
            )

    result = run_job("process_webhooks")

    assert result.success
    with engine.connect() as connection:
        rows = {
            r.delivery_id: r
            for r in connection.execute(
                sa.select(
                    webhook_inbox.c.delivery_id, webhook_inbox.c.status, webhook_inbox.c.reason
                )
            )
        }
    assert rows["d-good"].status == "processed"
    for bad in ("d-bad-email", "d-no-id", "d-list", "d-not-json"):
        assert rows[bad].status == "quarantined", bad
        assert rows[bad].reason
    assert "email" in rows["d-bad-email"].reason
    assert "submission_id" in rows["d-no-id"].reason
    assert "not an object" in rows["d-list"].reason
    assert "not JSON" in rows["d-not-json"].reason
    assert event_ids(engine, "form_submission") == ["evt_ok"]
    # Re-running finds nothing pending and loads nothing twice.
    assert run_job("process_webhooks").success
    assert event_ids(engine, "form_submission") == ["evt_ok"]


def test_safety_net_schedule_runs_what_is_still_pending(source_env, n8n_receiver, warehouse_url):
    source_env.send_webhooks(n8n_receiver.url, "order_update", 2, seed=6)
    resources = {"warehouse": WarehouseResource(url=warehouse_url)}

    def tick():
        # As context managers: the instance the schedule context opens from the ref is
        # closed again (left open, it would outlive this test as Dagster's current storage).
        with (
            dg.instance_for_test() as instance,
            dg.build_schedule_context(instance=instance, resources=resources) as context,
        ):
            return webhook_inbox_safety_net(context)

    first = tick()

    assert isinstance(first, dg.RunRequest)
    assert first.asset_selection == [dg.AssetKey("webhook_order_updates")]
    assert run_requested(first).success
    assert isinstance(tick(), dg.SkipReason)


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_a_pruned_execution_is_reported_lost_with_a_high_alert(
    source_env, n8n_receiver, warehouse_url, engine
):
    simulator = source_env
    report = simulator.send_webhooks(n8n_receiver.url, "new_lead", 30, drop_rate=0.3, seed=9)
    dropped = set(report["dropped"])
    assert dropped
    # An earlier check saw these executions missing (its gaps are open), and the check then
    # did not run again until n8n had pruned them: 15 days later on n8n's clock.
    with engine.begin() as connection:
        run_id = connection.execute(
            sa.text(
                "INSERT INTO sync_runs (source, entity, trigger, started_at, status) "
                "VALUES ('n8n', 'new_lead', 'manual', CURRENT_TIMESTAMP, 'succeeded') RETURNING id"
            )
        ).scalar_one()
        for execution_id in dropped:
            connection.execute(
                sync_gaps.insert().values(
                    source="n8n",
                    entity="new_lead",
                    record_key=execution_id,
                    status="open",
                    detected_at=sa.func.current_timestamp(),
                    detected_by_run_id=run_id,
                )
            )
    simulator.n8n("POST", "/clock", {"advance_seconds": 15 * 86400})

    result = run_job("n8n_gap_resync")

    assert result.success  # the check ran; its asset check reports the loss
    (check,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.check_name == "no_lost_deliveries"
    ]
    assert not check.passed
    with engine.connect() as connection:
        alert = connection.execute(
            sa.select(sync_alerts).where(sync_alerts.c.type == "webhook_delivery_lost")
        ).one()
        statuses = set(
            connection.execute(
                sa.select(sync_gaps.c.status).where(sync_gaps.c.source == "n8n")
            ).scalars()
        )
    assert alert.severity == "high"
    assert all(execution_id in alert.message for execution_id in dropped)
    assert "pruned" in alert.message
    assert statuses == {"unrecoverable"}


def test_the_gap_check_looks_back_over_n8ns_retention_unless_told_otherwise(
    source_env, warehouse_url, monkeypatch
):
    """By default every execution n8n still holds (336 h) is compared; the environment sets
    another lookback for scheduled runs too, and a runtime setting overrides both."""

    def lookback() -> float:
        job = build_definitions().resolve_job_def("n8n_gap_resync")
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
        return materializations(result)["n8n_delivery_gaps"]["lookback_hours"]

    assert lookback() == 336
    monkeypatch.setenv("N8N_GAP_LOOKBACK_HOURS", "500")
    assert lookback() == 500
    with WarehouseResource(url=warehouse_url).get_engine().begin() as connection:
        set_setting(connection, "n8n_gap_lookback_hours", "24")
    assert lookback() == 24
    monkeypatch.setenv("N8N_GAP_LOOKBACK_HOURS", "soon")
    with pytest.raises(Exception) as loading:  # Dagster wraps the cause
        build_definitions()
    causes, cause = [], loading.value
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    (refused,) = [c for c in causes if isinstance(c, ConfigurationError)]
    assert "N8N_GAP_LOOKBACK_HOURS = 'soon' is not valid" in str(refused)


def test_lost_deliveries_accumulate_in_one_alert_that_speaks_up_when_new_ones_join(
    source_env, n8n_receiver, warehouse_url, engine
):
    """A pruned execution is fetched once and stays lost; the alert names every delivery
    lost so far, and notifies again as soon as new ones join it (not after the re-notify
    interval)."""
    simulator = source_env

    def lose_some(seed: int) -> list[str]:
        report = simulator.send_webhooks(n8n_receiver.url, "new_lead", 20, drop_rate=0.3, seed=seed)
        dropped = sorted(report["dropped"], key=int)
        # n8n prunes them between the check's listing and its fetch
        prune = {"execution_ids": dropped, "when": "after_next_list", "workflow_key": "new_lead"}
        simulator.n8n("POST", "/prune", prune)
        return dropped

    def alert():
        with engine.connect() as connection:
            return connection.execute(
                sa.select(sync_alerts).where(sync_alerts.c.type == "webhook_delivery_lost")
            ).one()

    first = lose_some(seed=4)
    assert first and run_job("n8n_gap_resync").success
    before = alert()
    assert all(execution_id in before.message for execution_id in first)
    again = run_job("n8n_gap_resync")
    assert again.success and alert().last_notified_at == before.last_notified_at  # quiet
    second = lose_some(seed=5)
    assert second and run_job("n8n_gap_resync").success
    after = alert()
    assert after.id == before.id and after.details["lost"] == sorted(first + second, key=int)
    assert after.details["joined"] == second
    assert after.last_notified_at > before.last_notified_at  # told at once
    fetched = simulator.served("/n8n/api/v1/executions/")
    assert all(fetched[(f"/n8n/api/v1/executions/{e}", 404)] == 1 for e in first)
