"""The operator docs say what the code does: the schedules, sensors, jobs and checks the
operator guide lists are the code location's; every environment variable, `sync-platform`
command, job and repository path the deployment docs name exists."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import typer

from sync_platform_tests.test_deploy_files import compose_interpolated, variables_the_code_reads

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
GUIDE = DOCS / "operator_guide.md"
CHECKED_DOCS = [
    "deploy.md",
    "operator_guide.md",
    "troubleshooting.md",
    "faq.md",
    "glossary.md",
    "architecture.md",
]
# Read by libraries, not by the code: libpq's TLS settings, Dagster's home.
LIBRARY_VARIABLES = {"PGSSLMODE", "PGSSLROOTCERT", "DAGSTER_HOME", "PGPASSWORD"}
# Paths an operator creates (deploy/.env from deploy/env.example, git-ignored).
CREATED_BY_OPERATORS = {"deploy/.env"}


@cache
def repository():
    from sync_platform.definitions import defs

    return defs().get_repository_def()


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The rows of the first table after `heading` (cells stripped)."""
    section = text.split(heading, 1)[1]
    rows, started = [], False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif started:
            break
    return rows[1:]  # without the header


def code_spans(text: str) -> list[str]:
    """The fenced blocks and the inline code of a markdown text."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return fenced + re.findall(r"`([^`\n]+)`", rest)


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_schedule_table_is_the_code_locations():
    rows = table_rows(GUIDE.read_text(), "## The daily rhythm")
    documented = {(ticked(r[0])[0], ticked(r[1])[0], ticked(r[3])[0]) for r in rows}
    actual = {
        (schedule.name, schedule.cron_schedule, schedule.job_name)
        for schedule in repository().schedule_defs
    }
    assert documented == actual
    assert all(s.execution_timezone == "UTC" for s in repository().schedule_defs)


def test_the_sensor_table_is_the_code_locations():
    text = GUIDE.read_text()
    rows = table_rows(text, "Sensors (all on from the first deploy)")
    documented = {(ticked(r[0])[0], r[1]) for r in rows}
    actual = {
        (sensor.name, f"{sensor.minimum_interval_seconds} s") for sensor in repository().sensor_defs
    }
    assert documented == actual


def test_the_job_table_names_every_job():
    rows = table_rows(GUIDE.read_text(), "## Running a job by hand")
    documented = {name for row in rows for name in ticked(row[0])}
    jobs = {job.name for job in repository().get_all_jobs() if not job.name.startswith("__")}
    assert documented == jobs


def test_the_check_table_names_every_check():
    rows = table_rows(GUIDE.read_text(), "## Reading a failed check")
    documented = {ticked(row[0])[0] for row in rows}
    checks = {key.name for key in repository().asset_graph.asset_check_keys}
    assert documented == checks


# --- names in the docs --------------------------------------------------------------------


@cache
def cli_commands() -> dict[str, set[str]]:
    """`sync-platform` command → its subcommands (empty for a plain command)."""
    import click

    from sync_platform.cli import app

    group = typer.main.get_command(app)
    return {
        name: set(command.commands) if isinstance(command, click.Group) else set()
        for name, command in group.commands.items()  # type: ignore[attr-defined]
    }


def known_variable(name: str) -> bool:
    known = variables_the_code_reads() | compose_interpolated() | LIBRARY_VARIABLES
    known |= set(re.findall(r"^ARG (\w+)", DOCKERFILE.read_text(), re.MULTILINE))
    if name in known:
        return True
    prefix = re.split(r"[<*…]", name)[0]
    return prefix != name and any(variable.startswith(prefix) for variable in known)


@pytest.mark.parametrize("doc", CHECKED_DOCS)
def test_every_variable_named_is_read(doc):
    text = (DOCS / doc).read_text()
    named = set()
    for code in code_spans(text):
        for word in re.findall(r"\b[A-Z][A-Z0-9]+_[A-Z0-9_<>*…]*", code):
            if word.startswith("PATH") or word in ("POST", "GET"):
                continue
            named.add(word.rstrip("_") if not word.endswith(("_<", "_*", "_…")) else word)
    unknown = sorted(name for name in named if not known_variable(name))
    assert unknown == [], f"{doc} names variables nothing reads"


@pytest.mark.parametrize("doc", CHECKED_DOCS)
def test_every_cli_command_named_exists(doc):
    text = (DOCS / doc).read_text()
    commands = cli_commands()
    for words in re.findall(r"sync-platform ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", text):
        command, *rest = words.split()
        if command in ("simulator",):  # the simulator's own CLI, sync-platform-simulator
            continue
        assert command in commands, f"{doc}: sync-platform {words}"
        if commands[command] and rest:
            assert rest[0] in commands[command] or rest[0] in ("list", "show"), (doc, words)


@pytest.mark.parametrize("doc", CHECKED_DOCS)
def test_every_job_run_by_hand_exists(doc):
    jobs = {job.name for job in repository().get_all_jobs()}
    for job in re.findall(r"-j\s+([a-z0-9_]+)", (DOCS / doc).read_text()):
        assert job in jobs, f"{doc}: -j {job}"


@pytest.mark.parametrize("doc", CHECKED_DOCS)
def test_every_repository_path_and_link_exists(doc):
    text = (DOCS / doc).read_text()
    for code in code_spans(text):
        for match in re.finditer(
            r"(?<![\w/.])((?:deploy|docs|sync_platform|sql|sync_platform_tests)/[\w./-]*)", code
        ):
            path, after = match[1], code[match.end() : match.end() + 1]
            if after in ("<", "*") or path in CREATED_BY_OPERATORS:
                continue  # a pattern (environments/<env>/, sources/*.yaml) or the operator's own
            if not (path.endswith("/") or "." in Path(path).name):
                continue  # a tag or metadata key such as sync_platform/source, not a path
            assert (REPO / path.rstrip("/.")).exists(), f"{doc}: {path}"
    for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if link.startswith("http"):
            continue
        assert (DOCS / link).exists(), f"{doc}: link {link}"
