"""The n8n webhook receiver: signed deliveries into the durable `webhook_inbox`.

`create_app(settings)` builds the FastAPI app; `sync-platform receiver` serves it (uvicorn,
one or more workers).
Reference: docs/sources/n8n.md.
"""

from sync_platform.receiver.app import (
    EXECUTION_ID_FIELD,
    EXECUTION_ID_HEADER,
    WEBHOOK_PATH,
    create_app,
    create_app_from_env,
)
from sync_platform.receiver.metrics import Metrics
from sync_platform.receiver.server import serve
from sync_platform.receiver.settings import ReceiverSettings, Workflow, resolve_workflows
from sync_platform.receiver.signing import generate_secret, n8n_key_of, sign, signed_headers

__all__ = [
    "EXECUTION_ID_FIELD",
    "EXECUTION_ID_HEADER",
    "WEBHOOK_PATH",
    "Metrics",
    "ReceiverSettings",
    "Workflow",
    "create_app",
    "create_app_from_env",
    "generate_secret",
    "n8n_key_of",
    "resolve_workflows",
    "serve",
    "sign",
    "signed_headers",
]
