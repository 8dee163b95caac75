"""Who already holds our draft identifiers, checked before and after writing: a holder that is
not our own draft (say another patient's document) raises ``IdentifierConflict``, is never
adopted, and is taken out of the Provenance we wrote."""

from __future__ import annotations

import logging
from typing import Any

from fhirgen.drafting.render import Claim, Conflict, claim_conflict, claims, provenance_key
from fhirgen.errors import PermanentError
from fhirgen.fhir.protocol import FhirStore
from fhirgen.fhir.record import reference_key

log = logging.getLogger(__name__)


class IdentifierConflict(PermanentError):
    """A resource in the EHR already holds one of our draft identifiers and is not our draft
    (say another patient's document carrying it): nothing is written over or tied to it."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__("; ".join(str(c) for c in conflicts))
        self.conflicts = tuple(conflicts)


def _check_claims(client: FhirStore, bundle: dict[str, Any]) -> set[str]:
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
    ours = found[-1][0] if provenance and found[-1] else None
    conflicts = [
        conflict
        for claim, matches in zip(mine, found, strict=False)
        if (conflict := claim_conflict(claim, matches, provenance=ours))
    ]
    if conflicts:
        raise IdentifierConflict(conflicts)
    return {claim.token for claim, matches in zip(mine, found, strict=False) if matches}


def _check_written(
    client: FhirStore, bundle: dict[str, Any], response: dict[str, Any], ours: set[str]
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
    client: FhirStore,
    entries: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    foreign: set[str],
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
