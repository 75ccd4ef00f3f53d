"""Records changed on both sides since the last sync: each conflict strategy produces its
documented winner, and manual review holds the warehouse's version until a person resolves
it (SQLite and PostgreSQL, through the real engine and the dealer simulator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sync_platform.cli import app
from sync_platform.config import cached_source_config
from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import SyncRequest
from sync_platform.reconcile import store
from sync_platform.warehouse.platform_tables import (
    reconciliation_discrepancies,
    sync_alerts,
    sync_conflicts,
)
from sync_platform_tests.dagster_runs import materializations, run_job
from sync_platform_tests.test_reconciliation import _resolver, _stock

STOCK = cached_source_config("dealer_feed").entities["dealer_stock"]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _both_change(engine, simulator, key: str, *, warehouse_newer: bool) -> None:
    """The warehouse edits the colour in place, the dealer system reprices the vehicle; the
    newer of the two stamps is the warehouse's when `warehouse_newer`."""
    now = datetime.now(UTC)
    local, remote = (
        (now, now - timedelta(hours=1)) if warehouse_newer else (now - timedelta(hours=1), now)
    )
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE dealer_stock SET colour = 'Puce', updated_at = :at WHERE stock_number = :k"
            ),
            {"k": key, "at": local},
        )
    record = simulator.http.get("/_sim/dealer/stock").json()
    record = next(r for r in record.get("items", record) if r["StockNumber"] == key)
    record |= {"Price": record["Price"] + 500, "LastUpdated": _stamp(remote)}
    simulator.http.put(f"/_sim/dealer/stock/{key}", json=record).raise_for_status()


def _row(engine, key: str):
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT colour, price FROM dealer_stock WHERE stock_number = :k"), {"k": key}
        ).one()


def _sync(engine, resource, strategy: str):
    entity = STOCK.model_copy(update={"conflict_strategy": strategy})
    with resource.entity_source(entity, None) as source:
        return run_entity_sync(engine, SyncRequest("dealer_feed", entity), source)


@pytest.mark.parametrize(
    ("strategy", "warehouse_newer", "winner"),
    [
        ("source_wins", True, "source"),
        ("warehouse_wins", False, "warehouse"),
        ("newest_wins", True, "warehouse"),
        ("newest_wins", False, "source"),
        ("manual_review", False, "warehouse"),
    ],
)
def test_each_strategy_picks_its_documented_winner(
    synced, simulator, strategy, warehouse_newer, winner
):
    engine, resource = synced
    key = _stock(engine, limit=1)[0]
    before = _row(engine, key)
    _both_change(engine, simulator, key, warehouse_newer=warehouse_newer)

    report = _sync(engine, resource, strategy)

    after = _row(engine, key)
    if winner == "source":
        assert after.colour == before.colour and float(after.price) == float(before.price) + 500
    else:
        assert after.colour == "Puce" and after.price == before.price
    with engine.connect() as connection:
        (conflict,) = connection.execute(
            sa.select(sync_conflicts).where(sync_conflicts.c.record_key == key)
        ).all()
    expected = {"source": "applied_source", "warehouse": "kept_warehouse"}[winner]
    if strategy == "manual_review":
        expected = "held_for_review"
    assert (conflict.kind, conflict.resolution) == ("both_changed", expected)
    assert report.held_for_review == (1 if strategy == "manual_review" else 0)
    # A settled conflict stays settled: the next sync changes nothing and logs nothing.
    again = _sync(engine, resource, strategy)
    assert _row(engine, key) == after and again.merge.updated == 0
    with engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(sync_conflicts)).scalar() == 1
        )


def test_manual_review_holds_the_warehouse_version_until_a_person_takes_the_source(
    synced, simulator
):
    engine, resource = synced
    key = _stock(engine, limit=1)[0]
    before = _row(engine, key)
    _both_change(engine, simulator, key, warehouse_newer=False)

    first = run_job()  # the configured strategy of dealer_stock: manual_review
    assert first.success and materializations(first)["dealer_stock"]["held_for_review"] == 1
    second = run_job()
    assert second.success and "held_for_review" not in materializations(second)["dealer_stock"]

    assert _row(engine, key).colour == "Puce"
    with engine.connect() as connection:
        (held,) = connection.execute(sa.select(reconciliation_discrepancies)).all()
        alerts = connection.execute(
            sa.select(sync_alerts).where(sync_alerts.c.type == "sync_conflict_review")
        ).all()
    assert (held.record_key, held.kind, held.status) == (key, "conflict", "open")
    assert set(held.fields) == {"colour", "price", "updated_at"}
    assert held.warehouse_values["colour"] == "Puce"
    assert float(held.source_values["price"]) == float(before.price) + 500
    assert [(a.status, a.occurrences) for a in alerts] == [("open", 1)]  # not logged again

    listed = CliRunner().invoke(app, ["conflicts", "list"])
    assert listed.exit_code == 0 and key in listed.output and "conflict" in listed.output
    shown = CliRunner().invoke(app, ["conflicts", "show", "--key", key])
    assert shown.exit_code == 0, shown.output
    marked = {line.split()[1] for line in shown.output.splitlines() if line.startswith("*")}
    assert marked == {"colour", "price", "updated_at"}
    assert "last modified (updated_at): warehouse " in shown.output

    _resolver(engine, resource).take_source(store.Selection(keys=[key]))

    after = _row(engine, key)
    assert after.colour == before.colour and float(after.price) == float(before.price) + 500
    with engine.connect() as connection:
        assert (
            connection.execute(sa.select(reconciliation_discrepancies.c.status)).scalar()
            == "resolved"
        )
        assert (
            connection.execute(
                sa.select(sync_alerts.c.status).where(sync_alerts.c.type == "sync_conflict_review")
            ).scalar()
            == "resolved"
        )
    assert run_job().success
    assert _row(engine, key) == after
