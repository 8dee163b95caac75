"""``python -m fhirgen`` runs the CLI."""

from fhirgen.cli import main

main()
