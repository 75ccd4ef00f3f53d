"""The AA12679 incident, end to end: a seller in the sheet that the sync silently missed is
found by the same run, resynced by the sensor's next tick, and alerted by name if it cannot
be. Through Dagster, the Sheets client (real service-account token flow) and the simulator,
on SQLite and PostgreSQL."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from sync_platform.alerting.health import health_report
from sync_platform.config import cached_source_config
from sync_platform.definitions import build_definitions
from sync_platform.defs.platform.sensors import sync_gap_sensor
from sync_platform.orchestration.resources import WarehouseResource
from sync_platform.runtime_config import set_setting
from sync_platform.warehouse.platform_tables import sync_alerts, sync_gaps, sync_quarantine
from sync_platform_tests.dagster_runs import (
    check_results,
    materializations,
    run_job,
    run_requested,
)

INCIDENT = "AA12679"


def tick(url: str) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        repository_def=build_definitions().get_repository_def(),
        resources={"warehouse": WarehouseResource(url=url)},
    )
    return sync_gap_sensor(context)


def fetch(url: str, statement) -> list:
    with WarehouseResource(url=url).get_engine().connect() as connection:
        return connection.execute(statement).mappings().all()


def seller_present(url: str) -> bool:
    query = sa.text(
        "SELECT 1 FROM sheet_sellers WHERE seller_number = :seller AND _deleted_at IS NULL"
    ).bindparams(seller=INCIDENT)
    return bool(fetch(url, query))


def test_a_seller_missed_once_is_found_in_the_same_run_and_resynced(source_env, warehouse_url):
    source_env.faults(drop_keys=[{"key": INCIDENT, "times": 1}])
    first = run_job("seller_sheet_sync")
    assert first.success
    sellers = materializations(first)["sheet_sellers"]
    assert sellers["gap_count"] == 1 and INCIDENT in sellers["notes"]
    assert not check_results(first)["sheet_sellers:in_step_with_source"]
    assert not seller_present(warehouse_url)
    (gap,) = fetch(warehouse_url, sa.select(sync_gaps))
    assert (gap["record_key"], gap["status"]) == (INCIDENT, "open")

    (request,) = tick(warehouse_url).run_requests
    assert request.asset_selection == [dg.AssetKey("sheet_sellers")]
    resync = run_requested(request)
    assert resync.success and check_results(resync)["sheet_sellers:in_step_with_source"]

    assert seller_present(warehouse_url)
    (gap,) = fetch(warehouse_url, sa.select(sync_gaps))
    assert gap["status"] == "resolved" and gap["resolved_by_run_id"] is not None
    assert fetch(warehouse_url, sa.select(sync_alerts)) == []
    assert tick(warehouse_url).run_requests == []


def test_a_seller_lost_for_good_is_alerted_by_name_after_the_last_attempt(
    source_env, warehouse_url
):
    with WarehouseResource(url=warehouse_url).get_engine().begin() as connection:
        set_setting(connection, "gap_resync_max_attempts", "3")
        set_setting(connection, "gap_resync_backoff_minutes", "0")
    source_env.faults(drop_keys=[{"key": INCIDENT, "times": 100}])
    run_job("seller_sheet_sync")
    for _attempt in range(3):
        (request,) = tick(warehouse_url).run_requests
        assert run_requested(request).success
    assert tick(warehouse_url).run_requests == []

    (gap,) = fetch(warehouse_url, sa.select(sync_gaps))
    assert (gap["status"], gap["attempts"]) == ("unrecoverable", 3)
    (alert,) = fetch(warehouse_url, sa.select(sync_alerts))
    assert (alert["severity"], alert["type"]) == ("high", "unrecovered_gap")
    assert INCIDENT in alert["message"] and "seller_sheet.sheet_sellers" in alert["message"]


def test_invalid_rows_are_quarantined_alerted_and_break_the_property_rule(
    source_env, warehouse_url
):
    source_env.sheets("POST", "/sellers/AA12004/invalid", {"problem": "missing_inquiry_date"})
    source_env.sheets(
        "POST", f"/sellers/{INCIDENT}/invalid", {"problem": "property_without_address"}
    )
    result = run_job("seller_sheet_sync")
    assert result.success
    found = materializations(result)
    assert found["sheet_sellers"]["quarantined"] == 1
    assert found["sheet_seller_properties"]["quarantined"] >= 1

    checks = check_results(result)
    assert checks["sheet_sellers:schema_valid"]  # nothing invalid reached the table
    quarantined = fetch(
        warehouse_url,
        sa.text("SELECT entity, record_key, reason FROM sync_quarantine ORDER BY entity"),
    )
    reasons = {(row["entity"], row["record_key"]): row["reason"] for row in quarantined}
    assert "inquiry_date: required value is missing" in reasons[("sheet_sellers", "AA12004")]
    assert "address: required value is missing" in reasons[("sheet_seller_properties", INCIDENT)]
    alerts = {row["dedup_key"]: row for row in fetch(warehouse_url, sa.select(sync_alerts))}
    assert alerts["data_integrity:seller_sheet:sheet_sellers"]["severity"] == "medium"
    assert "AA12004" in alerts["data_integrity:seller_sheet:sheet_sellers"]["message"]


def test_a_seller_with_property_data_but_no_property_record_fails_the_check(
    source_env, warehouse_url
):
    assert check_results(run_job("seller_sheet_sync"))[
        "sheet_seller_properties:property_records_exist"
    ]
    header = source_env.sheets("GET", "/rows")["rows"][0]
    new_seller = dict.fromkeys(header, "") | {
        "Seller Number": "AA99999",
        "Name": "Noor Haddad",
        "Inquiry Date": "03/11/2026",
        "Property Address": "4 Quay St, Sydney NSW 2000",
        "Property Type": "Unit",
        "Asking Price": "a lot",  # the property row cannot load; the seller row can
    }
    source_env.sheets("PUT", "/sellers/AA99999", new_seller)
    result = run_job("seller_sheet_sync")
    assert not check_results(result)["sheet_seller_properties:property_records_exist"]
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "property_records_exist"
    )
    assert evaluation.metadata["seller_numbers"].value == "AA99999"


def test_a_seller_listed_twice_loads_once_and_the_later_row_is_quarantined(
    source_env, warehouse_url
):
    rows = source_env.sheets("GET", "/rows")["rows"]
    header, first = rows[0], rows[3]
    copy = list(first) + [""] * (len(header) - len(first))
    copy[header.index("Phone")] = "0499 999 999"
    source_env.sheets("POST", "/rows", {"row": len(rows) + 1, "values": copy})
    result = run_job("seller_sheet_sync")
    assert result.success
    seller = first[0].strip().upper()
    (kept,) = fetch(
        warehouse_url,
        sa.text(
            "SELECT phone, sheet_row FROM sheet_sellers WHERE seller_number = :s"
        ).bindparams(s=seller),
    )  # fmt: skip
    assert kept["sheet_row"] == 4 and kept["phone"] != "0499 999 999"  # the first row
    quarantined = fetch(
        warehouse_url,
        sa.select(sync_quarantine.c.entity, sync_quarantine.c.reason).where(
            sync_quarantine.c.record_key == seller
        ),
    )
    assert {row["entity"] for row in quarantined} >= {"sheet_sellers"}
    assert all(f"returned {seller} more than once" in row["reason"] for row in quarantined)
    assert materializations(result)["sheet_sellers"]["quarantined"] == 1


def test_a_sheet_that_comes_back_empty_keeps_its_sellers_and_raises_an_alert(
    source_env, warehouse_url
):
    assert run_job("seller_sheet_sync").success
    active = sa.text("SELECT count(*) AS n FROM sheet_sellers WHERE _deleted_at IS NULL")
    (before,) = fetch(warehouse_url, active)
    for row in source_env.sheets("GET", "/rows")["rows"][1:]:
        if row and row[0]:
            source_env.http.delete(f"/_sim/sheets/sellers/{row[0]}").raise_for_status()
    run_job("seller_sheet_sync")
    assert fetch(warehouse_url, active) == [before]  # nothing deleted
    (alert,) = fetch(
        warehouse_url,
        sa.select(sync_alerts.c.message).where(
            sync_alerts.c.dedup_key == "empty_read:seller_sheet:sheet_sellers",
            sync_alerts.c.status == "open",
        ),
    )
    assert "spreadsheet sim-seller-sheet, range Sellers!A1:H" in alert["message"]
    assert f"where the warehouse holds {before['n']}" in alert["message"]


def _rename_column(simulator, old: str, new: str) -> None:
    header = simulator.sheets("GET", "/rows")["rows"][0]
    simulator.http.put(
        "/_sim/sheets/header", json=[new if name == old else name for name in header]
    ).raise_for_status()


def test_a_renamed_optional_column_loads_and_alerts_naming_the_field(source_env, warehouse_url):
    assert run_job("seller_sheet_sync").success
    _rename_column(source_env, "Phone", "Mobile")
    result = run_job("seller_sheet_sync")
    sellers = materializations(result)["sheet_sellers"]
    assert sellers["source_fields_missing"] == "Phone"
    assert "Mobile" in sellers["source_fields_unmapped"]
    (alert,) = fetch(
        warehouse_url,
        sa.select(sync_alerts.c.message, sync_alerts.c.severity).where(
            sync_alerts.c.dedup_key == "schema_drift:seller_sheet:sheet_sellers",
            sync_alerts.c.status == "open",
        ),
    )
    assert "carries 'Phone' (column phone)" in alert["message"] and "Mobile" in alert["message"]
    with WarehouseResource(url=warehouse_url).get_engine().connect() as connection:
        report = health_report(connection, [cached_source_config("seller_sheet")], {})
    sellers_health = next(e for e in report["entities"] if e["entity"] == "sheet_sellers")
    assert sellers_health["missing_source_fields"] == ["Phone"]
    assert sellers_health["new_source_fields"] == ["Mobile"]  # not sent by the earlier sync
    problems = {i["problem"] for i in report["quality_issues"]}
    assert {"the source no longer sends Phone", "the source started sending Mobile"} <= problems
    _rename_column(source_env, "Mobile", "Phone")
    assert run_job("seller_sheet_sync").success
    open_drift = sa.select(sync_alerts.c.id).where(
        sync_alerts.c.type == "schema_drift", sync_alerts.c.status == "open"
    )
    assert fetch(warehouse_url, open_drift) == []


def test_a_renamed_required_column_fails_the_sync_and_writes_nothing(source_env, warehouse_url):
    assert run_job("seller_sheet_sync").success
    names = sa.text("SELECT seller_number, name FROM sheet_sellers ORDER BY 1")
    before = fetch(warehouse_url, names)
    _rename_column(source_env, "Name", "Full Name")
    result = run_job("seller_sheet_sync")
    assert not result.success
    messages = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert any(
        "carries 'Name' (column name): its shape changed. Nothing was written" in m
        and "Full Name" in m
        for m in messages
    )
    assert fetch(warehouse_url, names) == before
    quarantined = sa.select(sync_quarantine.c.id).where(sync_quarantine.c.entity == "sheet_sellers")
    assert fetch(warehouse_url, quarantined) == []  # not every seller refused one by one
