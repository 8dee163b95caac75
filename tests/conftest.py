"""Shared fixtures: paths to the shipped samples and the Synthea records, a CLI runner, and an
environment with no FHIRGEN_ settings of the developer's."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fhirgen.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "fhirgen" / "samples"
SYNTHEA = Path(
    os.environ.get("FHIRGEN_SYNTHEA_DIR", ROOT.parent / "shared" / "testdata" / "synthea")
)


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., CliResult]:
    """Run ``fhirgen ARGS`` in-process, with settings from a clean environment."""
    for name in list(os.environ):
        if name.startswith("FHIRGEN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FHIRGEN_DATA_DIR", str(tmp_path / "data"))

    def run(*args: str | Path, env: dict[str, str] | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(cli, [str(a) for a in args], env=env, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No FHIRGEN_ setting of the developer's (nor a metrics folder) reaches the app, and the
    process's Celery app is made afresh from the test's environment."""
    from workers.app import celery_app

    for name in list(os.environ):
        if name.startswith("FHIRGEN_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    celery_app.cache_clear()
    yield
    if celery_app.cache_info().currsize:
        celery_app().close()
    celery_app.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def _no_redis_left_running() -> Iterator[None]:
    """Embedded Redis servers started by the tests stop with the session."""
    yield
    from tests.live import stop_embedded_redis

    stop_embedded_redis()


@pytest.fixture(scope="session")
def synthea() -> Path:
    """The Synthea records beside the project; tests using them skip where they are absent."""
    if not (SYNTHEA / "smart-r4").is_dir():
        pytest.skip(f"Synthea test data not found at {SYNTHEA} (set FHIRGEN_SYNTHEA_DIR)")
    return SYNTHEA


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


def sample_inputs() -> Sequence[Path]:
    return [SAMPLES / "stays", SAMPLES / "bulk"]


@pytest.fixture(scope="module")
def ehr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The EHR for a module's live tests: a sekmet-fhir server over HTTP (modules that need
    another configuration define their own ``ehr``)."""
    from tests.ehr import SekmetServer

    server = SekmetServer(tmp_path_factory.mktemp("ehr")).start()
    yield server
    server.stop()
