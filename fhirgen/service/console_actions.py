"""What an admin may do from the console, each step written to the audit log with its actor.

The functions change the store only; the caller hands new or retried jobs to the broker
(``workers.enqueue.send_jobs``; the outbox relay sends what it could not) and runs
reconciliation (``enqueue_reconcile``), since
``fhirgen`` knows nothing of Celery. Each state change is atomic (``Store.advance``): two admins
clicking at once change the job once, and the other gets ``ActionRefused``.
"""

from __future__ import annotations

from typing import Any

from fhirgen.errors import FhirgenError
from fhirgen.service.users import UserError, end_sessions, unlock
from fhirgen.store import Store

__all__ = [
    "ActionRefused",
    "cancel_job",
    "end_user_sessions",
    "pause_subscription",
    "reconcile_now",
    "regenerate_job",
    "register_subscription",
    "resume_subscription",
    "retry_job",
    "unlock_user",
]

RETRYABLE = ("failed", "cancelled")
CANCELLABLE = ("received", "reading", "generating")  # not "writing": the EHR may have it


class ActionRefused(FhirgenError):
    """The action does not apply to the job or subscription as it is now."""


def retry_job(store: Store, job_id: str, actor: str) -> str:
    """Send a failed (or cancelled) job back to ``received`` to start over; returns its id.

    The reason, finish time and step timings are cleared (the audit entry keeps the old
    reason and attempts); the caller must enqueue the job.
    """
    job = _job(store, job_id)
    if job.state not in RETRYABLE:
        raise ActionRefused(
            f"only a failed or cancelled job can be retried (this one is {job.state})"
        )
    if not store.advance(
        job_id,
        RETRYABLE,
        "received",
        reason=None,
        finished_at=None,
        attempts=0,
        timings={},
        enqueued_at=None,  # unsent: the caller sends it, or the outbox relay does
    ):
        raise ActionRefused("the job changed meanwhile; reload the page")
    store.audit(
        actor,
        "retry",
        job_id=job_id,
        detail=f"was {job.state} after {job.attempts} attempt(s): {(job.reason or '')[:300]}",
    )
    return job_id


def regenerate_job(store: Store, job_id: str, actor: str) -> str:
    """Start a new draft of a done job's stay that replaces the one written; returns the new
    job's id (the caller enqueues it).

    The new job's ``regeneration`` is one more than the highest of the Encounter's jobs, so its
    identifiers are new and its DocumentReference ``relatesTo.replaces`` the newest one written.
    """
    job = _job(store, job_id)
    if job.state != "done":
        raise ActionRefused(f"only a done job can be regenerated (this one is {job.state})")
    highest, busy = store.regeneration_state(job.encounter_id)
    if busy:
        raise ActionRefused("this Encounter already has a job in progress; wait for it to finish")
    new_id, _ = store.create_job(
        job.encounter_id,
        source="manual",
        subscription_id=job.subscription_id,
        regeneration=highest + 1,
    )
    store.audit(actor, "regenerate", job_id=job_id, detail=f"new job {new_id}")
    store.audit(actor, "regenerated-from", job_id=new_id, detail=f"replaces the draft of {job_id}")
    return new_id


def cancel_job(store: Store, job_id: str, actor: str) -> None:
    """Stop a job that has not started writing; its claim on the stay is released."""
    job = _job(store, job_id)
    if job.state not in CANCELLABLE:
        raise ActionRefused(f"only a waiting job can be cancelled (this one is {job.state})")
    if not store.advance(job_id, CANCELLABLE, "cancelled", reason=f"cancelled by {actor}"):
        raise ActionRefused("the job changed meanwhile; reload the page")
    store.release_draft(job_id)
    store.audit(actor, "cancel", job_id=job_id, detail=f"was {job.state}")


def pause_subscription(store: Store, subscription_id: str, actor: str) -> None:
    """Stop accepting a subscription's notifications (the webhook answers 404 while paused)."""
    subscription = _subscription(store, subscription_id)
    if subscription.status in ("paused", "off"):
        raise ActionRefused(f"the subscription is {subscription.status} already")
    store.update_subscription(subscription_id, status="paused")
    store.audit(
        actor, "pause-subscription", detail=f"{subscription_id} (was {subscription.status})"
    )


def resume_subscription(store: Store, subscription_id: str, actor: str) -> None:
    """Accept a paused subscription's notifications again."""
    subscription = _subscription(store, subscription_id)
    if subscription.status != "paused":
        raise ActionRefused(f"only a paused subscription can be resumed ({subscription.status})")
    store.update_subscription(subscription_id, status="active")
    store.audit(actor, "resume-subscription", detail=subscription_id)


def reconcile_now(store: Store, actor: str) -> None:
    """Record that an admin asked for reconciliation (the caller enqueues it)."""
    store.audit(actor, "reconcile-now")


def register_subscription(
    store: Store, client: Any, settings: Any, actor: str, **options: Any
) -> Any:
    """Register a new Subscription on the EHR (``fhirgen.service.subscriptions.register``) and
    audit it.

    Returns the ``Registration``; its secrets are never written to the audit log.
    """
    from fhirgen.service.subscriptions import register

    registration = register(store, client, settings, **options)
    store.audit(
        actor,
        "register-subscription",
        detail=f"{registration.id} ({registration.kind}, EHR Subscription/{registration.ehr_id})",
    )
    return registration


def unlock_user(store: Store, name: str, actor: str) -> int:
    """Let every client refused for user ``name`` (too many wrong passwords) try again; the
    number of clients cleared."""
    try:
        cleared = unlock(store, name)
    except UserError as exc:
        raise ActionRefused(str(exc)) from None
    store.audit(actor, "user-unlock", detail=f"{name}: {cleared} client(s) cleared")
    return cleared


def end_user_sessions(store: Store, name: str, actor: str) -> None:
    """End every open session of user ``name`` (each browser must sign in again)."""
    try:
        end_sessions(store, name)
    except UserError as exc:
        raise ActionRefused(str(exc)) from None
    store.audit(actor, "user-end-sessions", detail=name)


def _job(store: Store, job_id: str) -> Any:
    job = store.job(job_id)
    if job is None:
        raise ActionRefused(f"no job {job_id}")
    return job


def _subscription(store: Store, subscription_id: str) -> Any:
    subscription = store.subscription(subscription_id)
    if subscription is None:
        raise ActionRefused(f"no subscription {subscription_id}")
    return subscription
