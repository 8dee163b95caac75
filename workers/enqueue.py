"""Handing job ids to the broker (the only thing the webhook needs from ``workers``)."""

from __future__ import annotations

from collections.abc import Iterable

from workers.app import celery_app

STEP_TASKS = {
    "read": "fhirgen.read_stay",
    "generate": "fhirgen.generate",
    "write": "fhirgen.write_back",
}


def enqueue_step(step: str, job_id: str) -> None:
    """Send one job step to its queue (raises the broker's error if it is down)."""
    celery_app().send_task(STEP_TASKS[step], args=[job_id])


def enqueue_jobs(job_ids: Iterable[str]) -> None:
    """Start jobs: their first step reads the stay."""
    for job_id in job_ids:
        enqueue_step("read", job_id)


def enqueue_reconcile(subscription_id: str | None = None) -> None:
    celery_app().send_task("fhirgen.reconcile", kwargs={"subscription_id": subscription_id})
