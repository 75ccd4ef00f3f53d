"""Platform-wide definitions: the full sync job and run-failure recording."""
