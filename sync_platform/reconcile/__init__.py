"""Reconciliation: every difference between a source and the warehouse, judged, stored,
and resolved with an audit trail (docs/reconciliation.md)."""
