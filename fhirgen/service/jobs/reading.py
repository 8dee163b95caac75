"""The read step (io): re-read the Encounter and its stay from the EHR, skip what does not
qualify or is already drafted, and keep the record for the generate step."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from fhirgen.clinical.facts import extract_facts
from fhirgen.clinical.stay import (
    build_context,
    encounter_class_codes,
    encounter_version,
    is_inpatient_stay,
)
from fhirgen.errors import PermanentError
from fhirgen.fhir.record import PatientRecord
from fhirgen.fhir.values import parse_time
from fhirgen.service.jobs.dependencies import Services
from fhirgen.service.jobs.steps import GENERATE, READ, _failing_on_permanent, _timed
from fhirgen.service.ports import JobStore

log = logging.getLogger(__name__)


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
            fingerprint = _facts_fingerprint(stay.record, encounter)
            holder = store.claim_draft(
                job_id, job.encounter_id, version, job.regeneration, fingerprint
            )
            if holder is not None:
                reason = f"already drafted for Encounter version {version} (job {holder})"
            elif job.regeneration == 0:  # a regeneration is asked for: it drafts anyway
                reason = _unchanged_since(store, job_id, job.encounter_id, fingerprint)
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


def _facts_fingerprint(record: PatientRecord, encounter: dict[str, Any]) -> str | None:
    """The stay's facts' fingerprint; None when its facts cannot be built (the generate step
    then fails the job with the reason)."""
    try:
        return extract_facts(build_context(record, encounter)).fingerprint()
    except PermanentError:
        return None


def _unchanged_since(
    store: JobStore, job_id: str, encounter_id: str, fingerprint: str | None
) -> str:
    """Why not to draft again: the last draft written for the Encounter has the same facts (an
    update that changed no fact: coding, billing, a new version of the same stay). The
    clinician already has that draft; another would only pile up beside it."""
    written = store.latest_written_draft(encounter_id, other_than=job_id)
    if fingerprint is None or written is None or written.facts_fingerprint != fingerprint:
        return ""
    return (
        f"the stay's facts are unchanged since the draft written by job {written.job_id} "
        f"({written.document_reference})"
    )


def _not_a_stay(encounter: dict[str, Any], classes: tuple[str, ...]) -> str:
    if is_inpatient_stay(encounter, classes):
        return ""
    if encounter.get("status") != "finished":
        return f"Encounter is {encounter.get('status')}, not finished"
    found = ", ".join(sorted(encounter_class_codes(encounter))) or "none"
    return f"Encounter class {found} is not an inpatient class ({', '.join(classes)})"
