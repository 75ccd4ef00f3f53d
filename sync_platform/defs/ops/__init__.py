"""Platform operations: alerting, health, backups, retention."""
