"""Which sources this deployment has configured: a source whose environment variables are
not all set is *not configured*, not failing. Its schedules and sensors skip saying what to
set, the health report lists it once, and no stale, failure or check alert fires for it.

The variables a source needs are on its assets (metadata `sync_platform/required_env`, from
its resource's `required_env`), so the running code location answers for itself; the
environment read is that of the process asking (code server, daemon, run worker), which a
deployment gives the same variables.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import dagster as dg

from sync_platform.orchestration.tags import SOURCE_TAG

REQUIRED_ENV_METADATA = "sync_platform/required_env"


def unset(names: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The names among `names` that are unset or empty."""
    environ = os.environ if environ is None else environ
    return [name for name in names if not environ.get(name)]


def required_env_by_source(repository: dg.RepositoryDefinition) -> dict[str, list[str]]:
    """Source → the environment variables its assets need (sources needing none included)."""
    found: dict[str, set[str]] = {}
    for node in repository.asset_graph.asset_nodes:
        source = node.tags.get(SOURCE_TAG)
        if source is None:
            continue
        names = node.metadata.get(REQUIRED_ENV_METADATA)
        text = names.value if isinstance(names, dg.MetadataValue) else names
        found.setdefault(source, set()).update(name for name in (text or "").split(",") if name)
    return {source: sorted(names) for source, names in sorted(found.items())}


def unconfigured_sources(
    repository: dg.RepositoryDefinition, environ: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Source → the variables to set, for every source that is not configured."""
    return {
        source: missing
        for source, names in required_env_by_source(repository).items()
        if (missing := unset(names, environ))
    }


def not_configured_reason(source: str, missing: list[str]) -> str:
    return f"{source} is not configured: set {', '.join(missing)} (docs/sources/)"
