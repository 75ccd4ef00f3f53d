"""What a sync's materialization shows in the UI (report_metadata), from a report alone."""

from sync_platform.engine.ports import SyncReport, Verification
from sync_platform.orchestration.sync_asset import report_metadata


def _report(**quality: float) -> SyncReport:
    report = SyncReport(sync_run_id=7, source="dealer_feed", entity="dealer_stock", fetched=10)
    report.quality = dict(quality)
    return report


def test_null_rates_are_one_plot_and_the_columns_are_named_in_trouble():
    report = _report(null_rate_vin=0.2, null_rate_make=0.1, null_rate_model=0.0)
    report.quarantined = 3
    report.quarantine_reasons.update(
        {"vin: required value is missing": 2, "make: required value is missing": 1}
    )
    metadata = report_metadata(report)

    assert metadata["quality_worst_null_rate"] == 0.2
    assert not [name for name in metadata if name.startswith("quality_null_rate")]
    trouble = metadata["trouble"].value
    rows = "| vin: required value is missing | 2 |\n| make: required value is missing | 1 |"
    assert rows in trouble
    assert "**Required values missing**: vin 20.0%, make 10.0%" in trouble
    assert "model" not in trouble


def test_a_clean_sync_has_no_trouble_and_hostile_reasons_cannot_break_the_table():
    assert "trouble" not in report_metadata(_report(null_rate_vin=0.0))

    report = _report()
    report.quarantine_reasons.update({"note: 'a|b`c'\nsecond line " + "x" * 500: 1})
    report.verification = Verification(
        status="gaps", source_count=9, warehouse_count=2, missing_keys=[f"K{i}" for i in range(7)]
    )
    trouble = report_metadata(report)["trouble"].value
    row = next(line for line in trouble.splitlines() if line.startswith("| note"))
    assert row.count(" | ") == 1 and "\\|" in row and "`" not in row and len(row) < 140
    assert "`K0`, `K1`, `K2`, `K3`, `K4` and 2 more" in trouble
