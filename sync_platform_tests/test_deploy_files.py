"""The deployment files (deploy/) against the code: what would break a deployment.

Every environment variable the code reads is in deploy/env.example, and what a process cannot
start without is set there or by the process's own definition; commands name real modules,
entry points and CLI options; the workspace's location name is the project's; the compose
services build deploy/Dockerfile; the systemd units parse and say what a unit must say. The
variables are derived from the code (the settings constants, the sources' resources, the
instance and workspace files), not from a copy kept here.
"""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import importlib.util
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tomllib
import uuid
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
import yaml

from sync_platform_tests.conftest import database_url

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
SYSTEMD = DEPLOY / "systemd"
PRODUCTION = DEPLOY / "production"
# Where deploy/systemd/ expects the checkout (WorkingDirectory, ExecStart, the workspace).
SYSTEMD_CHECKOUT = "/opt/sync-platform"
APP_SERVICES = {"code-server", "daemon", "webserver", "receiver"}
DAGSTER_SERVICES = {"code-server", "daemon", "webserver"}

# Read by the code but deliberately absent from env.example, and why.
NOT_FOR_DEPLOYMENTS = {
    "SYNC_PLATFORM_CRASHPOINT": "the crash-consistency tests' kill points",
    "SYNC_PLATFORM_CADENCE_SPEEDUP": "the soak's time compression; never set in production",
    "SYNC_PLATFORM_RECEIVER_METRICS_DIR": "set by `sync-platform receiver` for its own workers",
}


# --- what the code reads ------------------------------------------------------------------


def _module_constants() -> dict[str, str]:
    """Module-level `X_ENV = "NAME"` and `X_ENV_PREFIX = "PREFIX_"` in the product."""
    found = {}
    for path in sorted((REPO / "sync_platform").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and re.search(r"_ENV(_PREFIX)?$", node.targets[0].id)
            ):
                found[f"{path.relative_to(REPO)}:{node.targets[0].id}"] = node.value.value
    return found


def _env_references(node: object) -> set[str]:
    """The `{env: NAME}` values of a Dagster instance or workspace file."""
    if isinstance(node, dict):
        names = {node["env"]} if set(node) == {"env"} else set()
        return names.union(*(_env_references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_references(value) for value in node))
    return set()


def instance_variables() -> set[str]:
    return _env_references(yaml.safe_load((PRODUCTION / "dagster.yaml").read_text()))


def workspace_variables() -> set[str]:
    return _env_references(yaml.safe_load((PRODUCTION / "workspace.yaml").read_text()))


@cache
def _repository():
    from sync_platform.definitions import defs

    return defs().get_repository_def()


def _tunable_variables() -> set[str]:
    from sync_platform.orchestration.resources import TunableResource

    _repository()  # imports every defs folder, so every resource class exists

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return {
        f"{cls.env_prefix}{name.upper()}"
        for cls in subclasses(TunableResource)
        if cls.env_prefix
        for name in cls.tunable
    }


def _prefixed_variables(prefix: str) -> set[str]:
    from sync_platform.config.webhooks import SECRET_ENV_PREFIX, load_webhooks_config
    from sync_platform.sources.n8n.api import WORKFLOW_ID_ENV_PREFIX

    workflows = load_webhooks_config().workflows
    if prefix == SECRET_ENV_PREFIX:
        return {entry.secret_variable(key) for key, entry in workflows.items()}
    if prefix == WORKFLOW_ID_ENV_PREFIX:
        return {
            entry.n8n_workflow_id_env or WORKFLOW_ID_ENV_PREFIX + key.upper()
            for key, entry in workflows.items()
        }
    raise AssertionError(f"teach test_deploy_files how the code expands the prefix {prefix!r}")


@cache
def variables_the_code_reads() -> frozenset[str]:
    names = set()
    for where, value in _module_constants().items():
        if where.endswith("_PREFIX"):
            names |= _prefixed_variables(value)
        else:
            names.add(value)
    return frozenset(names | _tunable_variables() | instance_variables() | workspace_variables())


def required_by_source() -> dict[str, list[str]]:
    from sync_platform.orchestration.configuration import required_env_by_source

    return required_env_by_source(_repository())


# --- what the deployment files say --------------------------------------------------------

ASSIGNMENT = re.compile(r"^(?P<comment>#\s?)?(?P<name>[A-Z][A-Z0-9_]*[A-Z0-9])=(?P<value>.*)$")


def env_example() -> tuple[dict[str, str], set[str]]:
    """(variables set, variables only mentioned in a commented-out assignment)."""
    assigned: dict[str, str] = {}
    mentioned: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if not match:
            continue
        if match["comment"]:
            mentioned.add(match["name"])
        else:
            assert match["name"] not in assigned, f"{match['name']} is set twice"
            assigned[match["name"]] = match["value"]
    return assigned, mentioned - set(assigned)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_interpolated() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    with (SYSTEMD / name).open() as handle:
        parser.read_file(handle)
    return parser


def service_units() -> dict[str, configparser.ConfigParser]:
    return {path.name: unit(path.name) for path in sorted(SYSTEMD.glob("*.service"))}


def receiver_options() -> set[str]:
    from sync_platform.cli import app

    command = typer.main.get_command(app)
    receiver = command.commands["receiver"]  # type: ignore[attr-defined]
    return {option for param in receiver.params for option in param.opts}


def console_scripts() -> set[str]:
    return {entry.name for entry in importlib.metadata.entry_points(group="console_scripts")}


def check_command(argv: list[str], *, workspace: Path | None = None) -> None:
    """A process's command line names a real entry point, module, workspace and options."""
    program = Path(argv[0]).name
    assert program in console_scripts(), f"{program} is not an installed entry point"
    if "-m" in argv:
        module = argv[argv.index("-m") + 1]
        assert module == "sync_platform.definitions"
        assert importlib.util.find_spec(module) is not None
    if "-w" in argv:
        assert workspace is not None and workspace.exists(), argv
    if program == "sync-platform":
        assert argv[1] == "receiver", argv
        given = {arg for arg in argv[2:] if arg.startswith("--")}
        assert given <= receiver_options(), f"unknown receiver options {given - receiver_options()}"
    if program == "dagster" and argv[1:3] == ["code-server", "start"]:
        assert "-p" in argv and "-h" in argv
    if program == "dagster-daemon":
        assert argv[1] == "run"


# --- env.example --------------------------------------------------------------------------


def test_env_example_names_every_variable_the_code_reads():
    assigned, mentioned = env_example()
    named = set(assigned) | mentioned
    expected = variables_the_code_reads() - set(NOT_FOR_DEPLOYMENTS) - {"DAGSTER_HOME"}
    assert expected - named == set(), "add these to deploy/env.example (and docs/deploy.md)"
    # the derivation itself found what it must (a broken scan would pass the line above)
    assert {"SYNC_PLATFORM_WAREHOUSE_URL", "DAGSTER_PG_PASSWORD", "GA4_PAGE_SIZE"} <= expected
    assert {"N8N_WEBHOOK_SECRET_NEW_LEAD", "N8N_WORKFLOW_ID_NEW_LEAD"} <= expected


def test_env_example_names_nothing_the_code_and_compose_do_not_read():
    assigned, mentioned = env_example()
    known = variables_the_code_reads() | compose_interpolated()
    stray = (set(assigned) | mentioned) - known
    assert stray == set(), f"deploy/env.example names variables nothing reads: {sorted(stray)}"
    # the variables only the bundled PostgreSQL reads are read by its init script
    init_script = (DEPLOY / "postgres" / "init-databases.sh").read_text()
    for name in compose()["services"]["postgres"]["environment"]:
        assert name == "POSTGRES_PASSWORD" or f"${name}" in init_script


def test_what_a_process_cannot_start_without_is_set():
    assigned, _ = env_example()
    must = instance_variables() | workspace_variables() | {"SYNC_PLATFORM_WAREHOUSE_URL"}
    assert must - set(assigned) == set()
    # the backup key is asked for (an empty value fails every backup with a message)
    assert "SYNC_PLATFORM_BACKUP_KEY" in assigned
    # the bundled database's warehouse URL matches the roles it creates
    url = sa.make_url(assigned["SYNC_PLATFORM_WAREHOUSE_URL"])
    assert (url.username, url.database, url.host) == (
        assigned["WAREHOUSE_DB_USER"],
        assigned["WAREHOUSE_DB_NAME"],
        "postgres",
    )
    assert assigned["DAGSTER_PG_HOST"] == "postgres"


def test_env_example_switches_on_no_source():
    """Copied as it is, no source is configured: each is switched on by filling in its
    variables, never by accident with example values."""
    assigned, mentioned = env_example()
    sources = required_by_source()
    assert {"dealer_feed", "legacy_erp", "ga4", "seller_sheet", "n8n"} <= set(sources)
    for source, names in sources.items():
        assert set(names) <= set(assigned) | mentioned, source
        if names:
            assert not all(assigned.get(name) for name in names), f"{source} is switched on"


def test_env_example_holds_no_secret():
    assigned, _ = env_example()
    for name, value in assigned.items():
        if re.search(r"PASSWORD|SECRET|_KEY$|API_KEY|TOKEN", name):
            assert value == "", f"{name} has a value in env.example"
    assert "WAREHOUSE_DB_PASSWORD@" in assigned["SYNC_PLATFORM_WAREHOUSE_URL"]  # a placeholder


# --- the image ----------------------------------------------------------------------------


def test_dockerfile_builds_the_locked_environment_as_a_non_root_user():
    instructions = dockerfile_instructions()
    args = dict(
        rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest
    )
    images = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert images and all(image == "${PYTHON_IMAGE}" for image in images)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "uv sync --locked --compile-bytecode --no-dev" in runs
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    env = dockerfile_env()
    assert env["DAGSTER_HOME"]
    # no secret and no deployment setting is baked in: only paths
    code_variables = variables_the_code_reads()
    baked = {name for name in env if name in code_variables}
    assert baked <= {"SYNC_PLATFORM_HOME", "SYNC_PLATFORM_BACKUP_DIR"}
    for name in env:
        assert not re.search(r"PASSWORD|SECRET|KEY|TOKEN|URL", name), name


def test_dockerfile_copies_only_what_exists_and_the_context_lets_through():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    assert "*" in ignore  # everything else (.venv, .git, deploy/.env) stays out
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _target = shlex.split(rest)
        for source in sources:
            assert (REPO / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in allowed), source


def test_dockerfile_default_command_is_the_code_server():
    cmd = [rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"][-1]
    argv = yaml.safe_load(cmd)  # the exec form is a JSON list
    check_command(argv)
    assert argv[:3] == ["dagster", "code-server", "start"]


# --- the workspace and the location name --------------------------------------------------


def test_workspace_location_name_is_the_projects():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    name = project["tool"]["dg"]["project"]["code_location_name"]
    for workspace in (PRODUCTION / "workspace.yaml", REPO / "workspace.yaml"):
        (entry,) = yaml.safe_load(workspace.read_text())["load_from"]
        (location,) = entry.values()
        assert location["location_name"] == name, workspace
    grpc = yaml.safe_load((PRODUCTION / "workspace.yaml").read_text())["load_from"][0]
    assert grpc["grpc_server"]["host"] == {"env": "SYNC_PLATFORM_CODE_SERVER_HOST"}
    assert grpc["grpc_server"]["port"] == {"env": "SYNC_PLATFORM_CODE_SERVER_PORT"}


# --- Docker Compose -----------------------------------------------------------------------


def test_compose_runs_the_four_processes_from_the_dockerfile():
    services = compose()["services"]
    assert set(services) == APP_SERVICES | {"postgres"}
    images = set()
    for name in APP_SERVICES:
        service = services[name]
        build = service["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == REPO, name
        assert (REPO / build["dockerfile"]).resolve() == DOCKERFILE, name
        images.add(service["image"])
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") in ("always", "unless-stopped"), name
    assert len(images) == 1  # one image, four commands
    assert services["postgres"]["healthcheck"]["test"]


def test_compose_commands_name_real_entry_points():
    services = compose()["services"]
    mounts = {
        name: {volume.split(":")[1]: volume.split(":")[0] for volume in services[name]["volumes"]}
        for name in DAGSTER_SERVICES
    }
    for name in APP_SERVICES:
        argv = services[name]["command"]
        workspace = None
        if "-w" in argv:
            source = mounts[name][argv[argv.index("-w") + 1]]
            workspace = (COMPOSE.parent / source).resolve()
            assert workspace == PRODUCTION / "workspace.yaml"
        check_command(argv, workspace=workspace)
    port = services["code-server"]["command"][services["code-server"]["command"].index("-p") + 1]
    assert services["code-server"]["healthcheck"]["test"][-1] == port


def test_compose_gives_each_process_what_it_reads():
    services = compose()["services"]
    home = dockerfile_env()["DAGSTER_HOME"]
    port = services["code-server"]["command"][services["code-server"]["command"].index("-p") + 1]
    for name in DAGSTER_SERVICES:
        service = services[name]
        environment = service.get("environment") or {}
        # the production instance is DAGSTER_HOME's dagster.yaml, from the repository
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert (COMPOSE.parent / mounts[f"{home}/dagster.yaml"]).resolve() == (
            PRODUCTION / "dagster.yaml"
        )
        assert environment["SYNC_PLATFORM_CODE_SERVER_HOST"] == "code-server"
        assert str(environment["SYNC_PLATFORM_CODE_SERVER_PORT"]) == port
        if name == "webserver":  # the UI gets Dagster's storage and nothing else
            assert set(environment) == instance_variables() | workspace_variables()
            assert "env_file" not in service
    for name in APP_SERVICES - {"webserver"}:  # the whole deploy/.env
        assert services[name]["env_file"] == [{"path": ".env", "required": False}]
    # every ${VAR} compose needs is one env.example names
    assigned, _ = env_example()
    optional_in_compose = {"SYNC_PLATFORM_IMAGE_TAG"}
    assert compose_interpolated() - optional_in_compose <= set(assigned)
    # deploy/.env is never committed
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def _filled_env_file(directory: Path) -> Path:
    """env.example with its blanks filled, as an operator would leave it."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if match and not match["comment"] and not match["value"]:
            line += "filled-in"
        lines.append(line)
    path = directory / "filled.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
    )
    return result.returncode == 0


def test_docker_compose_accepts_the_file(tmp_path):
    """Compose's own validation, where Docker Compose is installed. Where the docker CLI is
    installed without its compose plugin (Debian 12's packages have no Compose v2, only the
    old Python docker-compose 1.29, which does not read this file's format) the test says so
    rather than pass; the structural tests above still run."""
    if not _docker_compose_available():
        where = shutil.which("docker")
        pytest.skip(
            f"docker CLI at {where} has no compose plugin: `docker compose config` not run"
            if where
            else "docker is not installed: `docker compose config` not run"
        )
    result = subprocess.run(
        [
            "docker",
            "compose",
            "--env-file",
            str(_filled_env_file(tmp_path)),
            "-f",
            str(COMPOSE),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == APP_SERVICES | {"postgres"}


# --- systemd ------------------------------------------------------------------------------


def test_systemd_units_run_the_same_four_processes():
    units = service_units()
    assert set(units) == {f"sync-platform-{name}.service" for name in APP_SERVICES}
    target = unit("sync-platform.target")
    assert set(target["Unit"]["Wants"].split()) == set(units)
    assert target["Install"]["WantedBy"] == "multi-user.target"
    compose_programs = {name: compose()["services"][name]["command"][:2] for name in APP_SERVICES}
    for name in APP_SERVICES:
        argv = shlex.split(units[f"sync-platform-{name}.service"]["Service"]["ExecStart"])
        assert [Path(argv[0]).name, argv[1]] == compose_programs[name], name


def test_systemd_units_say_what_a_unit_must():
    assigned, _ = env_example()
    for name, parsed in service_units().items():
        assert parsed["Unit"]["Description"], name
        assert parsed["Unit"]["PartOf"] == "sync-platform.target", name
        service = parsed["Service"]
        assert service["EnvironmentFile"].startswith("/"), name
        assert service["User"] not in ("root", "0"), name
        assert service["Restart"] in ("always", "on-failure"), name
        assert service["KillSignal"] in ("SIGTERM", "SIGINT"), name
        assert 10 <= int(service["TimeoutStopSec"]) <= 300, name
        assert parsed["Install"]["WantedBy"] == "sync-platform.target", name
        argv = shlex.split(service["ExecStart"])
        assert argv[0].startswith(f"{SYSTEMD_CHECKOUT}/.venv/bin/"), name
        workspace = None
        if "-w" in argv:
            given = argv[argv.index("-w") + 1]
            assert given.startswith(SYSTEMD_CHECKOUT + "/"), name
            workspace = REPO / given.removeprefix(SYSTEMD_CHECKOUT + "/")
        check_command(argv, workspace=workspace)
        # ${VARS} in the command line come from the environment file
        assert set(re.findall(r"\$\{(\w+)\}", service["ExecStart"])) <= set(assigned), name
        if name != "sync-platform-receiver.service":
            assert service["Environment"].startswith("DAGSTER_HOME=/"), name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_units(tmp_path):
    """systemd's own checker, on a scratch root holding the units, the environment file and
    stand-ins for the checkout's entry points."""
    root = tmp_path / "root"
    units_dir = root / "etc" / "systemd" / "system"
    units_dir.mkdir(parents=True)
    system_units = root / "usr" / "lib" / "systemd" / "system"
    system_units.mkdir(parents=True)
    for target in Path("/usr/lib/systemd/system").glob("*.target"):
        shutil.copy(target, system_units)
    for path in SYSTEMD.iterdir():
        shutil.copy(path, units_dir)
    bin_dir = root / SYSTEMD_CHECKOUT.lstrip("/") / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for program in ("dagster", "dagster-daemon", "dagster-webserver", "sync-platform"):
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
    env_dir = root / "etc" / "sync-platform"
    env_dir.mkdir(parents=True)
    shutil.copy(ENV_EXAMPLE, env_dir / "sync-platform.env")
    names = sorted(path.name for path in SYSTEMD.iterdir())
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *names],
        cwd=units_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# --- the bundled PostgreSQL's first start -------------------------------------------------


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_postgres_init_script_creates_both_databases(pg_admin_url):
    """What the compose PostgreSQL runs on an empty volume, run against the test server."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "DAGSTER_PG_USER": f"dagster_{suffix}",
        "DAGSTER_PG_DB": f"dagster_db_{suffix}",
        "WAREHOUSE_DB_USER": f"warehouse_{suffix}",
        "WAREHOUSE_DB_NAME": f"warehouse_db_{suffix}",
    }
    admin = sa.make_url(pg_admin_url)
    environment = {
        **os.environ,
        **names,
        "DAGSTER_PG_PASSWORD": secrets.token_hex(12),
        "WAREHOUSE_DB_PASSWORD": secrets.token_hex(12),
        "POSTGRES_USER": admin.username or "postgres",
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        **({"PGPASSWORD": admin.password} if admin.password else {}),
    }
    engine = sa.create_engine(
        database_url(pg_admin_url, "postgres").replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        subprocess.run(
            ["bash", str(DEPLOY / "postgres" / "init-databases.sh")],
            env=environment,
            check=True,
            capture_output=True,
            timeout=60,
        )
        with engine.connect() as connection:
            owners = dict(
                connection.execute(
                    sa.text(
                        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                        "WHERE datname IN (:a, :b)"
                    ),
                    {"a": names["DAGSTER_PG_DB"], "b": names["WAREHOUSE_DB_NAME"]},
                ).all()
            )
            createdb = dict(
                connection.execute(
                    sa.text("SELECT rolname, rolcreatedb FROM pg_roles WHERE rolname IN (:a, :b)"),
                    {"a": names["DAGSTER_PG_USER"], "b": names["WAREHOUSE_DB_USER"]},
                ).all()
            )
        assert owners == {
            names["DAGSTER_PG_DB"]: names["DAGSTER_PG_USER"],
            names["WAREHOUSE_DB_NAME"]: names["WAREHOUSE_DB_USER"],
        }
        # backups are verified by restoring into a new database: the warehouse role needs it
        assert createdb == {names["DAGSTER_PG_USER"]: False, names["WAREHOUSE_DB_USER"]: True}
    finally:
        with engine.connect() as connection:
            for database in (names["DAGSTER_PG_DB"], names["WAREHOUSE_DB_NAME"]):
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}"')
            for role in (names["DAGSTER_PG_USER"], names["WAREHOUSE_DB_USER"]):
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        engine.dispose()
