"""SYNC_PLATFORM_ENV selects `<config folder>/environments/<env>/`; naming an environment
that has no such folder is refused, not silently ignored (docs/deploy.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sync_platform.config.loader import PACKAGE_CONFIG_DIR, load_source_config
from sync_platform.config.webhooks import load_webhooks_config
from sync_platform.errors import ConfigurationError
from sync_platform.receiver.settings import ReceiverSettings
from sync_platform.settings import CONFIG_DIR_ENV, ENVIRONMENT_ENV


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped config folder (sources and webhooks), without overlays."""
    target = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR / "sources", target / "sources")
    shutil.copy(PACKAGE_CONFIG_DIR / "webhooks.yaml", target / "webhooks.yaml")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(target))
    return target


def test_the_package_ships_no_overlays():
    """So SYNC_PLATFORM_ENV=<anything but dev> needs a config folder of the deployment's own
    (SYNC_PLATFORM_CONFIG_DIR), as docs/deploy.md says."""
    assert not (PACKAGE_CONFIG_DIR / "environments").exists()


def test_an_environment_without_its_folder_is_refused(config_dir, monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_ENV, "prod")
    with pytest.raises(ConfigurationError) as caught:
        load_source_config("dealer_feed")
    message = str(caught.value)
    assert f"{ENVIRONMENT_ENV}='prod'" in message
    assert str(config_dir / "environments" / "prod") in message
    assert CONFIG_DIR_ENV in message  # what to do: point the config folder elsewhere
    with pytest.raises(ConfigurationError, match="no overlay folder"):
        load_webhooks_config()


def test_the_receiver_refuses_it_too(config_dir):
    with pytest.raises(ConfigurationError, match="no overlay folder"):
        ReceiverSettings.from_env({ENVIRONMENT_ENV: "prod"}, warehouse_url="sqlite:///x.db")


@pytest.mark.parametrize("value", [None, "", "dev"])
def test_the_default_environment_needs_no_folder(config_dir, monkeypatch, value):
    if value is None:
        monkeypatch.delenv(ENVIRONMENT_ENV, raising=False)
    else:
        monkeypatch.setenv(ENVIRONMENT_ENV, value)
    leads = load_source_config("dealer_feed").entities["dealer_leads"]
    assert leads.overlap_seconds == 300
    assert "form_submission" in load_webhooks_config().workflows


def test_a_folder_without_a_file_for_this_config_merges_nothing(config_dir, monkeypatch):
    """An overlay folder need not override every file: the others load as shipped."""
    overlay = config_dir / "environments" / "prod"
    overlay.mkdir(parents=True)
    (overlay / "webhooks.yaml").write_text("workflows:\n  form_submission: null\n")
    monkeypatch.setenv(ENVIRONMENT_ENV, "prod")
    assert load_source_config("dealer_feed").entities["dealer_leads"].overlap_seconds == 300
    assert "form_submission" not in load_webhooks_config().workflows
