"""Runtime thresholds in the `sync_config` table, read at every use.

Changing one (`sync-platform config set KEY VALUE`) applies at the next sync or sensor
tick without reloading the code location. Every setting is validated on write, so a bad
value is refused with a message instead of breaking the next run.

This module knows no feature: each feature declares its own settings where it uses them
(`MASS_DELETE_MAX_SHARE = setting("mass_delete_max_share", 0.2, share, "…")`) and reads
them through the returned `Setting`. The catalogue (`known_settings`) is what has been
declared in this process, so a command that lists or sets settings by name loads the code
location first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sync_platform.errors import ConfigurationError
from sync_platform.warehouse.platform_tables import sync_config


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    parse: Callable[[str], Any]
    description: str

    def read(self, connection: sa.Connection) -> Any:
        """The stored value, or the default when none is stored."""
        stored = self.read_stored(connection)
        return self.default if stored is None else stored

    def read_stored(self, connection: sa.Connection) -> Any | None:
        """The value an operator stored, or None: for a setting that overrides a value
        configured elsewhere (the environment) only when it is set."""
        stored = connection.execute(
            sa.select(sync_config.c.value).where(sync_config.c.key == self.key)
        ).scalar()
        return None if stored is None else self.parse(stored)


_DECLARED: dict[str, Setting] = {}


def setting(key: str, default: Any, parse: Callable[[str], Any], description: str) -> Setting:
    """Declare a runtime setting (once per key; declaring a key twice differently is a bug)."""
    declared = Setting(key, default, parse, description)
    existing = _DECLARED.setdefault(key, declared)
    if existing != declared:
        raise ValueError(f"runtime setting {key!r} is declared twice, differently")
    return existing


def known_settings() -> dict[str, Setting]:
    """Every setting declared so far, by key (sorted)."""
    return dict(sorted(_DECLARED.items()))


def _known(key: str) -> Setting:
    if key not in _DECLARED:
        raise ConfigurationError(
            f"unknown setting {key!r}", hint=f"known settings: {', '.join(known_settings())}"
        )
    return _DECLARED[key]


def get_setting(connection: sa.Connection, key: str) -> Any:
    return _known(key).read(connection)


def set_setting(connection: sa.Connection, key: str, value: str, updated_by: str = "cli") -> Any:
    declared = _known(key)
    try:
        parsed = declared.parse(value)
    except ValueError as exc:
        raise ConfigurationError(f"{key}={value!r} is not valid: {exc}") from None
    row = {"value": str(parsed), "updated_at": datetime.now(UTC), "updated_by": updated_by}
    updated = connection.execute(sa.update(sync_config).where(sync_config.c.key == key).values(row))
    if updated.rowcount == 0:
        connection.execute(sa.insert(sync_config).values(key=key, **row))
    return parsed


def all_settings(connection: sa.Connection) -> dict[str, Any]:
    return {key: declared.read(connection) for key, declared in known_settings().items()}


# -- parsers: each raises ValueError with what a valid value looks like ----------------------


def share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError("must be a share between 0 (exclusive) and 1, e.g. 0.2 for 20%")
    return value


def share_or_zero(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError("must be a share between 0 and 1 (0: any quarantined record alerts)")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number ≥ 0")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a whole number ≥ 1")
    return value


def factor(text: str) -> float:
    value = float(text)
    if value <= 1:
        raise ValueError("must be greater than 1, e.g. 1.5")
    return value


def positive_minutes(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be a number of minutes > 0, e.g. 15")
    return value
