"""The manifest of a backup: enough to verify and restore it without the warehouse.

It is written beside the backup file (`<id>.manifest.json`) and into the `backups` table;
restore reads the one in storage, because the warehouse may be what was lost.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

MANIFEST_VERSION = 1


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

    def to_json(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})


def manifest_name(backup_id: str) -> str:
    return f"{backup_id}.manifest.json"
