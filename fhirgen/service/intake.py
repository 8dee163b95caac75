"""From parsed notifications to what the store records and the broker must carry.

Only identifiers travel on: which Encounters to re-read, event numbers, counts. The payload's
clinical content is never used (the worker re-reads the Encounter from the EHR).
"""

from __future__ import annotations

from fhirgen.fhir.notifications import Notification
from fhirgen.store import IntakeResult, Received, Store

# Kinds that name what changed; the others only tell us the channel is alive (or its count).
_WITH_EVENTS = ("rest-hook", "event-notification", "query-event")


def accept(store: Store, subscription_id: str, notification: Notification) -> IntakeResult:
    """Record a notification and its new jobs in one transaction (committed unsent); returns
    the jobs to send and whether to reconcile."""
    (result,) = store.record_notifications([received(subscription_id, notification)])
    return result


def received(subscription_id: str, notification: Notification) -> Received:
    """What the store records of a notification (identifiers and counts only)."""
    kind = notification.kind
    events: list[tuple[int | None, str | None]] = []
    if kind == "rest-hook":
        events = [(None, focus) for focus in notification.focus] or [(None, None)]
    elif kind in _WITH_EVENTS:
        # The store drafts only an Encounter focus; an event without one (content "empty")
        # makes it ask for a reconciliation search. Other focus types are recorded as they came.
        events = [(event.number, event.focus) for event in notification.events]
    # A handshake makes the subscription active; the EHR reporting an error, errored. Both are
    # recorded in the notifications' own transaction.
    status = None
    if kind == "handshake":
        status = "active"
    elif notification.status == "error":
        status = "error"
    # Versions let the store skip an Encounter version that is drafted (or being drafted)
    # without a job; without one, the job re-reads the Encounter and the claim decides.
    versions = tuple(
        (focus, version)
        for focus, version in notification.versions
        if focus.startswith("Encounter/") and any(focus == f for _, f in events)
    )
    return Received(
        subscription_id, kind, tuple(events), notification.events_since, status, versions
    )
