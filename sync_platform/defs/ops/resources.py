"""Backups as a Dagster resource, registered under `backups`: where they go and the key that
encrypts them (EnvVar)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sync_platform import settings
from sync_platform.backups.service import BackupConfig
from sync_platform.orchestration.resources import optional_env


class BackupResource(dg.ConfigurableResource):
    """The backup directory (a local path or mounted volume) and the age identity.

    The key comes from SYNC_PLATFORM_BACKUP_KEY through `EnvVar`, so the UI shows the
    variable's name, never the key.
    """

    directory: str = Field(description=f"backup directory ({settings.BACKUP_DIR_ENV})")
    key: str | None = Field(
        default=None, description=f"age identity, AGE-SECRET-KEY-1… ({settings.BACKUP_KEY_ENV})"
    )
    allow_unencrypted: bool = Field(
        default=False,
        description="write plain backups when no key is set "
        f"({settings.BACKUP_ALLOW_UNENCRYPTED_ENV})",
    )

    def backup_config(self) -> BackupConfig:
        return BackupConfig.from_values(self.directory, self.key, self.allow_unencrypted)


@dg.definitions
def resources() -> dg.Definitions:
    import os

    allow = os.environ.get(settings.BACKUP_ALLOW_UNENCRYPTED_ENV, "").lower() in ("1", "true")
    backups = BackupResource(
        directory=optional_env(settings.BACKUP_DIR_ENV, str(settings.backup_dir())),
        key=optional_env(settings.BACKUP_KEY_ENV, None),
        allow_unencrypted=allow,
    )
    return dg.Definitions(resources={"backups": backups})
