"""Dagster definitions: one folder per source system (each registers its own resource), plus
marts, platform-wide definitions and operations.

Loaded by sync_platform/definitions.py (dg.load_from_defs_folder).
"""
