"""The gap resync against workflows built three ways, as n8n users build them: our convention
(the item entering the send node carries webhookId and body), a "Build payload" node whose
items ARE the bodies with `n8n-<execution>-<item>` ids, and several items per execution.
Each delivery id ends up in the inbox exactly once, processed; what cannot be recovered is
named, and nothing else; n8n's rate limit is waited out; failed executions are reported."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import yaml

from sync_platform.config.loader import PACKAGE_CONFIG_DIR
from sync_platform.settings import CONFIG_DIR_ENV, ENVIRONMENT_ENV
from sync_platform.warehouse.platform_tables import sync_alerts, sync_runs, webhook_inbox
from sync_platform_tests.dagster_runs import materializations, run_job

BUILD_PAYLOAD = {"node": "Build payload", "body": "item"}
# How each workflow is built in the simulated n8n, and what webhooks.yaml says about it.
BUILDS = {
    "form_submission": ({"build": "convention"}, {"items": "one"}),
    "new_lead": (
        {"build": "build_node"},
        {
            "send_node": "HTTP Request",
            "items": "one",
            "payload": BUILD_PAYLOAD | {"delivery_id": "n8n-{execution_id}-{item_index}"},
        },
    ),
    "order_update": (
        {"build": "multi_item", "items": [1, 5]},
        {
            "send_node": "HTTP Request",
            "items": "many",
            "payload": BUILD_PAYLOAD | {"delivery_id": "n8n-{execution_id}-{item_index}"},
        },
    ),
}


def overlay(tmp_path, monkeypatch, workflows: dict[str, dict]) -> None:
    """The bundled config with an environment overlay of webhooks.yaml."""
    target = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, target)
    folder = target / "environments" / "test"
    folder.mkdir(parents=True)
    (folder / "webhooks.yaml").write_text(yaml.safe_dump({"workflows": workflows}))
    monkeypatch.setenv(CONFIG_DIR_ENV, str(target))
    monkeypatch.setenv(ENVIRONMENT_ENV, "test")


@pytest.fixture
def three_builds(source_env, tmp_path, monkeypatch):
    overlay(tmp_path, monkeypatch, {key: config for key, (_, config) in BUILDS.items()})
    return source_env


def send(simulator, receiver, key: str, count: int, seed: int, **faults) -> dict:
    return simulator.send_webhooks(
        receiver.url, key, count, seed=seed, concurrency=16, **BUILDS[key][0], **faults
    )


def inbox(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.select(webhook_inbox.c.delivery_id, webhook_inbox.c.status)
            )
        ]


def alerts(engine: sa.Engine, type_: str) -> dict[str, sa.Row]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(sync_alerts).where(sync_alerts.c.type == type_))
        return {row.dedup_key.split(":", 1)[1]: row for row in rows}


def process_everything() -> None:
    """The processing runs the sensor would launch, until nothing is pending."""
    assert run_job("process_webhooks").success


def test_a_thousand_deliveries_from_three_builds_arrive_exactly_once(
    three_builds, n8n_receiver, engine
):
    simulator = three_builds
    faults = {"drop_rate": 0.05, "duplicate_rate": 0.10}
    reports = {
        "form_submission": send(simulator, n8n_receiver, "form_submission", 400, 1, **faults),
        "new_lead": send(simulator, n8n_receiver, "new_lead", 300, 2, **faults),
        "order_update": send(simulator, n8n_receiver, "order_update", 120, 3, **faults),
    }
    expected = {i for r in reports.values() for i in r["deliveries"]["ids"]}
    dropped = {i for r in reports.values() for i in r["deliveries"]["dropped"]}
    duplicated = {i for r in reports.values() for i in r["deliveries"]["duplicated"]}
    assert len(expected) >= 1000 and len(dropped) >= 30 and len(duplicated) >= 60
    # Some multi-item executions lost one item while another arrived: an execution-level
    # comparison would call them complete.
    partly = [
        e for e in reports["order_update"]["dropped"] if e in reports["order_update"]["delivered"]
    ]
    assert partly
    process_everything()

    check = run_job("n8n_gap_resync")

    assert check.success
    metadata = materializations(check)["n8n_delivery_gaps"]
    for key, report in reports.items():
        assert metadata[f"{key}/resynced"] == len(report["deliveries"]["dropped"]), key
    process_everything()
    rows = inbox(engine)
    assert len(rows) == len(expected)  # each delivery once, duplicates refused
    assert {delivery_id for delivery_id, _ in rows} == expected
    assert {status for _, status in rows} == {"processed"}
    # The multi-item workflow's executions were each read once; the one-item workflows' only
    # when nothing of them arrived.
    served = simulator.served("/n8n/api/v1/executions/")
    reads = sum(count for (path, status), count in served.items() if status == 200)
    single = sum(len(reports[k]["dropped"]) for k in ("form_submission", "new_lead"))
    assert reads == single + len(reports["order_update"]["executions"])
    again = materializations(run_job("n8n_gap_resync"))["n8n_delivery_gaps"]
    assert all(again[f"{key}/read"] == 0 for key in BUILDS)
    assert len(inbox(engine)) == len(expected)


def test_with_pruning_exactly_the_unrecoverable_executions_are_named(
    three_builds, n8n_receiver, engine
):
    simulator = three_builds
    reports, lost = {}, {}
    for seed, key in enumerate(BUILDS, start=20):
        reports[key] = send(simulator, n8n_receiver, key, 30, seed, drop_rate=0.15)
        lost[key] = sorted(reports[key]["dropped"], key=int)
        assert lost[key]
        # n8n prunes them between the check's listing of this workflow and its reads.
        prune = {"execution_ids": lost[key], "when": "after_next_list", "workflow_key": key}
        simulator.n8n("POST", "/prune", prune)
        assert run_job("n8n_gap_resync").success

    named = alerts(engine, "webhook_delivery_lost")
    assert set(named) == set(BUILDS)
    for key, ids in lost.items():
        assert named[key].details["lost"] == ids, key
        assert named[key].details["pruned"] == ids, key
    arrived = named["order_update"].details["arrived"]
    partly = [e for e in lost["order_update"] if e in reports["order_update"]["delivered"]]
    assert sorted(arrived, key=int) == partly
    # Every delivery of the executions n8n still had is in, once.
    kept = {
        i
        for key, report in reports.items()
        for i in report["deliveries"]["ids"]
        if i not in report["deliveries"]["dropped"]
    }
    assert {delivery_id for delivery_id, _ in inbox(engine)} == kept


def test_n8ns_rate_limit_is_waited_out(three_builds, n8n_receiver, engine):
    simulator = three_builds
    report = send(simulator, n8n_receiver, "order_update", 40, 31, drop_rate=0.1)
    window = 2.0
    simulator.n8n("POST", "/rate-limit", {"read_limit": 15, "window_seconds": window})
    started = time.monotonic()

    check = run_job("n8n_gap_resync")

    elapsed = time.monotonic() - started
    simulator.n8n("DELETE", "/rate-limit")
    assert check.success
    assert materializations(check)["n8n_delivery_gaps"]["order_update/resynced"] == len(
        report["deliveries"]["dropped"]
    )
    refused = sum(
        count for (_, status), count in simulator.served("/n8n/api/v1/").items() if status == 429
    )
    # 40 reads and 6 lists at 15 per window: at least two refusals, each waited out (one
    # refusal per window at most, never a burst of retries).
    assert refused >= 2
    assert refused <= elapsed / window + 1
    assert elapsed >= 2 * window * 0.9


def test_failed_executions_are_reported_and_what_they_built_resent(
    source_env, n8n_receiver, engine, tmp_path, monkeypatch
):
    simulator = source_env
    overlay(tmp_path, monkeypatch, {"new_lead": {"items": "one", "resend_failed": True}})
    report = simulator.send_webhooks(
        n8n_receiver.url, "new_lead", 40, seed=41,
        error_before_send_rate=0.1, error_in_send_rate=0.1,
    )  # fmt: skip
    before, in_send = report["errored_before_send"], report["errored_in_send"]
    assert before and in_send

    check = run_job("n8n_gap_resync")

    assert check.success
    (alert,) = alerts(engine, "n8n_execution_failed").values()
    assert sorted(alert.details["failed"], key=int) == sorted(before + in_send, key=int)
    assert sorted(alert.details["not_resent"], key=int) == sorted(before, key=int)
    assert alert.severity == "high"  # some sent nothing that could be resent
    for execution_id in before:
        assert f"{execution_id} in node 'Build payload': Cannot read properties" in alert.message
    resent = set(report["deliveries"]["not_sent"])
    assert set(alert.details["resent_deliveries"]) == resent
    assert resent <= {delivery_id for delivery_id, _ in inbox(engine)}
    # Read once: a second check reads nothing and raises nothing new.
    again = run_job("n8n_gap_resync")
    assert materializations(again)["n8n_delivery_gaps"]["new_lead/read"] == 0
    assert alerts(engine, "n8n_execution_failed")["new_lead"].occurrences == 1


def test_a_workflow_built_another_way_is_named_misconfigured_then_recovered_once_fixed(
    source_env, n8n_receiver, engine, tmp_path, monkeypatch
):
    simulator = source_env
    report = simulator.send_webhooks(
        n8n_receiver.url, "new_lead", 20, seed=51, drop_rate=0.3, build="build_node"
    )
    assert report["dropped"]
    first = run_job("n8n_gap_resync")  # webhooks.yaml still says: our convention
    assert first.success
    with engine.connect() as connection:
        message = connection.execute(
            sa.select(sync_runs.c.message)
            .where(sync_runs.c.source == "n8n", sync_runs.c.entity == "new_lead")
            .order_by(sync_runs.c.id.desc())
        ).scalar()
    assert (
        "webhooks.yaml does not fit the workflow: node 'Send to warehouse' (send_node) not "
        f"found in execution {report['dropped'][0]}; its nodes are 'CRM webhook', "
        "'Build payload', 'HTTP Request'"
    ) in message

    overlay(tmp_path, monkeypatch, {"new_lead": BUILDS["new_lead"][1]})
    fixed = run_job("n8n_gap_resync")

    assert materializations(fixed)["n8n_delivery_gaps"]["new_lead/resynced"] == len(
        report["deliveries"]["dropped"]
    )
    assert {i for i, _ in inbox(engine)} == set(report["deliveries"]["ids"])
    assert not alerts(engine, "webhook_delivery_lost")


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_a_check_after_a_long_pause_says_which_period_it_could_not_check(
    source_env, n8n_receiver, engine
):
    source_env.send_webhooks(n8n_receiver.url, "new_lead", 2, seed=61)
    long_ago = datetime.now(UTC) - timedelta(days=20)
    with engine.begin() as connection:
        connection.execute(
            sync_runs.insert().values(
                source="n8n", entity="new_lead", trigger="scheduled",
                started_at=long_ago, finished_at=long_ago, status="succeeded",
            )
        )  # fmt: skip

    check = run_job("n8n_gap_resync")

    period = materializations(check)["n8n_delivery_gaps"]["new_lead/unchecked_period"]
    start, end = (datetime.fromisoformat(moment) for moment in period.split(" .. "))
    assert abs((start - long_ago).total_seconds()) < 1
    assert abs((datetime.now(UTC) - timedelta(hours=336) - end).total_seconds()) < 120
    assert check.success
