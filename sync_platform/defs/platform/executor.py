"""The code location's executor (orchestration/executor.py)."""

import dagster as dg

from sync_platform.orchestration.executor import step_executor

defs = dg.Definitions(executor=step_executor)
