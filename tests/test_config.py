"""Settings: environment, a TOML file, safe defaults, and loud errors."""

from __future__ import annotations

import pytest

from fhirgen.config import DEFAULT_INPATIENT_CLASSES, load_settings
from fhirgen.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("FHIRGEN_"):
            monkeypatch.delenv(name)


def test_defaults_run_with_nothing_configured():
    settings = load_settings()
    assert settings.backend == "template"
    assert settings.inpatient_classes == DEFAULT_INPATIENT_CLASSES


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("FHIRGEN_INPATIENT_CLASSES", "imp, acute")
    monkeypatch.setenv("FHIRGEN_MAX_BUNDLE_BYTES", "1000")
    settings = load_settings()
    assert settings.inpatient_classes == ("IMP", "ACUTE")
    assert settings.max_bundle_bytes == 1000


def test_config_file_and_precedence(monkeypatch, tmp_path):
    config = tmp_path / "fhirgen.toml"
    config.write_text('inpatient_classes = ["IMP"]\nmax_line_bytes = 4096\n')
    monkeypatch.setenv("FHIRGEN_CONFIG", str(config))
    monkeypatch.setenv("FHIRGEN_MAX_LINE_BYTES", "8192")
    settings = load_settings()
    assert settings.inpatient_classes == ("IMP",)
    assert settings.max_line_bytes == 8192, "the environment wins over the file"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FHIRGEN_BACKEND": "gpt-9"}, "backend: Value error, unknown backend 'gpt-9'"),
        ({"FHIRGEN_MAX_BUNDLE_BYTES": "-1"}, "max_bundle_bytes: Input should be greater than 0"),
        (
            {"FHIRGEN_CONFIG": "/nonexistent/fhirgen.toml"},
            "FHIRGEN_CONFIG names /nonexistent/fhirgen.toml",
        ),
    ],
)
def test_bad_settings_are_loud(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert message in str(raised.value)


def test_unknown_key_in_config_file(monkeypatch, tmp_path):
    config = tmp_path / "fhirgen.toml"
    config.write_text('backnd = "template"\n')
    monkeypatch.setenv("FHIRGEN_CONFIG", str(config))
    with pytest.raises(ConfigError, match="backnd"):
        load_settings()


def test_the_brokers_url_goes_to_kombu_and_back_unchanged(tmp_path):
    from fhirgen.service.broker import celery_broker_url, redis_url_of_broker

    for url in ("redis://127.0.0.1:6379/3", "rediss://user:pw@redis.example:6380/0"):
        settings = load_settings(data_dir=tmp_path, redis_url=url)
        assert celery_broker_url(settings) == url
        assert redis_url_of_broker(url) == url
    assert redis_url_of_broker("redis+socket:///run/redis.sock") == "unix:///run/redis.sock"
