"""Celery workers: thin tasks that call ``fhirgen`` (the live path; see docs/architecture.md)."""
