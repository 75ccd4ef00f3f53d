"""Fault injection: hostile records a source may send. Each bad record is quarantined with its
reason, the same on SQLite and PostgreSQL, and never fails the rest of its entity."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from sync_platform.engine.mapping import MAX_TEXT_CHARS, map_records
from sync_platform.engine.pipeline import run_entity_sync
from sync_platform.engine.ports import EntitySource, SyncRequest
from sync_platform.errors import WarehouseUnavailableError
from sync_platform.warehouse.platform_tables import (
    sync_alerts,
    sync_leases,
    sync_quarantine,
    sync_runs,
    webhook_inbox,
)
from sync_platform_tests.dagster_runs import materializations, run_job
from sync_platform_tests.records import LEADS, STOCK, lead, vehicle
from sync_platform_tests.test_dealer_end_to_end import source_stock, warehouse_stock


def test_nul_bytes_and_huge_values_are_quarantined_and_the_rest_loads(source_env, warehouse_url):
    good = source_stock(source_env)
    hostile = {
        3: vehicle(3, Make="Fo\u0000rd"),
        4: vehicle(4, Make="M" * 5_000_000),
        5: vehicle(5, Model="\u0000"),
    }
    for record in hostile.values():
        source_env.put_stock(record["StockNumber"], record)

    result = run_job()

    assert result.success
    stock = materializations(result)["dealer_stock"]
    assert (stock["fetched"], stock["quarantined"], stock["inserted"]) == (200, 3, 197)
    hostile_keys = {record["StockNumber"] for record in hostile.values()}
    assert set(warehouse_stock(warehouse_url)) == set(good) - hostile_keys
    engine = sa.create_engine(warehouse_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                sync_quarantine.c.record_key, sync_quarantine.c.reason, sync_quarantine.c.raw_record
            )
        ).all()
    engine.dispose()
    reasons = {key: reason for key, reason, _ in rows}
    assert reasons == {
        "STK000003": "make: holds a NUL character, which the warehouse cannot store",
        "STK000004": f"make: 5000000 characters, more than the {MAX_TEXT_CHARS} this field "
        "takes (checks.max_length in the entity's YAML)",
        "STK000005": "model: holds a NUL character, which the warehouse cannot store",
    }
    raw = {key: json.loads(text) for key, _, text in rows}
    assert raw["STK000003"]["Make"] == "Fo\u0000rd"  # the record kept exactly, NUL included
    # A second run changes nothing and quarantines the same three again.
    again = materializations(run_job())["dealer_stock"]
    assert (again["quarantined"], again["inserted"], again["updated"]) == (3, 0, 0)


def test_text_that_is_not_unicode_is_refused_per_record():
    """A lone surrogate (a JSON escape like \\ud800) cannot be encoded: it failed the whole
    page before; now only its record is refused."""
    records = [vehicle(1), vehicle(2, Model="x\ud800y"), vehicle(3)]

    typed, rejects = map_records(records, STOCK)

    assert typed.get_column("stock_number").to_list() == ["STK000001", "STK000003"]
    (reject,) = rejects
    assert reject.record_key == "STK000002"
    assert reject.reason == "model: holds text that is not valid Unicode"


def test_a_refused_value_is_quoted_briefly_in_its_reason():
    records = [vehicle(1, Year="9" * 10_000)]

    _, (reject,) = map_records(records, STOCK)

    assert reject.reason.startswith("year: '99999")
    assert reject.reason.endswith("(10,002 chars) is not a valid integer")
    assert len(reject.reason) < 200


def source_leads(simulator) -> dict[int, str]:
    """Every lead the dealer system holds: id → status."""
    leads = simulator.http.get("/_sim/dealer/leads").json()["items"]
    return {lead["LeadId"]: lead["Status"].lower() for lead in leads}


def warehouse_leads(url: str) -> dict[int, str]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT lead_id, status FROM dealer_leads WHERE _deleted_at IS NULL")
        ).all()
    engine.dispose()
    return {int(lead_id): status for lead_id, status in rows}


def test_a_record_from_the_year_9999_never_freezes_an_incremental_entity(source_env, warehouse_url):
    assert run_job().success  # the first read of the leads is a full one
    source_env.http.put("/_sim/dealer/leads/9001", json=lead(9001, updated="9999-12-31T00:00:00Z"))

    planted = run_job()

    assert planted.success
    leads = materializations(planted)["dealer_leads"]
    assert leads["quarantined"] == 1
    engine = sa.create_engine(warehouse_url)
    with engine.connect() as connection:
        cursor = connection.execute(
            sa.text("SELECT cursor FROM sync_state WHERE entity = 'dealer_leads'")
        ).scalar()
        reason = connection.execute(
            sa.select(sync_quarantine.c.reason).where(sync_quarantine.c.record_key == "9001")
        ).scalar()
        alert = connection.execute(
            sa.select(sync_alerts.c.message).where(
                sync_alerts.c.dedup_key == "data_integrity:dealer_feed:dealer_leads"
            )
        ).scalar()
    assert not cursor.startswith("9999")
    assert reason.startswith("updated_at: 9999-12-31 00:00:00+00:00 is later than this clock")
    assert "9001" in alert and "dealer_leads" in alert
    # Later changes and new leads still arrive, every one of them.
    source_env.mutate_leads(change=40, add=25)
    assert run_job().success
    leads = source_env.http.get("/_sim/dealer/leads").json()["items"]
    future = {lead["LeadId"] for lead in leads if lead["UpdatedAt"].startswith("9999")}
    expected = {k: v for k, v in source_leads(source_env).items() if k not in future}
    assert warehouse_leads(warehouse_url) == expected
    engine.dispose()


def test_a_key_the_change_feed_never_sent_arrives_with_the_daily_full_read(
    source_env, warehouse_url
):
    assert run_job().success
    assert run_job().success  # an incremental read: the full one was just now
    # A lead the change feed never shows: dated before the cursor (a source that backdated it).
    source_env.http.put("/_sim/dealer/leads/9002", json=lead(9002, updated="2020-01-01T00:00:00Z"))
    assert run_job().success
    assert 9002 not in warehouse_leads(warehouse_url)
    engine = sa.create_engine(warehouse_url)
    with engine.begin() as connection:  # the last full read was a day ago
        runs = connection.execute(
            sa.select(sync_runs.c.id, sync_runs.c.started_at).where(
                sync_runs.c.entity == "dealer_leads"
            )
        ).all()
        for run_id, started in runs:
            connection.execute(
                sync_runs.update()
                .where(sync_runs.c.id == run_id)
                .values(started_at=started - timedelta(hours=25))
            )

    full = run_job()

    assert full.success
    assert warehouse_leads(warehouse_url) == source_leads(source_env)
    with engine.connect() as connection:
        kinds = (
            connection.execute(
                sa.select(sync_runs.c.kind)
                .where(sync_runs.c.entity == "dealer_leads")
                .order_by(sync_runs.c.id)
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert kinds == ["snapshot", "changes", "changes", "snapshot"]


@pytest.mark.parametrize("warehouse_url", ["postgresql"], indirect=True)
def test_a_connection_lost_mid_merge_is_a_clear_retryable_error_with_nothing_changed(
    engine, warehouse_url
):
    """The warehouse connection dies inside the load transaction (a server restart, a
    failover, pg_terminate_backend): the operator reads where and what to do, not driver
    text; nothing of the sync is in; the same sync again loads everything."""
    records = [lead(i, updated=f"2026-11-01T09:{i % 60:02d}:00Z") for i in range(50)]

    def die(connection, _sync_run_id, _rejects):
        connection.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))

    request = SyncRequest("dealer_feed", LEADS)
    with pytest.raises(WarehouseUnavailableError) as lost:
        run_entity_sync(engine, request, EntitySource(pages=lambda since: [records], on_commit=die))

    message = str(lost.value)
    assert message.startswith("lost the warehouse connection to postgresql+psycopg://postgres@")
    assert "the sync changed nothing (" in message
    assert message.endswith(
        "What to do: check SYNC_PLATFORM_WAREHOUSE_URL and that the database "
        "is up and accepts connections"
    )
    assert lost.value.category == "database"
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM dealer_leads")).scalar() == 0
        (status,) = connection.execute(sa.select(sync_runs.c.status)).scalars().all()
        assert status == "failed"
        assert connection.execute(sa.select(sa.func.count()).select_from(sync_leases)).scalar() == 0
    again = run_entity_sync(engine, request, EntitySource(pages=lambda since: [records]))
    assert again.merge.inserted == 50


def test_the_receiver_killed_mid_burst_loses_nothing_and_duplicates_nothing(
    source_env, warehouse_url, engine
):
    """kill -9 of the receiver while n8n sends 400 deliveries, restarted on the same port:
    n8n's retries and then the gap resync bring every delivery into the inbox exactly once."""
    from sync_platform_simulator.background_server import free_port
    from sync_platform_simulator.environment import simulator_environment
    from sync_platform_tests.test_receiver import ReceiverProcess

    environment = simulator_environment(source_env.url)
    port = free_port()
    receiver = ReceiverProcess(warehouse_url, environment=environment, port=port)
    sent: dict = {}

    def burst() -> None:
        sent["report"] = source_env.send_webhooks(
            receiver.url, "new_lead", 400, seed=71, concurrency=8, delay_ms=40
        )

    thread = threading.Thread(target=burst)
    thread.start()
    time.sleep(1.0)
    receiver.kill()  # SIGKILL mid-burst
    time.sleep(1.0)
    receiver = ReceiverProcess(warehouse_url, environment=environment, port=port)
    thread.join(timeout=300)
    try:
        report = sent["report"]
        assert report["deliveries"]["failed"] or report["responses"].get("error")  # it hurt
        assert run_job("n8n_gap_resync").success
        assert run_job("process_webhooks").success
    finally:
        receiver.kill()
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(webhook_inbox.c.delivery_id, webhook_inbox.c.status)
        ).all()
    assert len(rows) == 400
    assert {delivery_id for delivery_id, _ in rows} == set(report["deliveries"]["ids"])
    assert {status for _, status in rows} == {"processed"}
