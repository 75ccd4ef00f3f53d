"""Typed errors: every failure says its category, the record it concerns and what to do.

The category is what the audit tables count by (network / validation / database /
configuration / unknown), so an operator can tell a flaky API from a bad deploy.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCategory(StrEnum):
    NETWORK = "network"
    VALIDATION = "validation"
    DATABASE = "database"
    CONFIGURATION = "configuration"
    UNKNOWN = "unknown"


class SyncError(Exception):
    """Base class: message for people, category for counting, hint for what to do next."""

    category: ErrorCategory = ErrorCategory.UNKNOWN

    def __init__(self, message: str, *, hint: str | None = None, record_key: str | None = None):
        self.message = message
        self.hint = hint
        self.record_key = record_key
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = self.message
        if self.record_key:
            text += f" (record {self.record_key})"
        if self.hint:
            text += f". What to do: {self.hint}"
        return text


class NetworkError(SyncError):
    category = ErrorCategory.NETWORK


class SourceUnavailableError(NetworkError):
    """The source kept failing after bounded retries, or its circuit is open."""


class SourceDownError(SourceUnavailableError):
    """The source's circuit breaker is open: it failed too often in a row, so requests are
    refused for a while (every process shares the breaker)."""


class ValidationError(SyncError):
    category = ErrorCategory.VALIDATION


class SchemaDriftError(ValidationError):
    """The source's records no longer carry a field the entity's mapping needs."""


class DatabaseError(SyncError):
    category = ErrorCategory.DATABASE


class WarehouseUnavailableError(DatabaseError):
    """The warehouse cannot be reached, or the connection to it was lost (server down,
    restarted, failed over, the backend terminated). Worth retrying: every write is a
    transaction, so a lost one changed nothing."""


class ConfigurationError(SyncError):
    category = ErrorCategory.CONFIGURATION


class SyncAlreadyRunningError(SyncError):
    """Another sync of the same entity holds its lease; nothing was started."""

    category = ErrorCategory.CONFIGURATION


def categorize(exc: BaseException) -> ErrorCategory:
    """Category of any exception, including ones raised by libraries."""
    if isinstance(exc, SyncError):
        return exc.category
    import httpx
    import sqlalchemy.exc

    if isinstance(exc, httpx.HTTPError):
        return ErrorCategory.NETWORK
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        return ErrorCategory.DATABASE
    return ErrorCategory.UNKNOWN
