"""Dagster definitions, one folder per source system plus platform-wide ones; loaded by definitions.py."""
