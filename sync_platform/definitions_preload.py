"""Imported by the multiprocess executor's forkserver (orchestration/executor.py): builds the
code location's definitions in the forkserver, so every step process forked from it starts
with them instead of importing and building them again."""

from sync_platform.definitions import preload

preload()
