"""Marts: what the business reads, built from synced entities (source → warehouse → mart)."""
