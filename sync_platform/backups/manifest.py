"""The manifest of a backup: enough to verify and restore it without the warehouse.

It is written beside the backup file (`<id>.manifest.json`) and into the `backups` table;
restore reads the one in storage, because the warehouse may be what was lost.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime

MANIFEST_VERSION = 1
# A backup id or file name: one plain name in the backup directory, never a path.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,150}$")


def safe_name(value: object, what: str) -> str:
    """`value` when it is a plain file name; a ValueError naming `what` otherwise."""
    if not isinstance(value, str) or not SAFE_NAME.match(value) or ".." in value:
        shown = repr(value)[:60]
        raise ValueError(f"{what} {shown} is not a plain name (letters, digits, '_', '-', '.')")
    return value


@dataclass
class Manifest:
    id: str
    kind: str  # 'full' | 'inbox'
    created_at: datetime
    source_database: str  # redacted URL
    dialect: str  # 'postgresql' | 'sqlite'
    file_name: str
    size_bytes: int
    sha256: str
    encrypted: bool
    key_id: str | None
    table_counts: dict[str, int]
    table_checksums: dict[str, str]
    tool_versions: dict[str, str] = field(default_factory=dict)
    backup_seconds: float = 0.0
    version: int = MANIFEST_VERSION
    mac: str | None = None  # HMAC of every other field, under the backup key (crypto.py)

    def signed_text(self) -> bytes:
        """What the MAC covers: every field but the MAC, canonically."""
        data = asdict(self)
        data.pop("mac")
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        known = set(cls.__dataclass_fields__)
        manifest = cls(**{key: value for key, value in data.items() if key in known})
        safe_name(manifest.id, "backup id")
        safe_name(manifest.file_name, "file name")
        return manifest


def manifest_name(backup_id: str) -> str:
    return f"{safe_name(backup_id, 'backup id')}.manifest.json"
