"""Bad configuration stops the code location with a message naming file, key and problem."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sync_platform.config.loader import PACKAGE_CONFIG_DIR, load_source_config
from sync_platform.errors import ConfigurationError
from sync_platform.settings import CONFIG_DIR_ENV, ENVIRONMENT_ENV


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped config that a test may break."""
    target = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR / "sources", target / "sources")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(target))
    return target


def edit(config_dir: Path, change) -> Path:
    path = config_dir / "sources" / "dealer_feed.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return path


def load_error(config_dir: Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_source_config("dealer_feed")
    return str(caught.value)


def test_unknown_type_names_file_key_and_problem(config_dir):
    path = edit(
        config_dir, lambda d: d["entities"]["dealer_stock"]["fields"]["price"].update(type="decmal")
    )
    message = load_error(config_dir)
    assert str(path) in message
    assert "entities.dealer_stock.fields.price.type" in message
    assert "decmal" in message


def test_yaml_syntax_error_names_the_file_and_line(config_dir):
    path = config_dir / "sources" / "dealer_feed.yaml"
    path.write_text(path.read_text() + "\n  broken: [unclosed\n")
    message = load_error(config_dir)
    assert str(path) in message and "not valid YAML" in message and "line" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["entities"]["dealer_stock"].update(key=["nope"]),
            "key column 'nope' is not one of the fields",
        ),
        (
            lambda d: d["entities"]["dealer_leads"].pop("cursor_field"),
            "an incremental entity needs cursor_field",
        ),
        (
            lambda d: d["entities"]["dealer_stock"]["fields"]["vin"]["checks"].update(
                str_matches="(["
            ),
            "not a valid regular expression",
        ),
        (
            lambda d: d["entities"]["dealer_stock"]["fields"]["price"].update(colour="red"),
            "entities.dealer_stock.fields.price.colour: Extra inputs are not permitted",
        ),
        (
            lambda d: d["entities"]["dealer_stock"].update(depends_on=["ghost"]),
            "depends on unknown entity 'ghost'",
        ),
        (
            lambda d: d["entities"]["dealer_stock"]["fields"]["stock_number"].update(
                required=False
            ),
            "must be declared required",
        ),
        (
            lambda d: d["entities"]["dealer_stock"]["fields"]["stock_number"].update(type="float"),
            "keys must be one of",
        ),
        # Hostile names and endpoints (issue 19): refused when loading, naming the field.
        (
            lambda d: d["entities"].update(
                {"stock'; DROP TABLE x;--": d["entities"]["dealer_stock"]}
            ),
            'entity name "stock\'; DROP TABLE x;--" must be lower_snake_case',
        ),
        (
            lambda d: d.update(source='dealer"feed'),
            "source: String should match pattern",
        ),
        (
            lambda d: d["entities"]["dealer_stock"].update(endpoint="https://evil.example/steal"),
            "endpoint 'https://evil.example/steal' must be relative to the source's base URL",
        ),
        (
            lambda d: d["entities"]["dealer_stock"].update(endpoint="//evil.example/x"),
            "an absolute URL would send the source's credentials to that host",
        ),
    ],
)
def test_each_class_of_mistake_is_named(config_dir, change, expected):
    edit(config_dir, change)
    assert expected in load_error(config_dir)


def edit_legacy(config_dir: Path, change) -> None:
    path = config_dir / "sources" / "legacy_erp.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["entities"]["legacy_variants"].update(depends_on=[]),
            "references.product_code points at 'legacy_products', which is not in its depends_on",
        ),
        (
            lambda d: d["entities"]["legacy_variants"].update(
                references={"product_code": "legacy_products.nope"}
            ),
            "'legacy_products' has no column 'nope'",
        ),
        (
            lambda d: d["entities"]["legacy_products"].update(conflict_timestamp="name"),
            "conflict_timestamp 'name' must be a date or datetime field",
        ),
        (
            lambda d: d["field_defaults"].update(transforms=["shout"]),
            "fields.category.transforms.0: Input should be",
        ),
    ],
)
def test_legacy_relationships_and_rules_are_validated(config_dir, change, expected):
    edit_legacy(config_dir, change)
    with pytest.raises(ConfigurationError) as caught:
        load_source_config("legacy_erp")
    assert expected in str(caught.value) and "legacy_erp.yaml" in str(caught.value)


def test_environment_overlay_merges_key_by_key(config_dir, monkeypatch):
    overlay = config_dir / "environments" / "prod"
    overlay.mkdir(parents=True)
    (overlay / "dealer_feed.yaml").write_text(
        "entities:\n  dealer_leads:\n    overlap_seconds: 900\n"
    )
    monkeypatch.setenv(ENVIRONMENT_ENV, "prod")
    leads = load_source_config("dealer_feed").entities["dealer_leads"]
    assert leads.overlap_seconds == 900
    assert leads.cursor_field == "updated_at"  # everything else from the base file
    monkeypatch.setenv(ENVIRONMENT_ENV, "dev")
    assert load_source_config("dealer_feed").entities["dealer_leads"].overlap_seconds == 300


def test_code_location_refuses_to_load_a_bad_config(config_dir):
    edit(config_dir, lambda d: d["entities"]["dealer_stock"]["fields"]["year"].update(type="int"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "sync_platform.definitions",
        ],
        env={**os.environ, CONFIG_DIR_ENV: str(config_dir)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "entities.dealer_stock.fields.year.type" in output


def test_an_overlay_removes_or_disables_bundled_workflows(tmp_path, monkeypatch, caplog):
    """`<key>: null` removes a bundled workflow, `enabled: false` turns it off: the receiver
    takes none of their deliveries and the gap check leaves them out. A workflow whose
    secret is not set is not configured here, which is said quietly, not as an error."""
    from sync_platform.config.webhooks import load_webhooks_config
    from sync_platform.defs.n8n.delivery_gaps import gap_targets
    from sync_platform.receiver.settings import ReceiverSettings

    target = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, target)
    overlay = target / "environments" / "prod"
    overlay.mkdir(parents=True)
    (overlay / "webhooks.yaml").write_text(
        "workflows:\n  form_submission: null\n  order_update:\n    enabled: false\n"
    )
    monkeypatch.setenv(CONFIG_DIR_ENV, str(target))
    monkeypatch.setenv(ENVIRONMENT_ENV, "prod")
    config = load_webhooks_config()
    assert set(config.workflows) == {"new_lead", "order_update"}
    assert set(config.enabled()) == {"new_lead"}
    environ = {ENVIRONMENT_ENV: "prod"}
    with caplog.at_level("INFO", logger="sync_platform.receiver"):
        receiver = ReceiverSettings.from_env(environ, warehouse_url="sqlite:///unused.db")
    assert set(receiver.workflows) == {"new_lead"}
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert "new_lead is not configured (set N8N_WEBHOOK_SECRET_NEW_LEAD" in caplog.text
    targets, problems, not_configured = gap_targets({})
    assert (targets, problems, not_configured) == ([], [], ["new_lead"])
    with_secret = {"N8N_WEBHOOK_SECRET_NEW_LEAD": "x" * 40}
    assert gap_targets(with_secret)[1] == [
        "new_lead: set N8N_WORKFLOW_ID_NEW_LEAD to check its deliveries"
    ]
