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

from fhirgen.errors import PermanentError
from fhirgen.fhir.client import NotFoundError
from fhirgen.fhir.protocol import FhirStore
from fhirgen.fhir.record import reference_key
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
    """Read the earlier draft of the job's stay (its Provenance's targets) and work out what
    retiring it takes. Nothing to do when there is none or its Provenance is gone."""
    written = store.latest_written_draft(job.encounter_id, other_than=job.id)
    previous = store.job(written.job_id) if written else None
    if previous is None or not previous.provenance:
        return Supersession()
    rtype, _, rid = previous.provenance.partition("/")
    try:
        provenance = client.read(rtype, rid)
    except NotFoundError:
        return Supersession()
    payload = store.artifact(previous.id, "bundle")
    sent = _by_identifier(orjson.loads(payload)) if payload else {}
    result = Supersession()
    for target in provenance.get("target") or []:
        key = reference_key(target)
        kind, _, tid = (key or "").partition("/")
        if kind not in _RETIRED:
            continue
        try:
            resource = client.read(kind, tid)
        except NotFoundError:
            continue  # deleted in the EHR: nothing left to retire
        why = reviewed_because(resource, sent.get(_identifier(resource)))
        if why == "retired":
            continue  # a replay: retired by the transaction that wrote this job's draft
        if why:
            result.reviewed.append(f"{kind}/{tid} ({why})")
        else:
            result.entries.append(_retire(resource))
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
        return [
            (
                (c.get("attachment") or {}).get("contentType"),
                (c.get("attachment") or {}).get("data"),
            )
            for c in resource.get("content") or []
            if isinstance(c, Mapping)
        ]
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


def _by_identifier(bundle: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        token = _identifier(resource)
        if token:
            found[token] = resource
    return found


def _identifier(resource: Mapping[str, Any]) -> str:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, Mapping) and identifier.get("value"):
            return f"{identifier.get('system')}|{identifier['value']}"
    return ""
