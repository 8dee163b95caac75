"""The ``fhirgen`` command line.

Bad input gives one line per problem on stderr (``error: FILE[:LINE]: what``), never a traceback,
and a non-zero exit status; every other input is still processed.

The commands live with their concern: ``offline_commands`` (``generate``, ``eval``),
``live_commands`` (``demo``, ``serve``, ``worker``, ``beat``, ``subscribe``) and ``users``;
``options`` and ``output`` hold what they share.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from fhirgen import __version__
from fhirgen.cli.live_commands import beat, demo, serve, subscribe, worker
from fhirgen.cli.offline_commands import evaluate, generate
from fhirgen.cli.options import EXIT_INPUT, EXIT_USAGE
from fhirgen.cli.users import users

__all__ = ["EXIT_INPUT", "EXIT_USAGE", "cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``fhirgen`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="fhirgen")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fhirgen")
def cli() -> None:
    """Draft cited discharge summaries and care plans from FHIR records."""


for _command in (generate, evaluate, demo, serve, worker, beat, subscribe, users):
    cli.add_command(_command)
