"""`automation_condition_sensor`: evaluates the marts' automation conditions (a mart refreshes
when its inputs have new data and their blocking checks passed). Dagster's own default
sensor for automation conditions starts stopped, so the code location brings one that runs."""

import dagster as dg

from sync_platform.orchestration.automation import sensor_interval

automation_condition_sensor = dg.AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=sensor_interval(60),
    description="Requests runs for assets whose automation condition holds (the marts).",
)
