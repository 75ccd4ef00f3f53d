"""Where backup files live, behind a small interface so an object store can be added.

`LocalDirectoryStorage` is a local path or a mounted volume. Every write goes to a temporary
name in the same directory, is fsynced, then renamed: a crash leaves a `.tmp-*` file that
never looks like a complete backup (and is removed by the next prune), never half a backup.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from sync_platform.errors import ConfigurationError

TEMP_PREFIX = ".tmp-"


class BackupStorage(Protocol):
    """What the backup service needs from a place to keep backups."""

    def describe(self) -> str: ...

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        """A file to write `name` through; it appears only if the block ends without error."""
        ...

    def write_text(self, name: str, text: str) -> None: ...

    def read_text(self, name: str) -> str: ...

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    @contextmanager
    def reader(self, name: str) -> Iterator[BinaryIO]: ...

    def names(self) -> list[str]: ...

    def delete(self, name: str) -> None: ...


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LocalDirectoryStorage:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def _path(self, name: str) -> Path:
        if "/" in name or name.startswith(".") or not name:
            raise ConfigurationError(f"invalid backup file name {name!r}")
        return self.root / name

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the backup directory {self.root}: {exc.strerror}",
                hint="set SYNC_PLATFORM_BACKUP_DIR to a writable directory or mounted volume",
            ) from None

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        self._ensure_root()
        final = self._path(name)
        temporary = self.root / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
        try:
            with open(temporary, "xb") as handle:
                os.chmod(temporary, 0o600)
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
            _fsync_directory(self.root)
        finally:
            temporary.unlink(missing_ok=True)

    def write_text(self, name: str, text: str) -> None:
        with self.writer(name) as handle:
            handle.write(text.encode())

    def read_text(self, name: str) -> str:
        return self._path(name).read_text()

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    @contextmanager
    def reader(self, name: str) -> Iterator[BinaryIO]:
        with open(self._path(name), "rb") as handle:
            yield handle

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith("."))

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> int:
        """Temp files of writes that died (crash mid-backup); returns how many went."""
        if not self.root.is_dir():
            return 0
        stale = [p for p in self.root.iterdir() if p.name.startswith(TEMP_PREFIX)]
        for path in stale:
            path.unlink(missing_ok=True) if path.is_file() else shutil.rmtree(path)
        return len(stale)
