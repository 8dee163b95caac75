"""``python -m fhirgen`` runs the CLI."""

from fhirgen.cli.main import main

main()
