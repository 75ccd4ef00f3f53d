"""`sync-platform health`: the verdict line says why it is UNHEALTHY, and the entity rows and
the verdict never disagree silently (an alert about an entity marks its row; an alert about
the platform is named in the verdict; every open high alert counts, not only the recent
ones shown)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sync_platform.alerting.store import acknowledge, raise_alert
from sync_platform.cli import app
from sync_platform.engine import audit
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform_tests.test_health_and_alert_sensors import record_success_for_every_entity


@pytest.fixture
def healthy(source_env, warehouse_url) -> sa.Engine:
    """A warehouse where every entity of every source (all configured, at the simulator)
    just synced."""
    record_success_for_every_entity(warehouse_url)
    engine = create_warehouse_engine(warehouse_url)
    yield engine
    engine.dispose()


def alert(engine: sa.Engine, dedup_key: str, type: str, severity: str = "high") -> int:
    with engine.begin() as connection:
        return raise_alert(
            connection,
            severity=severity,
            type=type,
            message=f"{type} planted by the test",
            dedup_key=dedup_key,
            now=datetime.now(UTC),
        ).id


def health(*args: str):
    return CliRunner().invoke(app, ["health", *args])


def rows(markdown: str) -> dict[str, list[str]]:
    """The entity table: entity → its cells after the name (ok, last success, …, why)."""
    return {
        cells[1].strip(): [c.strip() for c in cells[2:-1]]
        for line in markdown.splitlines()
        if line.startswith("| ") and "." in line.split("|")[1]
        for cells in [line.split("|")]
    }


def assert_rows_agree_with_the_verdict(markdown: str) -> None:
    verdict = markdown.splitlines()[0]
    table = rows(markdown)
    crossed = [name for name, cells in table.items() if cells[0] == "✗"]
    assert verdict.startswith("**Healthy**") == (not crossed and "UNHEALTHY" not in verdict)
    for name in crossed:  # every ✗ row is named in the verdict and says why in its row
        assert name in verdict, (name, verdict)
        assert table[name][-1], name


def test_all_well_is_healthy_with_exit_0(healthy):
    result = health()
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("**Healthy** — ")
    assert all(cells[0] == "✓" and cells[-1] == "" for cells in rows(result.stdout).values())
    assert_rows_agree_with_the_verdict(result.stdout)


def test_an_alert_about_an_entity_names_it_in_the_verdict_and_marks_its_row(healthy):
    alert_id = alert(
        healthy, "consecutive_failures:dealer_feed:dealer_stock", "consecutive_failures"
    )
    result = health()
    assert result.exit_code == 1
    verdict = result.stdout.splitlines()[0]
    assert verdict.startswith(
        "**UNHEALTHY**: 1 open high alert (consecutive_failures dealer_feed.dealer_stock) — "
    ), verdict
    table = rows(result.stdout)
    assert table["dealer_feed.dealer_stock"][0] == "✗"
    assert table["dealer_feed.dealer_stock"][-1] == (
        f"open high alert #{alert_id} consecutive_failures"
    )
    assert table["dealer_feed.dealer_leads"][0] == "✓"
    assert_rows_agree_with_the_verdict(result.stdout)

    report = json.loads(health("--json").stdout)
    assert report["healthy"] is False and report["open_high_alerts"] == 1
    assert report["reasons"] == [
        "1 open high alert (consecutive_failures dealer_feed.dealer_stock)"
    ]
    assert report["verdict"] == "UNHEALTHY: " + report["reasons"][0]
    stock = next(e for e in report["entities"] if e["entity"] == "dealer_stock")
    assert stock["healthy"] is False and stock["open_alerts"] == [
        f"#{alert_id} consecutive_failures"
    ]
    assert stock["problems"] == []  # its own figures are fine: the alert is the reason


def test_an_alert_about_the_platform_is_named_though_every_row_is_fine(healthy):
    alert(healthy, "backup_missing:full", "backup_missing")
    alert(healthy, "check_failed:dealer_leads:schema_valid", "data_integrity", severity="medium")
    result = health()
    assert result.exit_code == 1
    verdict = result.stdout.splitlines()[0]
    assert verdict.startswith("**UNHEALTHY**: 1 open high alert (backup_missing full) — "), verdict
    assert all(cells[0] == "✓" for cells in rows(result.stdout).values())  # a medium alert
    assert_rows_agree_with_the_verdict(result.stdout)


def test_an_entity_unhealthy_by_its_own_figures_and_alerts_on_check_and_conflict_keys(healthy):
    failed = audit.start_sync_run(  # dealer_leads' latest sync (after a good one) failed
        healthy, source="dealer_feed", entity="dealer_leads", trigger="scheduled",
        dagster_run_id=None, partition_key=None,
    )  # fmt: skip
    with healthy.begin() as connection:
        audit.update_sync_run(connection, failed, status="failed", finished_at=audit.utcnow())
    alert(healthy, "check_failed:legacy_products:in_step_with_source", "data_integrity")
    alert(healthy, "conflict_review:dealer_feed.dealer_stock", "sync_conflict_review")
    alert(healthy, "job_failures:retention_cleanup", "consecutive_failures")
    result = health()
    assert result.exit_code == 1
    verdict = result.stdout.splitlines()[0]
    assert "1 unhealthy entity (dealer_feed.dealer_leads: the latest sync failed)" in verdict
    assert (
        "3 open high alerts (consecutive_failures retention_cleanup; sync_conflict_review "
        "dealer_feed.dealer_stock; data_integrity legacy_erp.legacy_products)"
    ) in verdict
    table = rows(result.stdout)
    assert table["dealer_feed.dealer_leads"][0] == "✗"
    assert table["dealer_feed.dealer_leads"][-1] == "the latest sync failed"
    assert table["legacy_erp.legacy_products"][0] == "✗"
    assert table["dealer_feed.dealer_stock"][0] == "✗"
    assert_rows_agree_with_the_verdict(result.stdout)


def test_a_high_alert_older_than_the_recent_ones_shown_still_counts(healthy):
    """Only the 10 most recent alerts are listed; the verdict reads every open high one."""
    down = alert(healthy, "source_down:legacy_erp", "source_down")
    for n in range(12):
        alert(healthy, f"slow_sync:dealer_feed:entity{n}", "slow_sync", severity="warning")
    result = health("--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert "source_down" not in {a["type"] for a in report["recent_alerts"]}
    assert report["reasons"] == ["1 open high alert (source_down legacy_erp)"]
    with healthy.begin() as connection:  # acknowledged: still open, still counted, said so
        assert acknowledge(connection, down, "dana")
    acknowledged = health()
    assert acknowledged.exit_code == 1
    assert "(source_down legacy_erp (acknowledged))" in acknowledged.stdout.splitlines()[0]


def test_many_reasons_are_counted_and_the_first_named(healthy):
    for entity in ("dealer_stock", "dealer_leads", "legacy_products", "legacy_variants"):
        alert(healthy, f"stale_sync:x:{entity}", "stale_sync")
    verdict = health().stdout.splitlines()[0]
    assert verdict.startswith("**UNHEALTHY**: 4 open high alerts (stale_sync ")
    assert "; +1 more)" in verdict
