"""What the defs folders' resources are built from: the warehouse, the base of every source
resource (one typed way to open an `EntitySource`), and the settings HTTP and Google sources
share. Each `defs/<source>/resources.py` registers its own resource; this module registers
none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from functools import cache
from typing import Annotated, Any, ClassVar, Self

import dagster as dg
import pydantic
import sqlalchemy as sa
from pydantic import Field

from sync_platform import settings
from sync_platform.config.models import EntityConfig
from sync_platform.engine.ports import EntitySource
from sync_platform.engine.scope import Scope
from sync_platform.errors import ConfigurationError
from sync_platform.sources.google_auth import (
    SERVICE_ACCOUNT_JSON_ENV,
    TOKEN_URI_ENV,
    AccessTokenProvider,
    ServiceAccountToken,
    StaticToken,
    load_service_account_info,
)
from sync_platform.sources.http_session import RetrySettings
from sync_platform.warehouse.connection import create_warehouse_engine, redacted, unreachable
from sync_platform.warehouse.schema import VERSION_TABLE, current_revision, head_revision


def optional_env(name: str, default: str | None) -> str | dg.EnvVar | None:
    """An EnvVar when the variable is set (its value stays out of the UI), else a default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


# -- the warehouse ---------------------------------------------------------------------------


@cache
def _engine(url: str) -> sa.Engine:
    return create_warehouse_engine(url)


class WarehouseResource(dg.ConfigurableResource):
    """Where synced data and the platform's own tables live (SQLite file or PostgreSQL).

    The URL comes from SYNC_PLATFORM_WAREHOUSE_URL through `EnvVar` (so a password in it
    never shows in the UI); without it, the embedded SQLite file is used.
    """

    url: str

    def get_engine(self) -> sa.Engine:
        return _engine(self.url)

    def ready_engine(self) -> sa.Engine:
        """The engine, after checking the schema is migrated (a clear error if not)."""
        engine = self.get_engine()
        try:
            with engine.connect() as connection:
                revision = current_revision(connection)
        except sa.exc.OperationalError as exc:
            raise unreachable(self.url, exc) from None
        if revision != head_revision():
            raise ConfigurationError(
                f"warehouse at {redacted(self.url)} is at schema revision {revision or 'none'} "
                f"(table {VERSION_TABLE}); this code needs {head_revision()}",
                hint="run `sync-platform db upgrade` against it",
            )
        return engine

    @classmethod
    def from_env(cls) -> WarehouseResource:
        if os.environ.get(settings.WAREHOUSE_URL_ENV):
            return cls(url=dg.EnvVar(settings.WAREHOUSE_URL_ENV))
        return cls(url=settings.default_warehouse_url())


# -- sources ---------------------------------------------------------------------------------


class TunableResource(dg.ConfigurableResource):
    """A resource with settings an operator tunes without code: each from
    `<env_prefix><FIELD>` when set (GA4_TIMEOUT_SECONDS …), and per run from the sync asset's
    `source_settings`."""

    env_prefix: ClassVar[str] = ""
    tunable: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def tuning_from_env(cls) -> dict[str, Any]:
        """The tunable settings the environment sets, checked as the resource checks them;
        a bad value fails with the variable's name."""
        values = {}
        for name in cls.tunable:
            variable = f"{cls.env_prefix}{name.upper()}"
            raw = os.environ.get(variable, "").strip()
            if raw:
                values[name] = _checked(cls, name, raw, variable)
        return values

    def with_settings(self, overrides: Mapping[str, Any]) -> Self:
        """This resource with some tunable settings changed for one run; the rest keep
        their configured values."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(self.tunable))
        if unknown:
            raise ConfigurationError(
                f"source_settings names {', '.join(unknown)}, which "
                f"{type(self).__name__} does not have",
                hint=f"its settings are: {', '.join(self.tunable)}",
            )
        current = {name: getattr(self, name) for name in type(self).model_fields}
        checked = {
            name: _checked(type(self), name, value, f"source_settings.{name}")
            for name, value in overrides.items()
        }
        return type(self)(**{**current, **checked})


class EntitySourceResource(TunableResource):
    """A source system as the sync engine reads it: the one seam between a source's plain
    client and the engine. `key` is the resource key the source's folder registers it under
    (and the name of the sync assets' parameter that receives it); `required_env` the
    environment variables without which the source is not configured (its schedules and
    sensors then skip, and no alert fires for it)."""

    key: ClassVar[str]
    required_env: ClassVar[tuple[str, ...]] = ()

    def entity_source(
        self, entity: EntityConfig, scope: Scope | None
    ) -> AbstractContextManager[EntitySource]:
        """Open the engine's view of one entity (for one partition scope, if any); the
        client behind it is closed when the block ends."""
        raise NotImplementedError(f"{type(self).__name__} does not implement entity_source")


def _checked(resource: type[dg.ConfigurableResource], name: str, value: Any, where: str) -> Any:
    field = resource.model_fields[name]
    try:
        return pydantic.TypeAdapter(Annotated[field.annotation, field]).validate_python(value)
    except pydantic.ValidationError as exc:
        raise ConfigurationError(
            f"{where} = {str(value)[:40]!r} is not valid: {exc.errors()[0]['msg']}",
            hint=f"{field.description or name}; unset it for the default ({field.default})",
        ) from None


class HttpSourceResource(TunableResource):
    """What every HTTP source resource shares: paging, timeouts and the retry budget."""

    tunable: ClassVar[tuple[str, ...]] = (
        "page_size",
        "timeout_seconds",
        "retry_attempts",
        "retry_wait_initial",
        "retry_wait_jitter",
    )

    page_size: int = Field(default=500, ge=1, description="records asked for per page")
    timeout_seconds: float = Field(default=30.0, gt=0, description="per request")
    retry_attempts: int = Field(default=5, ge=1, description="attempts per request")
    retry_wait_initial: float = Field(default=0.5, ge=0, description="first backoff, seconds")
    retry_wait_jitter: float = Field(default=1.0, ge=0, description="random extra backoff")

    def retry_settings(self) -> RetrySettings:
        return RetrySettings(
            attempts=self.retry_attempts,
            wait_initial=self.retry_wait_initial,
            wait_jitter=self.retry_wait_jitter,
        )

    def http_options(self) -> dict[str, Any]:
        """The keyword arguments every HTTP client takes: page size, timeout, retries."""
        return {
            "page_size": self.page_size,
            "timeout_seconds": self.timeout_seconds,
            "retry": self.retry_settings(),
        }


class GoogleSourceResource(EntitySourceResource):
    """A Google API source (GA4, Sheets): a service-account key from the environment, or a
    static token for tests, turned into an access-token provider."""

    required_env: ClassVar[tuple[str, ...]] = (SERVICE_ACCOUNT_JSON_ENV,)

    service_account_json: str | None = Field(
        default=None,
        description=f"service-account key JSON or path ({SERVICE_ACCOUNT_JSON_ENV})",
    )
    token_uri: str | None = Field(
        default=None, description=f"override of the key's token URI ({TOKEN_URI_ENV})"
    )
    access_token: str | None = Field(
        default=None, description="a static bearer token instead of a service account (tests)"
    )
    timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="how long a request (or a token request) may stall before it is retried "
        "within the retry budget",
    )

    def token_provider(self, *, scope: str, what: str) -> AccessTokenProvider:
        if self.access_token:
            return StaticToken(self.access_token)
        if not self.service_account_json:
            raise ConfigurationError(
                f"no Google credentials for {what}: {SERVICE_ACCOUNT_JSON_ENV} is unset",
                hint="set it to the service account's JSON key (or the key file's path)",
            )
        info = load_service_account_info(self.service_account_json, SERVICE_ACCOUNT_JSON_ENV)
        return ServiceAccountToken(
            info, [scope], token_uri=self.token_uri, timeout_seconds=self.timeout_seconds
        )

    @staticmethod
    def credentials_from_env() -> dict[str, str | dg.EnvVar | None]:
        return {
            "service_account_json": optional_env(SERVICE_ACCOUNT_JSON_ENV, None),
            "token_uri": optional_env(TOKEN_URI_ENV, None),
        }
