"""Standard Webhooks symmetric signatures (HMAC-SHA256): the receiver verifies with them (the
simulated n8n signs with its own, independent code).

Scheme (https://www.standardwebhooks.com, spec "Signature scheme"): the signed content is
`{webhook-id}.{webhook-timestamp}.{raw body}`; the key is the base64 text after the `whsec_`
prefix of the secret, decoded; the `webhook-signature` header holds one or more
space-separated `v1,<base64 HMAC-SHA256>` entries (several during a key rotation), and one
match is enough. Comparison is constant-time.

n8n's Crypto node takes its HMAC secret as text, so `generate_secret` makes keys whose bytes
are printable: the n8n side uses the decoded key (`n8n_key_of`), the receiver the `whsec_`
form, and both compute the same HMAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"


class SecretFormatError(ValueError):
    """A configured secret is not `whsec_<base64>` (or plain base64)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_` prefix optional, as the spec's
    reference libraries accept)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SecretFormatError("secret is not whsec_ followed by base64") from None
    if not key:
        raise SecretFormatError("secret is empty")
    return key


def generate_secret(nbytes: int = 32) -> str:
    """A new `whsec_` secret whose key is URL-safe text (usable in n8n's Crypto node)."""
    key = secrets.token_urlsafe(nbytes).encode()
    return SECRET_PREFIX + base64.b64encode(key).decode()


def n8n_key_of(secret: str) -> str:
    """The key as text, for n8n's Crypto node "Secret" field (fails if it is not text)."""
    try:
        return secret_key(secret).decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFormatError(
            "this secret's key is not text, so n8n's Crypto node cannot use it: "
            "make one with generate_secret()"
        ) from None


def signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` (no `v1,` prefix)."""
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return base64.b64encode(mac.digest()).decode()


def sign(secret: str, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    return f"{SIGNATURE_VERSION},{signature(secret_key(secret), webhook_id, str(timestamp), body)}"


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


def verify(key: bytes, webhook_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether any `v1,` entry of a `webhook-signature` header matches (constant-time).

    Every entry is compared, matched or not, so the time taken does not say which one
    matched; entries of other versions (`v1a,` asymmetric) are ignored.
    """
    expected = signature(key, webhook_id, timestamp, body).encode()
    matched = False
    for entry in header.split(" "):
        version, _, value = entry.partition(",")
        if version == SIGNATURE_VERSION and hmac.compare_digest(value.encode(), expected):
            matched = True
    return matched
