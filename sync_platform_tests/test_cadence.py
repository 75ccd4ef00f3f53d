"""The schedules' cadence: as written in production, compressed under the soak's
SYNC_PLATFORM_CADENCE_SPEEDUP, and a schedule whose previous run is still going skips."""

import os
import subprocess
import sys

import dagster as dg
import pytest

from sync_platform.orchestration.automation import cadence, sensor_interval, utc_schedule
from sync_platform.settings import CADENCE_SPEEDUP_ENV


def test_without_a_speedup_every_cron_and_interval_is_as_written(monkeypatch):
    monkeypatch.delenv(CADENCE_SPEEDUP_ENV, raising=False)
    assert cadence("10 * * * *") == "10 * * * *"
    assert sensor_interval(600) == 600


def test_a_speedup_divides_each_period(monkeypatch):
    monkeypatch.setenv(CADENCE_SPEEDUP_ENV, "24")
    assert cadence("10 * * * *") == "*/2 * * * *"  # hourly: 150 s → 2 minutes
    assert cadence("0 2 * * *") == "0 * * * *"  # daily → hourly
    assert cadence("30 3 * * 0") == "0 */7 * * *"  # weekly → every 7 hours
    assert cadence("*/5 * * * *") == "*/1 * * * *"  # never below a minute
    assert sensor_interval(600) == 25 and sensor_interval(30) == 5


@pytest.mark.parametrize("value", ["0.5", "fast", "-3"])
def test_a_speedup_that_is_not_a_number_of_at_least_one_is_refused(monkeypatch, value):
    monkeypatch.setenv(CADENCE_SPEEDUP_ENV, value)
    with pytest.raises(ValueError, match=f"{CADENCE_SPEEDUP_ENV}=.*unset it"):
        cadence("0 * * * *")


def test_the_loaded_code_location_runs_its_schedules_and_sensors_faster():
    """The crons are read when the definitions load, so this loads them in a fresh process
    with the speedup set, as the soak's code server does."""
    script = (
        "from sync_platform.definitions import defs\n"
        "repo = defs().get_repository_def()\n"
        "print(repo.get_schedule_def('legacy_erp_delta_hourly').cron_schedule)\n"
        "print(repo.get_schedule_def('ga4_daily_with_lookback').cron_schedule)\n"
        "print(repo.get_sensor_def('ga4_missing_partitions_sensor').minimum_interval_seconds)\n"
    )
    env = {**os.environ, CADENCE_SPEEDUP_ENV: "60"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["*/1", "*", "*", "*", "*", "*/24", "*", "*", "*", "*", "10"]


@dg.op
def _noop() -> None:
    return None


@dg.job
def _some_job():
    _noop()


def test_a_schedule_skips_while_its_previous_run_is_unfinished():
    schedule = utc_schedule("some_schedule", _some_job, "0 * * * *", description="hourly")
    other = utc_schedule("other_schedule", _some_job, "0 * * * *", description="hourly")

    def tick(of: dg.ScheduleDefinition, instance: dg.DagsterInstance):
        with dg.build_schedule_context(instance=instance) as context:
            return of.evaluate_tick(context)

    with dg.instance_for_test() as instance:
        assert tick(schedule, instance).run_requests
        run = instance.create_run_for_job(
            _some_job, tags={"dagster/schedule_name": "some_schedule"}
        )  # created, not yet started: unfinished
        skipped = tick(schedule, instance)
        assert not skipped.run_requests
        assert skipped.skip_message == "the previous run of some_schedule is not finished yet"
        assert tick(other, instance).run_requests  # only its own runs hold a schedule back
        instance.report_run_failed(run)
        assert tick(schedule, instance).run_requests
