"""What the ``fhirgen`` commands share: exit statuses, settings and the generator loaded with a
one-line error instead of a traceback, and the options several commands take."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from fhirgen.config import Settings, load_settings
from fhirgen.drafting.generation import backend_names, get_generator
from fhirgen.errors import FhirgenError
from fhirgen.fhir.values import parse_time

EXIT_INPUT = 1  # some input failed; the rest was processed
EXIT_USAGE = 2  # bad settings or options: nothing was processed


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _generator(settings: Settings) -> Any:
    try:
        return get_generator(settings.backend, settings)
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _prepare(settings: Settings) -> dict[str, str]:
    """What ``serve``, ``worker`` and ``beat`` start their child with; settings that cannot run
    (no Redis to reach or embed, say) end the command with one line."""
    from fhirgen.cli.launchers import prepare

    try:
        return prepare(settings)
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _batch(settings: Settings) -> int:
    """Stays drafted together: model backends batch their calls; the template has no need."""
    return 1 if settings.backend == "template" else settings.gpu_batch_size


def _timestamp(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "now":
        return datetime.now(UTC).isoformat(timespec="seconds")
    zoned = value.endswith("Z") or "+" in value[10:] or "-" in value[10:]
    if "T" not in value or parse_time(value) is None or not zoned:
        click.echo(f"error: --timestamp {value!r} is not an ISO date-time with a zone", err=True)
        sys.exit(EXIT_USAGE)
    return value


_inputs = click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=True)
)
_backend = click.option(
    "--backend", type=click.Choice(backend_names()), help="Generation backend (FHIRGEN_BACKEND)."
)
_model = click.option(
    "--model",
    "model",
    type=click.Path(path_type=Path, exists=True),
    help="Model folder or GGUF file for --backend transformers (FHIRGEN_MODEL_PATH).",
)
_encounter = click.option(
    "--encounter",
    "encounters",
    multiple=True,
    metavar="ID",
    help="Only this Encounter id (repeatable); any status or class.",
)
_progress = click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
