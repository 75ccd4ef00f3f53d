"""Platform operations: alerting sensors, the health report, backups (and their resource)."""
