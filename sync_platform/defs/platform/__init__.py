"""Platform-wide definitions across sources: the warehouse resource, the full sync job, the gap
resync sensor and run-failure recording."""
