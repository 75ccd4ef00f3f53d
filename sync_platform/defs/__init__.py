"""Dagster definitions: one folder per source system, plus platform-wide ones.

Loaded by sync_platform/definitions.py.
"""
