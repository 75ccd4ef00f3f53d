"""Encryption at rest with age (pyrage): streaming, authenticated, keyed from the environment.

The key is an age X25519 identity (`AGE-SECRET-KEY-1…`, from SYNC_PLATFORM_BACKUP_KEY);
backups are encrypted to its public recipient, whose string is the manifest's key id (public,
so an operator can tell which key a backup needs). age authenticates every 64 KiB chunk and
the end of the stream, so a flipped byte, a truncated file or a wrong key all fail to decrypt.
Decryption writes to a temporary file and renames it only when the whole stream authenticated:
a tampered backup never leaves plaintext behind. The key itself is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyrage
from pyrage import x25519

from sync_platform import settings
from sync_platform.errors import ConfigurationError, SyncError

GENERATE_HINT = (
    "generate one with `.venv/bin/python -c 'import pyrage; "
    "print(pyrage.x25519.Identity.generate())'`, keep it in your secret store, and set "
    f"{settings.BACKUP_KEY_ENV} to it"
)


class BackupIntegrityError(SyncError):
    """A backup that cannot be trusted (wrong key, tampered, truncated, no manifest)."""


@dataclass(frozen=True)
class BackupKey:
    identity: x25519.Identity

    @classmethod
    def from_secret(cls, secret: str) -> BackupKey:
        try:
            return cls(x25519.Identity.from_str(secret.strip()))
        except (pyrage.IdentityError, ValueError):
            raise ConfigurationError(
                f"{settings.BACKUP_KEY_ENV} is not an age identity (AGE-SECRET-KEY-1…)",
                hint=GENERATE_HINT,
            ) from None

    @property
    def key_id(self) -> str:
        return str(self.identity.to_public())

    def mac(self, text: bytes) -> str:
        """HMAC-SHA256 of a manifest under a key derived from the identity: only a holder of
        the key can write a manifest the restore accepts."""
        derived = hashlib.sha256(b"sync_platform/manifest-mac/v1\0" + str(self.identity).encode())
        return hmac.new(derived.digest(), text, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the secret
        return f"BackupKey({self.key_id})"


def key_from_env(environ: dict[str, str] | None = None) -> BackupKey | None:
    environ = os.environ if environ is None else environ
    secret = environ.get(settings.BACKUP_KEY_ENV)
    return BackupKey.from_secret(secret) if secret else None


def encrypt_stream(reader: BinaryIO, writer: BinaryIO, key: BackupKey) -> None:
    """Encrypt `reader` into `writer` chunk by chunk (memory stays flat for any size)."""
    pyrage.encrypt_io(reader, writer, [key.identity.to_public()])


def decrypt_to_path(reader: BinaryIO, destination: Path, key: BackupKey, what: str) -> None:
    """Decrypt into `destination`, which appears only once the whole stream authenticated."""
    temporary = destination.with_name(f".decrypting-{uuid.uuid4().hex}-{destination.name}")
    try:
        with open(temporary, "xb") as handle:
            os.chmod(temporary, 0o600)
            try:
                pyrage.decrypt_io(reader, handle, [key.identity])
            except pyrage.DecryptError as exc:
                raise BackupIntegrityError(
                    f"{what} cannot be decrypted with the configured key ({exc})",
                    hint=f"set {settings.BACKUP_KEY_ENV} to the identity whose public key is "
                    "the manifest's key_id; nothing was restored",
                ) from None
            except OSError:
                raise BackupIntegrityError(
                    f"{what} failed authentication while decrypting: it was modified or "
                    "truncated after it was written",
                    hint="restore an older backup (`sync-platform backup list`); nothing was "
                    "restored",
                ) from None
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
