"""Dealer reconciliation with known answers, on SQLite and PostgreSQL: drift planted on both
sides (the warehouse edited by hand, the dealer system edited through the simulator), every
class of difference found exactly, and each resolution action changing exactly the rows it
targets, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from sync_platform.config import cached_source_config
from sync_platform.reconcile import store
from sync_platform.reconcile.resolve import Resolver
from sync_platform.reconcile.run import reconcile_source
from sync_platform.warehouse.platform_tables import (
    reconciliation_actions,
    reconciliation_discrepancies,
)
from sync_platform_tests.dagster_runs import run_job

DEALER = cached_source_config("dealer_feed")


def _reconcile(engine, resource):
    return reconcile_source(engine, DEALER, lambda entity: resource.entity_source(entity, None))


def _found(run, entity):
    return {(d.record_key, d.kind, tuple(d.fields)) for d in run.comparisons[entity].discrepancies}


def _stock(engine, column="stock_number", where="status = 'available'", limit=6) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    f"SELECT {column} FROM dealer_stock WHERE {where} ORDER BY stock_number "
                    f"LIMIT {limit}"
                )
            ).scalars()
        )


def _plant(engine, simulator):
    """Known drift; returns the expected (key, kind, fields) per entity and key severities."""
    available = _stock(engine)
    sold = _stock(engine, where="status = 'sold'", limit=1)
    with engine.connect() as connection:
        query = sa.text("SELECT lead_id FROM dealer_leads ORDER BY lead_id LIMIT 3")
        leads = [str(k) for k in connection.execute(query).scalars()]
    with engine.begin() as connection:
        run = connection.execute
        run(sa.text("UPDATE dealer_stock SET colour = 'Puce' WHERE stock_number = :k"),
            {"k": available[0]})  # fmt: skip
        run(sa.text("UPDATE dealer_stock SET price = price + 1000 WHERE stock_number = :k"),
            {"k": available[1]})  # fmt: skip
        run(sa.text("DELETE FROM dealer_stock WHERE stock_number = :k"), {"k": available[2]})
        run(sa.text("DELETE FROM dealer_stock WHERE stock_number = :k"), {"k": sold[0]})
        run(
            sa.text(
                "INSERT INTO dealer_stock (stock_number, vin, make, model, variant, year, "
                "odometer, price, status, colour, body, fuel, transmission, location, "
                "updated_at, _row_hash, _first_synced_at, _synced_at, _version) SELECT "
                "'STK900001', vin, make, model, variant, year, odometer, price, 'available', "
                "colour, body, fuel, transmission, location, updated_at, 1, _first_synced_at, "
                "_synced_at, 1 FROM dealer_stock WHERE stock_number = :k"
            ),
            {"k": available[3]},
        )
        run(sa.text("UPDATE dealer_leads SET status = 'lost' WHERE lead_id = :k"),
            {"k": int(leads[0])})  # fmt: skip
        run(sa.text("UPDATE dealer_leads SET phone = '000' WHERE lead_id = :k"),
            {"k": int(leads[1])})  # fmt: skip
    # The dealer system: one vehicle edited without its LastUpdated moving (a drift a
    # timestamp cannot show), one edited the ordinary way (newer than the sync: pending).
    dump = simulator.http.get("/_sim/dealer/stock").json()
    records = {r["StockNumber"]: r for r in dump.get("items", dump)}
    quiet = dict(records[available[4]], Location="Elsewhere Yard")
    simulator.http.put(f"/_sim/dealer/stock/{available[4]}", json=quiet).raise_for_status()
    newer = dict(records[available[5]], Colour="Teal", LastUpdated=_iso(datetime.now(UTC)))
    simulator.http.put(f"/_sim/dealer/stock/{available[5]}", json=newer).raise_for_status()
    stock = {
        (available[0], "field_diff", ("colour",)),
        (available[1], "field_diff", ("price",)),
        (available[2], "missing", ()),
        (sold[0], "missing", ()),
        ("STK900001", "extra", ()),
        (available[4], "field_diff", ("location",)),
    }
    lead_found = {(leads[0], "status_mismatch", ("status",)), (leads[1], "field_diff", ("phone",))}
    severities = {
        available[0]: "low",
        available[1]: "medium",
        available[2]: "high",
        sold[0]: "low",
        "STK900001": "high",
        available[4]: "low",
        leads[0]: "medium",
        leads[1]: "medium",
    }
    return stock, lead_found, severities


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_each_class_of_difference_is_found_exactly_and_judged(synced, simulator):
    engine, resource = synced
    stock, leads, severities = _plant(engine, simulator)

    run = _reconcile(engine, resource)

    assert _found(run, "dealer_stock") == stock
    assert _found(run, "dealer_leads") == leads
    judged = {d.record_key: d.severity for c in run.comparisons.values() for d in c.discrepancies}
    assert judged == severities
    assert run.comparisons["dealer_stock"].pending == 1  # edited after the sync: not judged
    summary = run.summary()["dealer_stock"]
    assert summary["by_kind"] == {"field_diff": 3, "missing": 2, "extra": 1}
    assert summary["new"] == 6 and summary["open"] == 6
    price = next(d for d in run.comparisons["dealer_stock"].discrepancies if d.fields == ["price"])
    assert float(price.warehouse_values["price"]) == float(price.source_values["price"]) + 1000


def test_a_difference_that_does_not_change_is_not_logged_again_and_a_healed_one_closes(
    synced, simulator
):
    engine, resource = synced
    _plant(engine, simulator)
    first = _reconcile(engine, resource)
    with engine.connect() as connection:
        before = {
            r.record_key: (r.id, r.first_seen_at)
            for r in connection.execute(sa.select(reconciliation_discrepancies))
        }
    assert run_job().success  # the sync heals what the source is right about
    second = _reconcile(engine, resource)

    assert second.summary()["dealer_stock"]["new"] == 0
    with engine.connect() as connection:
        rows = {
            r.record_key: r for r in connection.execute(sa.select(reconciliation_discrepancies))
        }
    assert {k: (r.id, r.first_seen_at) for k, r in rows.items()} == before
    still = {d.record_key for c in second.comparisons.values() for d in c.discrepancies}
    gone = {k for k, r in rows.items() if r.status == "gone"}
    assert gone == set(before) - still
    assert first.open_count() == second.open_count() + len(gone)


def _resolver(engine, resource, actor="tester"):
    return Resolver(
        engine, DEALER, lambda entity: resource.entity_source(entity, None), actor=actor
    )


def _source_stock(simulator) -> dict[str, dict]:
    dump = simulator.http.get("/_sim/dealer/stock").json()
    return {r["StockNumber"]: r for r in dump.get("items", dump)}


def test_take_source_rewrites_exactly_the_chosen_rows_and_audits_each(synced, simulator):
    engine, resource = synced
    stock, _, _ = _plant(engine, simulator)
    _reconcile(engine, resource)
    chosen = sorted(k for k, kind, _ in stock if kind in ("field_diff", "missing", "extra"))
    untouched = "STK900001"
    chosen.remove(untouched)
    with engine.connect() as connection:
        before_extra = connection.execute(
            sa.text("SELECT colour, _deleted_at FROM dealer_stock WHERE stock_number = :k"),
            {"k": untouched},
        ).one()

    outcome = _resolver(engine, resource).take_source(
        store.Selection(entity="dealer_stock", keys=chosen)
    )

    assert sorted(outcome.done) == chosen and not outcome.refused
    source = _source_stock(simulator)
    with engine.connect() as connection:
        rows = {
            r.stock_number: r
            for r in connection.execute(
                sa.text(
                    "SELECT stock_number, colour, location, price, _deleted_at FROM dealer_stock"
                )
            )
        }
        assert (
            connection.execute(
                sa.text("SELECT colour, _deleted_at FROM dealer_stock WHERE stock_number = :k"),
                {"k": untouched},
            ).one()
            == before_extra
        )
        audit = list(connection.execute(sa.select(reconciliation_actions)))
    for key in chosen:
        assert rows[key]._deleted_at is None
        assert rows[key].colour == source[key]["Colour"]
        assert rows[key].location == source[key]["Location"]
        assert float(rows[key].price) == float(source[key]["Price"])
    assert sorted(a.record_key for a in audit) == chosen
    assert {a.actor for a in audit} == {"tester"} and {a.action for a in audit} == {"take_source"}
    missing = next(k for k, kind, _ in stock if kind == "missing")
    assert next(a for a in audit if a.record_key == missing).before is None

    # And a bulk action by class: the extra record, which the dealer system does not have,
    # is soft-deleted; reconciling again finds nothing left in the stock but the pending edit.
    _resolver(engine, resource).take_source(store.Selection(entity="dealer_stock", kinds=["extra"]))
    again = _reconcile(engine, resource)
    assert again.comparisons["dealer_stock"].discrepancies == []


def test_ignore_is_quiet_until_its_expiry_then_reported_again(synced, simulator):
    engine, resource = synced
    _plant(engine, simulator)
    _reconcile(engine, resource)
    resolver = _resolver(engine, resource)
    with pytest.raises(Exception, match="needs a reason"):
        resolver.ignore(
            store.Selection(kinds=["status_mismatch"]), reason=" ", until=datetime.now(UTC)
        )

    outcome = resolver.ignore(
        store.Selection(kinds=["status_mismatch"]),
        reason="customer asked us to keep it",
        until=datetime.now(UTC) + timedelta(days=7),
    )
    assert len(outcome.done) == 1
    quiet = _reconcile(engine, resource)
    assert quiet.summary()["dealer_leads"]["ignored"] == 1
    assert "status_mismatch" not in quiet.summary()["dealer_leads"]["by_kind"]

    with engine.begin() as connection:  # the expiry passes
        connection.execute(
            sa.update(reconciliation_discrepancies)
            .where(reconciliation_discrepancies.c.status == "ignored")
            .values(ignored_until=datetime.now(UTC) - timedelta(minutes=1))
        )
    loud = _reconcile(engine, resource)
    assert loud.summary()["dealer_leads"]["by_kind"].get("status_mismatch") == 1
    assert loud.summary()["dealer_leads"]["new"] == 1


def test_merge_previews_without_writing_then_applies_per_field(synced, simulator):
    engine, resource = synced
    _plant(engine, simulator)
    key = _stock(engine, limit=1)[0]
    with engine.begin() as connection:  # one vehicle differs in two fields
        connection.execute(
            sa.text("UPDATE dealer_stock SET price = price + 5 WHERE stock_number = :k"),
            {"k": key},
        )
    _reconcile(engine, resource)
    snapshot = "SELECT colour, price, _version FROM dealer_stock WHERE stock_number = :k"
    with engine.connect() as connection:
        before = connection.execute(sa.text(snapshot), {"k": key}).one()
    selection = store.Selection(entity="dealer_stock", keys=[key])
    resolver = _resolver(engine, resource)

    preview = resolver.merge(selection, {"price": "source"}, preview=True)

    with engine.connect() as connection:
        assert connection.execute(sa.text(snapshot), {"k": key}).one() == before
        assert connection.execute(sa.select(reconciliation_actions)).first() is None
    (shown,) = preview.preview
    assert shown["changes"] == ["price"] and shown["after"]["colour"] == "Puce"

    resolver.merge(selection, {"price": "source", "colour": "local"}, preview=False)

    source = _source_stock(simulator)[key]
    with engine.connect() as connection:
        after = connection.execute(sa.text(snapshot), {"k": key}).one()
        (action,) = connection.execute(sa.select(reconciliation_actions)).all()
    assert after.colour == "Puce" and float(after.price) == float(source["Price"])
    assert after._version == before._version + 1
    assert action.action == "merge" and action.before["colour"] == "Puce"


def test_keep_local_writes_the_warehouse_version_back_to_the_dealer_system(synced, simulator):
    engine, resource = synced
    stock, _, _ = _plant(engine, simulator)
    _reconcile(engine, resource)
    edited = next(k for k, kind, fields in stock if fields == ("colour",))
    missing = next(k for k, kind, _ in stock if kind == "missing")

    outcome = _resolver(engine, resource, actor="ana").keep_local(
        store.Selection(entity="dealer_stock", keys=[edited, missing, "STK900001"])
    )

    assert sorted(outcome.done) == sorted([edited, "STK900001"]), outcome.refused
    assert list(outcome.refused) == [missing] and "no version to keep" in outcome.refused[missing]
    writes = {w["key"]: w for w in simulator.http.get("/_sim/dealer/writes").json()["items"]}
    # Only the field that differs is patched; the record the source lacks is created whole,
    # in the source's own spelling of its status.
    assert (writes[edited]["method"], writes[edited]["status"]) == ("PATCH", 200)
    assert writes[edited]["body"] == {"Colour": "Puce"}
    created = writes["STK900001"]
    assert (created["method"], created["status"]) == ("PUT", 201)
    assert created["body"]["Status"] == "Available" and "LastUpdated" not in created["body"]
    assert run_job().success  # the next sync reads the dealer system's new version: ours
    with engine.connect() as connection:
        colour = connection.execute(
            sa.text("SELECT colour FROM dealer_stock WHERE stock_number = :k"), {"k": edited}
        ).scalar_one()
        statuses = dict(
            connection.execute(
                sa.select(
                    reconciliation_discrepancies.c.record_key,
                    reconciliation_discrepancies.c.status,
                )
            ).all()
        )
        pushes = connection.execute(sa.text("SELECT status FROM reconciliation_pushes")).all()
    assert colour == "Puce"
    assert statuses[edited] == "resolved" and statuses[missing] == "open"
    assert [p.status for p in pushes] == ["applied", "applied"]
