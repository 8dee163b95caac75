"""The write step (io): POST the transaction Bundle (conditional creates, so a replay creates
nothing new) between the identifier checks of ``squatting``, and record what was written."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from fhirgen.service.jobs.dependencies import Services
from fhirgen.service.jobs.squatting import (
    IdentifierConflict,
    _alert,
    _check_claims,
    _check_written,
    _location,
)
from fhirgen.service.jobs.steps import GENERATE, WRITE, _failing_on_permanent, _timed
from fhirgen.service.jobs.superseding import earlier_draft

# The start of a skipped job's reason when the stay changed after a clinician reviewed its draft.
CHANGED_AFTER_REVIEW = "changed after review"

log = logging.getLogger(__name__)


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
                earlier = earlier_draft(client, store, job)
                if earlier.reviewed and job.regeneration == 0:
                    _leave_reviewed(services, job_id, earlier.reviewed)
                    return None
                # The earlier draft's untouched resources are retired in the same transaction
                # (a reviewed one is left alone: a regeneration drafts beside it).
                sent = {**bundle, "entry": [*bundle["entry"], *earlier.entries]}
                response = client.transaction(sent)
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


def _leave_reviewed(services: Services, job_id: str, reviewed: list[str]) -> None:
    """A clinician has signed, edited or retracted the stay's earlier draft: nothing is
    written over or beside it; the console shows the job as changed after review, and its
    Regenerate drafts an update beside the reviewed note."""
    reason = (
        f"{CHANGED_AFTER_REVIEW}: the earlier draft was reviewed in the EHR "
        f"({', '.join(reviewed)}); nothing written. Regenerate drafts an update beside it."
    )
    services.store.advance(job_id, ("writing",), "skipped", reason=reason[:2000])
    log.info("job %s: %s", job_id, CHANGED_AFTER_REVIEW)


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
