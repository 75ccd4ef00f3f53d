"""Load a source's YAML config plus its environment overlay, failing with a precise message.

Errors name the file, the key path and the problem, because a config error is found at
code-location load time by someone who did not write the file.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from sync_platform import settings
from sync_platform.config.models import SourceConfig
from sync_platform.errors import ConfigurationError

PACKAGE_CONFIG_DIR = Path(__file__).parent


def config_dir() -> Path:
    return Path(os.environ.get(settings.CONFIG_DIR_ENV) or PACKAGE_CONFIG_DIR)


def overlay_folder(env: str) -> Path:
    """`<config folder>/environments/<env>/`, whose files are merged over the shipped ones.

    Naming an environment that has no such folder is refused rather than ignored: a
    deployment that sets SYNC_PLATFORM_ENV=prod expects prod's overlays, and running on the
    shipped files instead (the bundled example workflows, the default options) would go
    unnoticed. Only the default environment may have no folder.
    """
    folder = config_dir() / "environments" / env
    if env != settings.DEFAULT_ENVIRONMENT and not folder.is_dir():
        raise ConfigurationError(
            f"{settings.ENVIRONMENT_ENV}={env!r}, but there is no overlay folder {folder}",
            hint=f"create it with the files to merge over the shipped ones (docs/deploy.md, "
            f"'Configuration per environment'), point {settings.CONFIG_DIR_ENV} at a config "
            f"folder that has environments/{env}/, or unset {settings.ENVIRONMENT_ENV}",
        )
    return folder


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Overlay wins; nested mappings merge key by key, everything else is replaced, and a
    key the overlay sets to null is removed (an environment without a bundled workflow)."""
    merged = dict(base)
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"{path}: is not valid YAML: {exc}", hint="fix the YAML syntax at the line shown"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{path}: expected a mapping at the top level", hint="see docs/sources/ for the format"
        )
    return data


Model = TypeVar("Model", bound=pydantic.BaseModel)


def _describe(error: pydantic.ValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        given = item.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float | bool) else ""
        problems.append(f"{location}: {item['msg']}{shown}")
    return "; ".join(problems)


def load_validated(
    relative_path: str, model: type[Model], *, environment: str | None, what: str, docs: str
) -> Model:
    """A YAML config under the config folder, with `environments/<env>/<same name>` merged
    over it, validated by `model`; errors name the file(s), the key and the problem."""
    base_path = config_dir() / relative_path
    if not base_path.exists():
        raise ConfigurationError(
            f"{base_path}: no config file for {what}",
            hint=f"create it or point {settings.CONFIG_DIR_ENV} at the folder that has it",
        )
    data = _read_yaml(base_path)
    env = environment or settings.environment()
    overlay_path = overlay_folder(env) / base_path.name
    files = str(base_path)
    if overlay_path.exists():
        data = deep_merge(data, _read_yaml(overlay_path))
        files += f" (+ overlay {overlay_path})"
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigurationError(
            f"{files}: invalid config: {_describe(exc)}",
            hint=f"correct the named key; {docs} describes every setting",
        ) from exc


def load_source_config(name: str, *, environment: str | None = None) -> SourceConfig:
    """Validated config of one source, with `environments/<env>/<name>.yaml` merged over it."""
    return load_validated(
        f"sources/{name}.yaml",
        SourceConfig,
        environment=environment,
        what=f"source {name!r}",
        docs="docs/sources/",
    )


@cache
def cached_source_config(name: str) -> SourceConfig:
    """The config as the code location loaded it (read once per process)."""
    return load_source_config(name)


def source_names() -> list[str]:
    """Every source that has a config file, in a stable order."""
    return sorted(path.stem for path in (config_dir() / "sources").glob("*.yaml"))


def all_source_configs() -> list[SourceConfig]:
    return [cached_source_config(name) for name in source_names()]
