"""Imported by the multiprocess executor's forkserver (orchestration/executor.py): builds the
code location's definitions in the forkserver, so every step process forked from it starts
with them instead of importing and building them again. pandera, which loading the code
location leaves out (engine/validation.py), is imported here too: every sync and check step
validates with it. So is pyarrow, which polars loads on a frame's first `to_arrow()`: every
write to PostgreSQL takes that path (warehouse/bulk.py)."""

import pandera.polars  # noqa: F401
import pyarrow  # noqa: F401

from sync_platform.definitions import preload

preload()
