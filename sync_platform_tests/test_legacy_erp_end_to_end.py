"""The legacy ERP end to end (Dagster jobs → client → simulator → warehouse) on SQLite and
PostgreSQL: deltas, the weekly full sync, referential order, dirty data."""

from __future__ import annotations

import sqlalchemy as sa

from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform_tests.dagster_runs import check_results, materializations, run_job

ENTITIES = ("legacy_products", "legacy_variants", "legacy_customers")


def counts(url: str) -> dict[str, int]:
    engine = create_warehouse_engine(url)
    with engine.connect() as connection:
        found = {
            table: connection.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE _deleted_at IS NULL")
            ).scalar()
            for table in ENTITIES
        }
    engine.dispose()
    return found


def small_erp(simulator) -> dict:
    return simulator.erp("POST", "/reset", {"products": 30, "variants": 60, "customers": 40})


def test_delta_sync_loads_everything_then_exactly_what_changed(source_env, warehouse_url):
    small_erp(source_env)
    first = run_job("legacy_erp_sync")
    assert first.success
    assert counts(warehouse_url) == {
        "legacy_products": 30,
        "legacy_variants": 60,
        "legacy_customers": 40,
    }
    checks = check_results(first)
    assert all(checks[f"{e}:schema_valid"] and checks[f"{e}:in_step_with_source"] for e in ENTITIES)

    again = materializations(run_job("legacy_erp_sync"))
    for entity in ENTITIES:  # the overlap margin re-reads, but nothing is written twice
        assert (again[entity]["inserted"], again[entity]["updated"]) == (0, 0), entity

    changed = source_env.erp("POST", "/mutate", {"entity": "products", "change": 4, "add": 2})
    delta = materializations(run_job("legacy_erp_sync"))["legacy_products"]
    assert (delta["updated"], delta["inserted"]) == (len(changed["changed"]), 2)
    assert delta["fetched"] < 30  # a delta, not a full read
    assert counts(warehouse_url)["legacy_products"] == 32


def test_the_weekly_full_sync_soft_deletes_what_the_erp_removed(source_env, warehouse_url):
    small_erp(source_env)
    run_job("legacy_erp_sync")
    removed = source_env.erp("POST", "/mutate", {"entity": "customers", "remove": 3})["removed"]

    delta = materializations(run_job("legacy_erp_sync"))["legacy_customers"]
    assert delta["soft_deleted"] == 0  # a delta cannot see deletions
    full = run_job("legacy_erp_full_sync")
    assert full.success
    assert materializations(full)["legacy_customers"]["soft_deleted"] == 3
    engine = create_warehouse_engine(warehouse_url)
    with engine.connect() as connection:
        gone = (
            connection.execute(
                sa.text("SELECT customer_no FROM legacy_customers WHERE _deleted_at IS NOT NULL")
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert sorted(gone) == sorted(str(key) for key in removed)


def test_a_variant_arriving_before_its_product_waits_for_it(source_env, warehouse_url):
    small_erp(source_env)
    run_job("legacy_erp_sync")
    orphan = source_env.erp("POST", "/variants/orphan", {})

    early = materializations(run_job("legacy_erp_sync"))["legacy_variants"]
    assert early["held"] == 1 and early["inserted"] == 0
    engine = create_warehouse_engine(warehouse_url)
    with engine.connect() as connection:
        assert (
            connection.execute(
                sa.text("SELECT count(*) FROM legacy_variants WHERE variant_code = :code"),
                {"code": orphan["VariantCode"]},
            ).scalar()
            == 0
        )

    source_env.erp("POST", "/mutate", {"entity": "products", "add": 1})  # the parent arrives
    later = materializations(run_job("legacy_erp_sync"))["legacy_variants"]
    assert (later["inserted"], later["released"], later["held"]) == (1, 1, 0)
    with engine.connect() as connection:
        parent = connection.execute(
            sa.text("SELECT product_code FROM legacy_variants WHERE variant_code = :code"),
            {"code": orphan["VariantCode"]},
        ).scalar()
    engine.dispose()
    assert parent == orphan["ProductCode"]


def test_dirty_legacy_values_are_cleaned_by_rule_and_the_rest_quarantined(
    source_env, warehouse_url
):
    small_erp(source_env)
    nan = source_env.erp(
        "POST", "/dirty", {"entity": "products", "field": "ListPrice", "kind": "nan", "count": 2}
    )["keys"]
    padded = source_env.erp(
        "POST",
        "/dirty",
        {"entity": "products", "field": "Name", "kind": "trailing_spaces", "count": 2},
    )["keys"]
    zero = source_env.erp(
        "POST",
        "/dirty",
        {"entity": "products", "field": "ModifiedDate", "kind": "zero_date", "count": 1},
    )["keys"]
    result = run_job("legacy_erp_sync")
    assert result.success
    products = materializations(result)["legacy_products"]
    assert products["quarantined"] == 1  # no rule makes 0000-00-00 a valid required date
    engine = create_warehouse_engine(warehouse_url)
    with engine.connect() as connection:
        prices = dict(
            connection.execute(
                sa.text("SELECT product_code, list_price FROM legacy_products")
            ).all()
        )
        names = dict(
            connection.execute(sa.text("SELECT product_code, name FROM legacy_products")).all()
        )
        quarantined = connection.execute(
            sa.text("SELECT record_key, reason FROM sync_quarantine")
        ).all()
    engine.dispose()
    assert all(prices[key] is None for key in nan if key not in zero)
    assert all(names[key] == names[key].strip() for key in padded if key not in zero)
    assert [key for key, _ in quarantined] == zero
    assert "modified_at: required value is missing" in quarantined[0][1]


def test_the_full_sync_stays_full_when_a_run_config_confirms_a_mass_delete(
    source_env, warehouse_url
):
    """A person confirms a refused mass delete as the docs say (run config holding only
    `allow_mass_delete`): the job is still a full sync, and the deletions happen."""
    small_erp(source_env)
    run_job("legacy_erp_sync")
    removed = source_env.erp("POST", "/mutate", {"entity": "customers", "remove": 20})["removed"]

    refused = run_job("legacy_erp_full_sync")
    customers = materializations(refused)["legacy_customers"]
    assert customers["soft_deleted"] == 0 and "refused to soft-delete 20" in customers["notes"]
    check = {
        evaluation.check_name: evaluation
        for evaluation in refused.get_asset_check_evaluations()
        if evaluation.asset_key.to_user_string() == "legacy_customers"
    }["in_step_with_source"]
    assert not check.passed
    assert check.metadata["unexpected_in_warehouse"].value == 20
    assert check.description.startswith("20 key(s) in the warehouse the source no longer lists")
    assert "refused to soft-delete 20" in check.description  # with what to do about it
    assert check.metadata["sync_platform/healing"].value is False  # a person must decide
    named = check.metadata["unexpected_keys"].value.split(", ")
    assert sorted(named) == sorted(str(key) for key in removed)

    confirm = {"ops": {"legacy_customers": {"config": {"allow_mass_delete": True}}}}
    confirmed = run_job("legacy_erp_full_sync", run_config=confirm)
    assert confirmed.success
    assert materializations(confirmed)["legacy_customers"]["soft_deleted"] == 20
    assert check_results(confirmed)["legacy_customers:in_step_with_source"]


def test_a_stale_source_row_is_one_conflict_not_one_per_run(source_env, warehouse_url):
    """The ERP serves an older version of rows the warehouse has newer (it was restored from
    a backup): newest wins, the conflict is logged once, and re-runs that change nothing
    log nothing."""
    small_erp(source_env)
    source_env.erp("POST", "/mutate", {"entity": "products", "change": 5})
    run_job("legacy_erp_full_sync")  # the warehouse holds the newer versions
    small_erp(source_env)  # same seed: the ERP is back to the older versions of those rows

    first = materializations(run_job("legacy_erp_full_sync"))["legacy_products"]
    assert first["conflicts"] == 5
    for _ in range(2):
        again = materializations(run_job("legacy_erp_full_sync"))["legacy_products"]
        assert again["conflicts"] == 0 and again["updated"] == 0
    engine = create_warehouse_engine(warehouse_url)
    with engine.connect() as connection:
        logged = connection.execute(sa.text("SELECT count(*) FROM sync_conflicts")).scalar()
    engine.dispose()
    assert logged == 5
