"""What the Bundle's conditional creates claim, and when a resource already holding one of our
identifiers is not the draft we would write (``claim_conflict``), so the write step can refuse."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fhirgen.drafting.render.labels import AIAST
from fhirgen.fhir.record import Resource, reference_key


@dataclass(frozen=True)
class Claim:
    """An identifier one conditional create of the Bundle claims, and what a resource already
    holding it must agree with to be the draft we would write (a replay of our own Bundle)."""

    resource_type: str
    system: str
    value: str
    subject: str | None  # Patient/<id>
    encounter: str | None  # Encounter/<id>

    @property
    def token(self) -> str:
        """``system|value``, as the ``identifier`` search parameter takes it."""
        return f"{self.system}|{self.value}"

    @property
    def search(self) -> str:
        """The search (a relative url) that finds what already holds the identifier."""
        return f"{self.resource_type}?{urlencode({'identifier': self.token})}"


def claims(bundle: Mapping[str, Any]) -> list[Claim]:
    """The patient resources the Bundle creates conditionally on one of our identifiers, in
    entry order (the Device, shared by every stay, is not one of them)."""
    found: list[Claim] = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        request = entry.get("request") or {}
        subject = reference_key(resource.get("subject"))
        if request.get("method") != "POST" or not request.get("ifNoneExist") or not subject:
            continue
        for identifier in resource.get("identifier") or []:
            found.append(
                Claim(
                    str(resource["resourceType"]),
                    str(identifier.get("system")),
                    str(identifier.get("value")),
                    subject,
                    _encounter_of(resource),
                )
            )
            break
    return found


def provenance_key(bundle: Mapping[str, Any]) -> str | None:
    """``Provenance/<id>``: where the Bundle PUTs its Provenance (a deterministic id)."""
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        if (entry.get("resource") or {}).get("resourceType") == "Provenance":
            url = str(request.get("url") or "")
            return url if request.get("method") == "PUT" and "/" in url else None
    return None


@dataclass(frozen=True)
class Conflict:
    """A resource holding one of our identifiers that is not our draft."""

    claim: Claim
    holder: str  # Type/id (or "N resources")
    why: str  # "for another subject", "which is not labelled AI-generated", …

    def __str__(self) -> str:
        held = f"already used by {self.holder} {self.why}"
        return f"identifier {self.claim.token} {held}; not written"


def claim_conflict(
    claim: Claim,
    matches: Sequence[Resource],
    *,
    provenance: Resource | None = None,
    author: str | None = None,
) -> Conflict | None:
    """Why the resources holding ``claim``'s identifier are not our draft; None when nothing
    holds it or what holds it is ours (a replay: the conditional create will find it).

    Ours means: the same subject and encounter, labelled AI-asserted, and either named as a
    target by ``provenance`` (our Provenance, read before writing) or authored by ``author``
    (our Device, once the transaction has resolved it). A conflict names resources by
    ``Type/id`` only, never a patient.
    """
    if not matches:
        return None
    if len(matches) > 1:
        keys = ", ".join(sorted(_key(m) for m in matches))
        return Conflict(claim, f"{len(matches)} resources ({keys})", "at once")
    (match,) = matches
    key = _key(match)
    if match.get("resourceType") != claim.resource_type:
        return Conflict(claim, key, f"where a {claim.resource_type} was expected")
    if reference_key(match.get("subject")) != claim.subject:
        return Conflict(claim, key, "for another subject")
    if _encounter_of(match) != claim.encounter:
        return Conflict(claim, key, "for another encounter")
    security = (match.get("meta") or {}).get("security") or []
    if not any(
        s.get("system") == AIAST["system"] and s.get("code") == AIAST["code"] for s in security
    ):
        return Conflict(claim, key, "which is not labelled AI-generated")
    targets = {reference_key(t) for t in (provenance or {}).get("target") or []}
    authors = {reference_key(a) for a in _authors(match)}
    if key in targets or (author is not None and author in authors):
        return None
    return Conflict(claim, key, "which no Provenance of fhirgen's names")


def _encounter_of(resource: Resource) -> str | None:
    """``Encounter/<id>`` of a DocumentReference (``context.encounter``) or a CarePlan."""
    if resource.get("resourceType") == "DocumentReference":
        encounters = (resource.get("context") or {}).get("encounter") or []
        keys = sorted({k for k in (reference_key(e) for e in encounters) if k})
        return keys[0] if len(keys) == 1 else None
    return reference_key(resource.get("encounter"))


def _authors(resource: Resource) -> list[Any]:
    author = resource.get("author")
    if isinstance(author, list):
        return author
    return [author] if author else []


def _key(resource: Resource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"
