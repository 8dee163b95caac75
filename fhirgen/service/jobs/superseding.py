"""One current draft per stay: when a new draft of a stay is written, the earlier one is marked
``superseded`` (its CarePlan ``revoked``) in the same transaction, each conditional on the
version read (``ifMatch``), and only while it is still ours and untouched: preliminary,
unsigned, with the AI label and the text we wrote. A draft a clinician signed, edited or
retracted is never changed by fhirgen; the caller decides what to write beside it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhirgen.drafting.render import claims
from fhirgen.errors import PermanentError
from fhirgen.fhir.protocol import FhirStore
from fhirgen.service.ports import JobStore

# What fhirgen sets when it supersedes; anything else in these fields is a person's doing.
_RETIRED = {"DocumentReference": "superseded", "CarePlan": "revoked"}
_OURS = {"DocumentReference": ("current",), "CarePlan": ("draft",)}


@dataclass(frozen=True)
class Supersession:
    """What writing a new draft does to the earlier one: transaction entries that retire its
    untouched resources, and the ones a clinician has reviewed (``Type/id (why)``), which are
    left as they are."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    reviewed: list[str] = field(default_factory=list)


def earlier_draft(client: FhirStore, store: JobStore, job: Any) -> Supersession:
    """Read the earlier draft of the job's stay (one batch: the resources holding the
    identifiers its Bundle claimed) and work out what retiring it takes."""
    written = store.latest_written_draft(job.encounter_id, other_than=job.id)
    if written is None:
        return Supersession()
    payload = store.artifact(written.job_id, "bundle")
    if payload is None:  # what was written cannot be compared: the summary counts as edited
        (summary,) = client.batch([written.document_reference])
        return _decide([(None, resource) for resource in summary])
    bundle = orjson.loads(payload)
    sent = [
        (claim, entry["resource"])
        for entry in bundle.get("entry") or []
        for claim in claims({"entry": [entry]})
        if claim.resource_type in _RETIRED
    ]
    found = client.batch([claim.search for claim, _ in sent])
    return _decide(
        [
            (resource_sent, held)
            for (_, resource_sent), holders in zip(sent, found, strict=True)
            for held in holders
        ]
    )


def _decide(pairs: list[tuple[Mapping[str, Any] | None, Mapping[str, Any]]]) -> Supersession:
    """(what we sent, what the EHR holds) → entries that retire the untouched, and the
    reviewed ones."""
    result = Supersession()
    for sent, held in pairs:
        why = reviewed_because(held, sent)
        if why == "retired":
            continue  # a replay: retired by the transaction that wrote this job's draft
        if why:
            result.reviewed.append(f"{held.get('resourceType')}/{held.get('id')} ({why})")
        else:
            result.entries.append(_retire(held))
    return result


def reviewed_because(resource: Mapping[str, Any], sent: Mapping[str, Any] | None) -> str:
    """Why ``resource`` (one of our earlier draft's) is no longer ours to change: "signed",
    "edited", "retracted", …; "retired" when fhirgen already superseded it; "" when it is
    untouched. Without what we sent, an edit cannot be ruled out, so it counts as one."""
    kind = str(resource.get("resourceType"))
    status = resource.get("status")
    if status == _RETIRED.get(kind):
        return "retired"
    if status == "entered-in-error":
        return "retracted"
    if status not in _OURS.get(kind, ()):
        return f"status {status}"
    if kind == "DocumentReference":
        if resource.get("docStatus") != "preliminary":
            return f"signed (docStatus {resource.get('docStatus') or 'none'})"
        if resource.get("authenticator"):
            return "signed (authenticator)"
    labels = (resource.get("meta") or {}).get("security") or []
    if not any(label.get("code") == "AIAST" for label in labels if isinstance(label, Mapping)):
        return "edited (AI label removed)"
    if sent is None:
        return "edited (what fhirgen wrote is no longer kept to compare)"
    if _readable(resource) != _readable(sent):
        return "edited"
    return ""


def _readable(resource: Mapping[str, Any]) -> list[Any]:
    """What a clinician reads and edits: a document's attachments, a plan's description and
    activities (not what an EHR may add or drop on its own: sizes, hashes, narrative)."""
    if resource.get("resourceType") == "DocumentReference":
        attachments = [
            c.get("attachment") or {}
            for c in resource.get("content") or []
            if isinstance(c, Mapping)
        ]
        return [(a.get("contentType"), a.get("data")) for a in attachments]
    return [
        resource.get("title"),
        resource.get("description"),
        [
            (a.get("detail") or {}).get("description")
            for a in resource.get("activity") or []
            if isinstance(a, Mapping)
        ],
    ]


def _retire(resource: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(resource["resourceType"])
    version = (resource.get("meta") or {}).get("versionId")
    if not version:
        raise PermanentError(f"{kind}/{resource.get('id')} has no version to supersede it at")
    return {
        "resource": {**resource, "status": _RETIRED[kind]},
        "request": {
            "method": "PUT",
            "url": f"{kind}/{resource['id']}",
            "ifMatch": f'W/"{version}"',
        },
    }
