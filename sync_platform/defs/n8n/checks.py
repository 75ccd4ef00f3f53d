"""Schema and quarantine checks of the n8n event tables (one op for the source)."""

from sync_platform.defs.n8n.assets import N8N_EVENTS
from sync_platform.orchestration.checks import entity_checks

# No volume check: a processing run takes whatever arrived since the last one, so its size
# says nothing about the source (lost deliveries are found by n8n_delivery_gaps instead).
n8n_event_checks = entity_checks(N8N_EVENTS, volume=False)
