"""From a parsed notification to what the store records and the broker must carry.

Only identifiers travel on: which Encounters to re-read, event numbers, counts. The payload's
clinical content is never used (the worker re-reads the Encounter from the EHR).
"""

from __future__ import annotations

from fhirgen.fhir.notifications import Notification
from fhirgen.store import IntakeResult, Store

# Kinds that name what changed; the others only tell us the channel is alive (or its count).
_WITH_EVENTS = ("rest-hook", "event-notification", "query-event")


def accept(store: Store, subscription_id: str, notification: Notification) -> IntakeResult:
    """Record a notification; returns the jobs to enqueue and whether to reconcile."""
    kind = notification.kind
    events: list[tuple[int | None, str | None]] = []
    if kind == "rest-hook":
        events = [(None, focus) for focus in notification.focus] or [(None, None)]
    elif kind in _WITH_EVENTS:
        # The store drafts only an Encounter focus; an event without one (content "empty")
        # makes it ask for a reconciliation search. Other focus types are recorded as they came.
        events = [(event.number, event.focus) for event in notification.events]
    result = store.record_notification(
        subscription_id, kind, events=events, events_since=notification.events_since
    )
    if kind == "handshake":
        store.update_subscription(subscription_id, status="active", error=None)
    elif notification.status == "error":
        store.update_subscription(subscription_id, status="error", error="EHR reports an error")
    return result
