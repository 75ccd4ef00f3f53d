"""What the receiver accepts: the configured workflows (config/webhooks.yaml, secrets from the
environment) and its limits.

A workflow whose secret is unset, empty or malformed refuses every delivery ("no secret, no
entry"); the receiver still starts, logs which variable to set, and `/healthz` lists it, so
one missing secret does not take the other workflows down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sync_platform import settings
from sync_platform.config.webhooks import AuthMode, WebhooksConfig, load_webhooks_config
from sync_platform.errors import ConfigurationError
from sync_platform.receiver.signing import SecretFormatError, secret_key

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_TIMESTAMP_TOLERANCE_SECONDS = 300
DEFAULT_SECRET_HEADER = "X-Webhook-Secret"
MIN_KEY_BYTES = 24  # Standard Webhooks: a symmetric key of at least 24 bytes
MIN_SHARED_SECRET_CHARS = 24
# One secret per workflow: N8N_WEBHOOK_SECRET_<KEY IN CAPITALS>, unless webhooks.yaml names
# another variable (secret_env).


@dataclass(frozen=True)
class Workflow:
    """A workflow as the receiver checks it: its secret resolved from the environment.

    `key_bytes` is the HMAC key (standard_webhooks) or the shared secret's bytes (header);
    None means the workflow refuses everything, `problem` says why. Never logged or shown.
    """

    key: str
    auth: AuthMode
    secret_env: str
    header_name: str | None  # lower case, header mode only
    key_bytes: bytes | None = field(repr=False)
    problem: str | None

    @property
    def ready(self) -> bool:
        return self.key_bytes is not None


def _resolve_secret(auth: AuthMode, secret_env: str, value: str) -> tuple[bytes | None, str | None]:
    if not value:
        return None, f"no secret: set {secret_env}"
    if auth == "standard_webhooks":
        try:
            key = secret_key(value)
        except SecretFormatError as exc:
            return None, f"{secret_env} is unusable ({exc})"
        if len(key) < MIN_KEY_BYTES:
            return None, f"{secret_env} is too short (a key of at least {MIN_KEY_BYTES} bytes)"
        return key, None
    if len(value) < MIN_SHARED_SECRET_CHARS:
        return None, f"{secret_env} is too short (at least {MIN_SHARED_SECRET_CHARS} characters)"
    try:
        return value.encode("latin-1"), None  # as the header arrives: ISO-8859-1 octets
    except UnicodeEncodeError:
        return None, f"{secret_env} must be ASCII (it travels in an HTTP header)"


def resolve_workflows(
    config: WebhooksConfig, environ: Mapping[str, str] | None = None
) -> dict[str, Workflow]:
    environ = os.environ if environ is None else environ
    workflows = {}
    for key, entry in config.enabled().items():
        secret_env = entry.secret_variable(key)
        key_bytes, problem = _resolve_secret(entry.auth, secret_env, environ.get(secret_env, ""))
        header = (entry.header_name or DEFAULT_SECRET_HEADER) if entry.auth == "header" else None
        workflows[key] = Workflow(
            key=key,
            auth=entry.auth,
            secret_env=secret_env,
            header_name=header.lower() if header else None,
            key_bytes=key_bytes,
            problem=problem,
        )
    return workflows


def _number(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    text = environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(
            f"{name}={text!r} is not a number", hint=f"set {name} to a number or unset it"
        ) from None
    if value < minimum:
        raise ConfigurationError(f"{name}={text!r} is below {minimum:g}", hint=f"raise {name}")
    return value


def header_timeout_seconds(environ: Mapping[str, str] | None = None) -> float:
    """How long a connection may take to send a request's headers: the environment's
    SYNC_PLATFORM_RECEIVER_HEADER_TIMEOUT_SECONDS, checked, or the default."""
    environ = os.environ if environ is None else environ
    return _number(
        environ, settings.RECEIVER_HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT_SECONDS, 0.1
    )


@dataclass(frozen=True)
class ReceiverSettings:
    """Everything the receiver app needs; build it with `from_env()` or directly in tests."""

    warehouse_url: str
    workflows: dict[str, Workflow]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    timestamp_tolerance_seconds: int = DEFAULT_TIMESTAMP_TOLERANCE_SECONDS

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, warehouse_url: str | None = None
    ) -> ReceiverSettings:
        environ = os.environ if environ is None else environ
        workflows = resolve_workflows(
            load_webhooks_config(environ.get(settings.ENVIRONMENT_ENV)), environ
        )
        for workflow in workflows.values():
            if not environ.get(workflow.secret_env):  # not configured here: say so, quietly
                logger.info(
                    "workflow %s is not configured (set %s to accept its deliveries)",
                    workflow.key,
                    workflow.secret_env,
                )
            elif workflow.problem:
                logger.error(
                    "workflow %s refuses every delivery: %s", workflow.key, workflow.problem
                )
        return cls(
            warehouse_url=warehouse_url
            or environ.get(settings.WAREHOUSE_URL_ENV)
            or settings.default_warehouse_url(),
            workflows=workflows,
            max_body_bytes=int(
                _number(environ, settings.RECEIVER_MAX_BODY_BYTES_ENV, DEFAULT_MAX_BODY_BYTES, 1)
            ),
            body_timeout_seconds=_number(
                environ, settings.RECEIVER_BODY_TIMEOUT_ENV, DEFAULT_BODY_TIMEOUT_SECONDS, 0.1
            ),
            header_timeout_seconds=header_timeout_seconds(environ),
            max_header_bytes=int(
                _number(
                    environ, settings.RECEIVER_MAX_HEADER_BYTES_ENV, DEFAULT_MAX_HEADER_BYTES, 1024
                )
            ),
            timestamp_tolerance_seconds=int(
                _number(
                    environ,
                    settings.RECEIVER_TIMESTAMP_TOLERANCE_ENV,
                    DEFAULT_TIMESTAMP_TOLERANCE_SECONDS,
                    1,
                )
            ),
        )
