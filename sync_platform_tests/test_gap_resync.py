"""Verification → gap → sync_gap_sensor → targeted resync run, end to end through Dagster,
against the simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from sync_platform.definitions import build_definitions
from sync_platform.defs.platform.sensors import sync_gap_sensor
from sync_platform.engine.ports import Verification
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.runtime_config import set_setting
from sync_platform.warehouse.platform_tables import sync_alerts, sync_gaps, sync_runs
from sync_platform_tests.dagster_runs import (
    check_metadata,
    materializations,
    run_job,
    run_requested,
)

IN_STEP = "dealer_stock:in_step_with_source"
HEALING = "sync_platform/healing"


def tick(warehouse_url: str) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        repository_def=build_definitions().get_repository_def(),
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
    )
    return sync_gap_sensor(context)


def configure(warehouse_url: str, **settings: str) -> None:
    """Runtime settings, as `sync-platform config set` writes them."""
    with WarehouseResource(url=warehouse_url).get_engine().begin() as connection:
        for key, value in settings.items():
            set_setting(connection, key, value)


def query(warehouse_url: str, statement) -> list:
    engine = WarehouseResource(url=warehouse_url).get_engine()
    with engine.connect() as connection:
        return connection.execute(statement).mappings().all()


def test_a_dropped_record_is_found_and_resynced_by_the_next_tick(source_env, warehouse_url):
    source_env.faults(drop_keys=[{"key": "STK000042", "times": 1}])
    first = run_job()
    stock = materializations(first)["dealer_stock"]
    assert stock["gap_count"] == 1 and "STK000042" in stock["notes"]
    # The check fails, and says the platform is healing it (no alert for a gap in resync).
    check = check_metadata(first, IN_STEP)
    assert (check["passed"], check[HEALING], check["missing_keys"]) == (False, True, "STK000042")

    result = tick(warehouse_url)
    (request,) = result.run_requests
    assert request.asset_selection == [dg.AssetKey("dealer_stock")]
    assert request.run_config == {
        "ops": {"dealer_stock": {"config": {"resync_keys": ["STK000042"]}}}
    }
    assert request.tags["sync_platform/trigger"] == "resync"

    resync = run_requested(request)
    assert resync.success
    after = materializations(resync)["dealer_stock"]
    assert (after["inserted"], after["gap_count"], after["soft_deleted"]) == (1, 0, 0)

    (gap,) = query(warehouse_url, sa.select(sync_gaps))
    runs = query(warehouse_url, sa.select(sync_runs).order_by(sync_runs.c.id))
    assert gap["status"] == "resolved" and gap["attempts"] == 1
    assert gap["resolved_by_run_id"] == runs[-1]["id"] and runs[-1]["trigger"] == "resync"
    assert query(warehouse_url, sa.select(sync_alerts)) == []
    assert tick(warehouse_url).run_requests == []


def test_a_record_lost_for_good_is_retried_with_backoff_then_alerted(source_env, warehouse_url):
    configure(warehouse_url, gap_resync_max_attempts="2", gap_resync_backoff_minutes="0")
    source_env.faults(drop_keys=[{"key": "STK000042", "times": 100}])
    run_job()

    first = tick(warehouse_url).run_requests
    assert len(first) == 1
    assert run_requested(first[0]).success
    second = tick(warehouse_url).run_requests
    assert len(second) == 1 and second[0].run_key != first[0].run_key
    assert run_requested(second[0]).success

    (gap,) = query(warehouse_url, sa.select(sync_gaps))
    assert (gap["status"], gap["attempts"]) == ("unrecoverable", 2)
    (alert,) = query(warehouse_url, sa.select(sync_alerts))
    assert alert["severity"] == "high" and "STK000042" in alert["message"]
    assert tick(warehouse_url).run_requests == []  # attempts used up: no more runs

    # The next scheduled sync still misses it: known lost, not a new gap to resync again,
    # and its check failure is no longer one the platform heals (it raises its own alert).
    again = run_job()
    assert materializations(again)["dealer_stock"]["gap_count"] == 1
    check = check_metadata(again, IN_STEP)
    assert (check["passed"], check[HEALING]) == (False, False)
    (gap,) = query(warehouse_url, sa.select(sync_gaps))
    assert gap["status"] == "unrecoverable"
    assert tick(warehouse_url).run_requests == []
    # The record comes back: the lost gap is resolved, and so is the alert.
    source_env.faults()
    assert materializations(run_job())["dealer_stock"]["gap_count"] == 0
    (gap,) = query(warehouse_url, sa.select(sync_gaps))
    assert gap["status"] == "resolved"
    (alert,) = query(warehouse_url, sa.select(sync_alerts))
    assert alert["status"] == "resolved"


def test_the_lost_record_alert_names_every_key_lost_so_far(source_env, warehouse_url):
    configure(warehouse_url, gap_resync_max_attempts="1", gap_resync_backoff_minutes="0")
    source_env.faults(drop_keys=[{"key": "STK000042", "times": 100}])
    run_job()
    assert run_requested(tick(warehouse_url).run_requests[0]).success
    source_env.faults(
        drop_keys=[{"key": "STK000042", "times": 100}, {"key": "STK000043", "times": 100}]
    )
    run_job()
    assert run_requested(tick(warehouse_url).run_requests[0]).success
    (alert,) = query(warehouse_url, sa.select(sync_alerts))
    assert alert["status"] == "open"
    assert "2 record(s)" in alert["message"] and "STK000042, STK000043" in alert["message"]


def test_backoff_holds_back_the_next_attempt(source_env, warehouse_url):
    configure(warehouse_url, gap_resync_backoff_minutes="60")
    source_env.faults(drop_keys=[{"key": "STK000042", "times": 100}])
    run_job()
    (request,) = tick(warehouse_url).run_requests  # the first attempt is immediate
    run_requested(request)
    assert tick(warehouse_url).run_requests == []  # the second waits an hour
    configure(warehouse_url, gap_resync_backoff_minutes="0")
    (second,) = tick(warehouse_url).run_requests  # and nothing else was holding it back
    assert second.run_key != request.run_key and "attempt-2" in second.run_key


def test_a_lost_record_the_source_then_deletes_is_no_longer_lost(source_env, warehouse_url):
    configure(warehouse_url, gap_resync_max_attempts="1", gap_resync_backoff_minutes="0")
    source_env.faults(drop_keys=[{"key": "STK000042", "times": 100}])
    run_job()
    assert run_requested(tick(warehouse_url).run_requests[0]).success
    (gap,) = query(warehouse_url, sa.select(sync_gaps))
    assert gap["status"] == "unrecoverable"

    source_env.http.delete("/_sim/dealer/stock/STK000042").raise_for_status()
    assert materializations(run_job())["dealer_stock"]["gap_count"] == 0
    (gap,) = query(warehouse_url, sa.select(sync_gaps))
    assert gap["status"] == "resolved"
    (alert,) = query(warehouse_url, sa.select(sync_alerts))
    assert alert["status"] == "resolved"


def test_a_gap_whose_record_the_source_deletes_before_its_resync_is_settled(
    source_env, warehouse_url
):
    """The soak's false alert of 2026-12-05: a seller missed by one read was deleted from the
    sheet before its resync ran; the resync must settle the gap, not count an attempt."""
    configure(warehouse_url, gap_resync_max_attempts="1", gap_resync_backoff_minutes="0")
    source_env.faults(drop_keys=[{"key": "STK000042", "times": 1}])
    run_job()
    (request,) = tick(warehouse_url).run_requests
    source_env.http.delete("/_sim/dealer/stock/STK000042").raise_for_status()

    resync = run_requested(request)
    assert resync.success
    assert materializations(resync)["dealer_stock"]["gap_count"] == 0
    (gap,) = query(warehouse_url, sa.select(sync_gaps))
    runs = query(warehouse_url, sa.select(sync_runs).order_by(sync_runs.c.id))
    assert (gap["status"], gap["resolved_by_run_id"]) == ("resolved", runs[-1]["id"])
    assert runs[-1]["trigger"] == "resync"
    assert query(warehouse_url, sa.select(sync_alerts)) == []
    check = check_metadata(resync, IN_STEP)
    assert check["passed"] is True
    assert tick(warehouse_url).run_requests == []


def test_what_the_platform_heals_without_a_person():
    """`Verification.healing` (no alert for the check): gaps still in resync, and keys a
    snapshot's listing no longer has unless the merge refused to delete them."""
    base = {"status": "gaps", "source_count": 10, "warehouse_count": 10}
    assert Verification(**base, missing_keys=["a"]).healing
    assert not Verification(**base, missing_keys=["a"], lost_keys=["a"]).healing
    assert Verification(**base, unexpected_keys=["b"]).healing  # deleted after the data read
    assert not Verification(**base, unexpected_keys=["b"], deletes_refused=True).healing
    assert not Verification(**base).healing  # nothing out of step: nothing to heal
