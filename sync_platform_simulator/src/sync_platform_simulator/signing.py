"""The simulated n8n's signer: Standard Webhooks, written from the specification.

https://www.standardwebhooks.com, "Signature scheme" (HMAC-SHA256, the symmetric `v1`):
- the secret is `whsec_` followed by the base64 of the key; the reference libraries also
  take the base64 alone, so the prefix is optional here too;
- the signed content is `{msg_id}.{timestamp}.{payload}`: the `webhook-id` header, the
  `webhook-timestamp` header (integer seconds since the epoch) and the exact body bytes,
  joined by full stops;
- the signature is the standard base64 of HMAC-SHA256(key, content), sent in the
  `webhook-signature` header as `v1,<signature>` (several would be separated by spaces).

Kept apart from the platform's receiver on purpose: the receiver verifies with its own code,
so a misreading of the specification on either side fails the end-to-end tests instead of
cancelling out. `sync_platform_simulator/tests/test_signing.py` checks this one against the
specification's published test vector.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
VERSION = "v1"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: the base64 after the optional `whsec_` prefix."""
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    key = base64.b64decode(encoded, validate=True)  # binascii.Error (a ValueError) if not base64
    if not key:
        raise ValueError("a Standard Webhooks secret needs a non-empty key")
    return key


def signed_content(msg_id: str, timestamp: int, payload: bytes) -> bytes:
    return b".".join((msg_id.encode(), str(int(timestamp)).encode(), payload))


def sign(secret: str, msg_id: str, timestamp: int, payload: bytes) -> str:
    """The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256>`."""
    digest = hmac.new(
        signing_key(secret), signed_content(msg_id, timestamp, payload), hashlib.sha256
    ).digest()
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(secret: str, msg_id: str, timestamp: int, payload: bytes) -> dict[str, str]:
    """The three headers a Standard Webhooks sender adds to a delivery."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: sign(secret, msg_id, timestamp, payload),
    }
