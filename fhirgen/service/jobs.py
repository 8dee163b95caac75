"""The live pipeline's steps, one per queue hop: read the stay (io), draft it (gpu), write it (io).

Each step loads its job, checks the job is where the step expects it (a redelivered message finds
the work done and moves on), does its work, records timings, and says which step comes next.
Errors follow the tree in ``fhirgen.errors``: a ``TransientError`` propagates so the task retries;
a ``PermanentError`` marks the job failed with its reason and gives up its claim on the stay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from fhirgen.clinical.stay import encounter_class_codes, encounter_version, is_inpatient_stay
from fhirgen.drafting.generation import Generator
from fhirgen.drafting.pipeline import StayRequest, draft_stays
from fhirgen.drafting.render import Claim, Conflict, claim_conflict, claims, provenance_key
from fhirgen.errors import PermanentError
from fhirgen.fhir.record import PatientRecord, reference_key
from fhirgen.fhir.values import parse_time
from fhirgen.service.vault import identifier_key
from fhirgen.store import Store, as_utc, utcnow

log = logging.getLogger(__name__)

READ, GENERATE, WRITE = "read", "generate", "write"
_RECONCILE_WATERMARK = "reconcile.watermark"
_ACTIVE = ("received", "reading", "generating", "writing")


class IdentifierConflict(PermanentError):
    """A resource in the EHR already holds one of our draft identifiers and is not our draft
    (say another patient's document carrying it): nothing is written over or tied to it."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__("; ".join(str(c) for c in conflicts))
        self.conflicts = tuple(conflicts)


@dataclass(frozen=True)
class Services:
    """What the steps need, built once per worker process."""

    store: Store
    settings: Any
    client: Callable[[], Any]  # -> FhirClient (a fresh one per step: round trips are counted)
    generator: Callable[[], Generator]


def next_step_for(state: str) -> str | None:
    """The step a job in ``state`` waits for (the sweeper and the console resend it)."""
    return {"received": READ, "reading": READ, "generating": GENERATE, "writing": WRITE}.get(state)


def read(services: Services, job_id: str) -> str | None:
    """Re-read the Encounter and the stay from the EHR; skip stays that do not qualify."""
    from fhirgen.clinical.stay import STAY_SCOPE
    from fhirgen.fhir.stay_reader import read_stay

    store = services.store
    job = store.job(job_id)
    if job is None or not store.advance(job_id, ("received", "reading"), "reading"):
        return None  # gone, or another delivery of this message already moved it on
    store.count_attempt(job_id)
    with _failing_on_permanent(store, job_id), _timed(store, job_id, READ):
        with services.client() as client:
            stay = read_stay(client, job.encounter_id, STAY_SCOPE)
        encounter = stay.encounter
        version = encounter_version(encounter)
        reason = _not_a_stay(encounter, services.settings.inpatient_classes)
        holder = None
        if not reason:
            holder = store.claim_draft(job_id, job.encounter_id, version, job.regeneration)
            if holder is not None:
                reason = f"already drafted for Encounter version {version} (job {holder})"
        if reason:
            store.advance(
                job_id,
                ("reading",),
                "skipped",
                reason=reason,
                encounter_version=version,
                round_trips=stay.round_trips,
            )
            log.info("job %s skipped: %s", job_id, reason)
            return None
        record = {
            "patient_id": stay.record.patient_id,
            "encounter": encounter,
            "resources": list(stay.record.resources()),
        }
        store.put_artifact(job_id, "record", orjson.dumps(record))
        period_end = parse_time((encounter.get("period") or {}).get("end"))
        if not store.advance(
            job_id,
            ("reading",),
            "generating",
            encounter_version=version,
            round_trips=stay.round_trips,
            discharged_at=period_end,
        ):
            return None
    log.info("job %s read in %d round trips", job_id, stay.round_trips)
    return GENERATE


def generate(services: Services, job_id: str) -> str | None:
    """Draft one job (see ``generate_many``)."""
    return generate_many(services, [job_id])[job_id]


def generate_many(services: Services, job_ids: list[str]) -> dict[str, str | None]:
    """Draft several jobs in one generator call; returns each job's next step.

    A job whose stay cannot be drafted fails alone. A ``TransientError`` from the model (say
    a batch that cannot fit even split in halves) propagates: the caller retries these jobs.
    """
    store = services.store
    following: dict[str, str | None] = {}
    ready: list[tuple[Any, StayRequest]] = []
    now = utcnow().isoformat(timespec="seconds")
    for job_id in dict.fromkeys(job_ids):
        job = store.job(job_id)
        following[job_id] = None
        if job is None or job.state != "generating":
            continue  # gone, or another delivery already moved it on
        payload = store.artifact(job_id, "record")
        if payload is None:  # read again rather than guess (e.g. artifacts were purged)
            following[job_id] = READ if store.advance(job_id, ("generating",), "reading") else None
            continue
        data = orjson.loads(payload)
        resources = data["resources"]
        by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources}
        record = PatientRecord(data["patient_id"], resources, lookup=by_key.get)
        replaces = store.latest_written(job.encounter_id, other_than=job_id)
        request = StayRequest(record, data["encounter"], now, replaces, job.regeneration)
        ready.append((job, request))
    if not ready:
        return following
    generator = services.generator()
    started = time.perf_counter()
    results = draft_stays(
        [request for _, request in ready],
        generator,
        identifier_system=services.settings.identifier_system,
        identifier_key=identifier_key(services.settings),  # nobody can squat what they cannot guess
    )
    share = (time.perf_counter() - started) * 1000 / len(ready)
    for (job, request), result in zip(ready, results, strict=True):
        store.add_timing(job.id, GENERATE, share)
        if isinstance(result, PermanentError):
            if store.advance(job.id, _ACTIVE, "failed", reason=str(result)[:2000]):
                store.release_draft(job.id)
            log.warning("job %s failed: %s", job.id, type(result).__name__)
            continue
        store.put_artifact(job.id, "bundle", orjson.dumps(result.bundle))
        store.put_artifact(job.id, "facts", orjson.dumps(_facts_view(result)))
        store.put_artifact(job.id, "drafts", orjson.dumps(_drafts_view(result)))
        sentences = sum(len(list(d.sentences())) for d in result.drafts.values())
        report = {
            kind: {"dropped": [vars(d) for d in r.dropped], "fallbacks": list(r.fallbacks)}
            for kind, r in result.reports.items()
        }
        # Per document kind what it cost, and how many jobs shared the generator call.
        usage: dict[str, Any] = {
            kind: dict(draft.usage) for kind, draft in result.drafts.items() if draft.usage
        }
        usage["jobs_in_batch"] = len(ready)
        if store.advance(
            job.id,
            ("generating",),
            "writing",
            backend=generator.name,
            model=f"{generator.model} {generator.version}".strip(),
            facts=len(result.facts),
            sentences=sentences,
            verification=report,
            replaces=request.replaces,
            usage=usage,
        ):
            following[job.id] = WRITE
    log.info("drafted %d job(s) in one batch", len(ready))
    return following


def write(services: Services, job_id: str) -> str | None:
    """POST the transaction Bundle; conditional creates make a replay create nothing new.

    What already holds one of the Bundle's identifiers is checked before and after (see
    ``_check_claims``): a holder that is not our own draft fails the job, never adopted.
    """
    store = services.store
    job = store.job(job_id)
    if job is None or job.state != "writing":
        return None
    payload = store.artifact(job_id, "bundle")
    if payload is None:
        return GENERATE if store.advance(job_id, ("writing",), "generating") else None
    with _failing_on_permanent(store, job_id), _timed(store, job_id, WRITE):
        bundle = orjson.loads(payload)
        with services.client() as client:
            try:
                ours = _check_claims(client, bundle)
                response = client.transaction(bundle)
                _check_written(client, bundle, response, ours)
            except IdentifierConflict as exc:
                _alert(job_id, exc)
                raise
        written = _locations(bundle, response)
        store.record_written(job_id, written.get("DocumentReference"))
        store.advance(
            job_id,
            ("writing",),
            "done",
            document_reference=written.get("DocumentReference"),
            care_plan=written.get("CarePlan"),
            provenance=written.get("Provenance"),
        )
        store.drop_artifacts(job_id, ["record"])
    log.info("job %s done: %s", job_id, written.get("DocumentReference"))
    return None


def _check_claims(client: Any, bundle: dict[str, Any]) -> set[str]:
    """Before writing: who already holds the identifiers the Bundle's conditional creates claim.

    One ``batch`` reads each identifier's holders and our Provenance (its id is deterministic).
    Returns the identifiers already held by our own draft (a replay); raises
    ``IdentifierConflict`` when a holder is not ours, so a conditional create never adopts
    another patient's resource as our draft.
    """
    mine = claims(bundle)
    if not mine:
        return set()
    provenance = provenance_key(bundle)
    found = client.batch([c.search for c in mine] + ([provenance] if provenance else []))
    ours = (found[-1] or [None])[0] if provenance else None
    conflicts = [
        conflict
        for claim, matches in zip(mine, found, strict=False)
        if (conflict := claim_conflict(claim, matches, provenance=ours))
    ]
    if conflicts:
        raise IdentifierConflict(conflicts)
    return {claim.token for claim, matches in zip(mine, found, strict=False) if matches}


def _check_written(
    client: Any, bundle: dict[str, Any], response: dict[str, Any], ours: set[str]
) -> None:
    """After writing: a conditional create that found a resource the check before did not see
    (one created meanwhile) must have found ours; otherwise the Provenance we just wrote is
    rewritten without it and ``IdentifierConflict`` is raised."""
    entries = bundle.get("entry") or []
    answers = response.get("entry") or []
    by_claim = _answers_by_claim(entries, answers)
    device = next(
        (
            _location(a)
            for e, a in zip(entries, answers, strict=False)
            if (e.get("resource") or {}).get("resourceType") == "Device"
        ),
        None,
    )
    conflicts = []
    for claim, answer in by_claim:
        if claim.token in ours or not _status(answer).startswith("200"):
            continue  # created just now, or known to be ours before writing
        held = answer.get("resource")
        if not isinstance(held, dict):
            location = _location(answer)
            rtype, _, rid = (location or "").partition("/")
            held = client.read(rtype, rid) if rid else {}
        conflict = claim_conflict(claim, [held], author=device)
        if conflict:
            conflicts.append(conflict)
    if conflicts:
        _unlink_provenance(client, entries, answers, {c.holder for c in conflicts})
        raise IdentifierConflict(conflicts)


def _answers_by_claim(
    entries: list[dict[str, Any]], answers: list[dict[str, Any]]
) -> list[tuple[Claim, dict[str, Any]]]:
    pairs = []
    for entry, answer in zip(entries, answers, strict=False):
        found = claims({"entry": [entry]})
        if found:
            pairs.append((found[0], answer or {}))
    return pairs


def _unlink_provenance(
    client: Any, entries: list[dict[str, Any]], answers: list[dict[str, Any]], foreign: set[str]
) -> None:
    """PUT our Provenance again without the targets that turned out not to be ours."""
    for entry, answer in zip(entries, answers, strict=False):
        if (entry.get("resource") or {}).get("resourceType") != "Provenance":
            continue
        stored = (answer or {}).get("resource")
        if not isinstance(stored, dict):
            key = _location(answer or {}) or str((entry.get("request") or {}).get("url"))
            rtype, _, rid = key.partition("/")
            stored = client.read(rtype, rid)
        kept = [t for t in stored.get("target") or [] if reference_key(t) not in foreign]
        if kept:
            client.update({**stored, "target": kept})
        else:
            log.error("Provenance/%s names only resources that are not ours", stored.get("id"))


def _alert(job_id: str, error: IdentifierConflict) -> None:
    """The operator's alert: which resource holds our identifier, and why it is not ours
    (``Type/id`` only: no patient, no identifier value, which names the encounter)."""
    for conflict in error.conflicts:
        log.error(
            "job %s not written: a %s draft identifier of ours is already used by %s %s",
            job_id,
            conflict.claim.resource_type,
            conflict.holder,
            conflict.why,
        )


def _status(answer: dict[str, Any]) -> str:
    return str((answer.get("response") or {}).get("status") or "")


def _location(answer: dict[str, Any]) -> str | None:
    location = str((answer.get("response") or {}).get("location") or "")
    parts = location.split("/_history")[0].rstrip("/").split("/")
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 else None


def fail(services: Services, job_id: str, reason: str) -> None:
    """Mark a job failed (e.g. retries exhausted) and release its claim on the stay."""
    if services.store.advance(job_id, _ACTIVE, "failed", reason=reason[:2000]):
        services.store.release_draft(job_id)


def _not_a_stay(encounter: dict[str, Any], classes: tuple[str, ...]) -> str:
    if is_inpatient_stay(encounter, classes):
        return ""
    if encounter.get("status") != "finished":
        return f"Encounter is {encounter.get('status')}, not finished"
    found = ", ".join(sorted(encounter_class_codes(encounter))) or "none"
    return f"Encounter class {found} is not an inpatient class ({', '.join(classes)})"


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


@contextmanager
def _timed(store: Store, job_id: str, step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        store.add_timing(job_id, step, (time.perf_counter() - started) * 1000)


@contextmanager
def _failing_on_permanent(store: Store, job_id: str) -> Iterator[None]:
    try:
        yield
    except PermanentError as exc:
        if store.advance(job_id, _ACTIVE, "failed", reason=str(exc)[:2000]):
            store.release_draft(job_id)
        log.warning("job %s failed: %s", job_id, type(exc).__name__)
        raise


def _locations(request: dict[str, Any], response: dict[str, Any]) -> dict[str, str]:
    """``Type/id`` of each resource the transaction created or found, by resource type.

    The first of a type wins: the discharge summary is the Bundle's first DocumentReference (the
    patient instructions come after it), and it is what the job records and a regenerated draft
    replaces.
    """
    written: dict[str, str] = {}
    seen: set[str] = set()
    for sent, got in zip(request.get("entry") or [], response.get("entry") or [], strict=False):
        rtype = (sent.get("resource") or {}).get("resourceType")
        if not rtype or rtype in seen:
            continue
        seen.add(rtype)
        location = _location(got or {})
        if location:
            written[rtype] = location
        elif (got or {}).get("resource", {}).get("id"):
            written[rtype] = f"{rtype}/{got['resource']['id']}"
    return written


def _facts_view(result: Any) -> list[dict[str, Any]]:
    return [
        {"id": f.id, "kind": f.kind.value, "text": f.text, "sources": list(f.sources)}
        for f in result.facts
    ]


def _drafts_view(result: Any) -> dict[str, Any]:
    return {
        kind: [
            {
                "key": s.key,
                "title": s.title,
                "sentences": [
                    {"text": x.text, "cites": list(x.cites), "topic": x.topic} for x in s.sentences
                ],
            }
            for s in draft.sections
        ]
        for kind, draft in result.drafts.items()
    }
