"""What the scheduler recovers: stays whose notification was missed (``reconcile``), jobs whose
message or step was lost (``lost_jobs``, ``stalled_jobs``), and topic subscriptions whose
heartbeats stopped (``stale_subscriptions``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fhirgen.clinical.stay import encounter_version, is_inpatient_stay
from fhirgen.fhir.values import parse_time
from fhirgen.service.jobs.dependencies import Services
from fhirgen.service.jobs.steps import READ, next_step_for
from fhirgen.store import as_utc, utcnow

log = logging.getLogger(__name__)

_RECONCILE_WATERMARK = "reconcile.watermark"


def reconcile(services: Services, *, now: datetime | None = None) -> list[str]:
    """Find finished inpatient stays updated since the watermark with no draft; make jobs.

    This is how missed notifications are recovered (and what an empty ping triggers).
    """
    store, settings = services.store, services.settings
    now = now or utcnow()
    mark = store.get_value(_RECONCILE_WATERMARK)
    since = mark or (now - timedelta(days=settings.reconcile_lookback_days)).isoformat(
        timespec="seconds"
    )
    with services.client() as client:
        encounters = client.search(
            "Encounter", [("status", "finished"), ("_lastUpdated", f"ge{since}"), ("_count", "100")]
        )
    stays = [e for e in encounters if is_inpatient_stay(e, settings.inpatient_classes)]
    ids = [str(e["id"]) for e in stays]
    settled = store.drafted_versions(ids)
    busy = store.active_job_encounters(ids)
    created: list[str] = []
    for encounter in stays:
        encounter_id = str(encounter["id"])
        if encounter_id in busy or encounter_version(encounter) in settled.get(encounter_id, ()):
            continue
        job_id, send = store.create_job(encounter_id, source="reconcile")
        if send:
            created.append(job_id)
    updated = [
        moment
        for moment in (parse_time((e.get("meta") or {}).get("lastUpdated")) for e in encounters)
        if moment is not None
    ]
    if updated:
        store.set_value(_RECONCILE_WATERMARK, max(updated).isoformat(timespec="seconds"))
    log.info(
        "reconciliation: %d finished stays since %s, %d new jobs", len(stays), since, len(created)
    )
    return created


def lost_jobs(services: Services, queued: int, *, now: datetime | None = None) -> list[str]:
    """Jobs whose broker message was lost, claimed for sending again.

    A job enqueued more than ``requeue_after`` seconds ago that has not started either waits
    behind a backlog or lost its message (Redis restarted without the data). With ``queued``
    messages on the ``io`` queue and more such jobs than that, messages are missing: all of
    them are sent again. A job sent twice is read once: the second delivery finds it moved on.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=services.settings.requeue_after)
    # Counted first: with workers down for hours the backlog is large and usually not lost.
    if services.store.count_waiting_since(cutoff) <= queued:
        return []
    claimed = services.store.reclaim_enqueue(services.store.waiting_since(cutoff), now)
    if claimed:
        log.warning(
            "%d job(s) waited over %.0f s with %d message(s) queued: sent again",
            len(claimed),
            services.settings.requeue_after,
            queued,
        )
    return claimed


# An active state, the setting that bounds how long a job may sit in it, and the step it waits
# for; a job in ``received`` that was sent is ``lost_jobs``'s (the relay sends unsent ones).
_TIMEOUTS = {
    "reading": "reading_timeout",
    "generating": "generating_timeout",
    "writing": "writing_timeout",
}


def stalled_jobs(
    services: Services, waiting: Mapping[str, int], *, now: datetime | None = None
) -> list[tuple[str, str]]:
    """Jobs to resume, as (step, job id): the sweeper sends each its step again.

    ``waiting`` is, per step, how many messages its queue holds. A sent job still ``received``
    after ``requeue_after`` seconds is ``lost_jobs``'s. A job in ``reading``, ``generating`` or
    ``writing`` whose row has not moved for that state's timeout (a step's progress and each
    retry it schedules move it) lost its step: a store or broker failure the retries did not
    outlast, a message Redis dropped. As for ``lost_jobs``, while the step's queue holds at
    least as many messages as such jobs they may be waiting there behind a backlog, and none is
    sent. Each job resumed is claimed (its ``updated_at`` moved to now), so a sweep resends it
    once per timeout; the step's state checks and the draft claims make a second delivery of
    a step that was alive after all do nothing twice.
    """
    now = now or utcnow()
    store, settings = services.store, services.settings
    resumed = [(READ, job_id) for job_id in lost_jobs(services, waiting.get(READ, 0), now=now)]
    for state, setting in _TIMEOUTS.items():
        timeout = float(getattr(settings, setting))
        stalled = store.stalled(state, now - timedelta(seconds=timeout))
        step = next_step_for(state)
        if not stalled or step is None or len(stalled) <= waiting.get(step, 0):
            continue
        claimed = store.reclaim_stalled(state, stalled, now)
        if claimed:
            log.warning(
                "%d job(s) sat in %s over %.0f s: step %s sent again",
                len(claimed),
                state,
                timeout,
                step,
            )
        resumed += [(step, job_id) for job_id in claimed]
    return resumed


def stale_subscriptions(services: Services, *, now: datetime | None = None) -> list[str]:
    """Topic subscriptions whose heartbeats stopped: ask the EHR ``$status`` and record it.

    Returns the subscriptions whose status showed missed events (the caller reconciles).
    """
    store, settings = services.store, services.settings
    now = now or utcnow()
    behind: list[str] = []
    for sub in store.subscriptions():
        if (
            sub.kind != "topic"
            or sub.status != "active"
            or not sub.heartbeat_period
            or not sub.ehr_id
        ):
            continue
        last = as_utc(sub.last_notification_at) or as_utc(sub.created_at)
        if last and now - last < timedelta(seconds=sub.heartbeat_period * settings.heartbeat_grace):
            continue
        with services.client() as client:
            status = client.get(f"Subscription/{sub.ehr_id}/$status")
        since = status_events_since(status)
        result = store.record_notification(sub.id, "query-status", events_since=since, now=now)
        if result.gap:
            behind.append(sub.id)
    return behind


def status_events_since(bundle: dict[str, Any]) -> int | None:
    """``events-since-subscription-start`` from a ``$status`` result (Parameters or R4B)."""
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "SubscriptionStatus":
            value = resource.get("eventsSinceSubscriptionStart")
            return int(value) if value is not None else None
        for parameter in resource.get("parameter") or []:
            if parameter.get("name") in {
                "events-since-subscription-start",
                "eventsSinceSubscriptionStart",
            }:
                value = next((v for k, v in parameter.items() if k.startswith("value")), None)
                return int(value) if value is not None else None
    return None
