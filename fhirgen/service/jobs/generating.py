"""The generate step (gpu): draft several jobs' stays in one generator call (``generate_many``)
and keep each job's Bundle, facts and drafts for the write step."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from fhirgen.drafting.pipeline import StayRequest, draft_stays
from fhirgen.errors import PermanentError
from fhirgen.fhir.record import PatientRecord
from fhirgen.service.jobs.dependencies import Services
from fhirgen.service.jobs.steps import _ACTIVE, GENERATE, READ, WRITE
from fhirgen.service.vault import identifier_key
from fhirgen.store import utcnow

log = logging.getLogger(__name__)


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
