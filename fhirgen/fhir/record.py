"""One patient's resources, with FHIR reference resolution.

A ``PatientRecord`` is what both the offline reader (files) and the live reader (the EHR's API)
hand to the pipeline, so the same record gives the same drafts on both paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any

_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

Resource = Mapping[str, Any]


def reference_key(reference: Any, aliases: Mapping[str, str] | None = None) -> str | None:
    """The ``Type/id`` a literal reference points at, or None.

    Accepts a Reference object or its ``reference`` string: relative (``Patient/1``), versioned
    (``Patient/1/_history/2``), absolute (``https://ehr/fhir/Patient/1``), or a Bundle fullUrl
    such as ``urn:uuid:…`` found in ``aliases``. Contained (``#x``), conditional
    (``Patient?identifier=…``) and logical references give None: there is nothing to resolve.
    """
    if isinstance(reference, Mapping):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference or reference.startswith("#"):
        return None
    if aliases and reference in aliases:
        return aliases[reference]
    return _literal_key(reference)


@lru_cache(maxsize=131072)
def _literal_key(reference: str) -> str | None:
    if reference.startswith("urn:") or "?" in reference:
        return None
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2:
        return None
    rtype, rid = parts[-2], parts[-1]
    if _TYPE.match(rtype) and _ID.match(rid):
        return f"{rtype}/{rid}"
    return None


def patient_of(resource: Resource, aliases: Mapping[str, str] | None = None) -> str | None:
    """The id of the patient a resource belongs to: the Patient itself, its ``subject``,
    ``patient`` or ``beneficiary``, or an Appointment's patient participant."""
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    for name in ("subject", "patient", "beneficiary"):
        key = reference_key(resource.get(name), aliases)
        if key and key.startswith("Patient/"):
            return key.removeprefix("Patient/")
    if resource.get("resourceType") == "Appointment":
        for participant in resource.get("participant") or []:
            actor = participant.get("actor") if isinstance(participant, Mapping) else None
            key = reference_key(actor, aliases)
            if key and key.startswith("Patient/"):
                return key.removeprefix("Patient/")
    return None


# Tags the stand-in for a referenced resource the record does not hold (see ``not_found``).
NOT_FOUND_TAG = {"system": "urn:fhirgen:reference", "code": "not-found"}
# Types served by a stand-in when missing: a Medication names the drug of an order, and an
# order whose drug is missing is still stated (and flagged), not dropped with the whole stay.
STAND_IN_TYPES = frozenset({"Medication"})


def not_found(key: str) -> dict[str, Any]:
    """A stand-in for ``Type/id`` that the record (or the EHR: 404) does not hold.

    It says so in its own words (``code.text``: "medication not found in the record
    (Medication/x)") and carries ``NOT_FOUND_TAG``, so drafts name the gap and flag it for
    the clinician instead of failing the stay. The live reader serves it for a reference the
    EHR answers 404; the offline reader does not (a file export missing a resource is an
    incomplete export: that stay fails with an error naming it, and the export can be fixed).
    """
    rtype, _, rid = key.partition("/")
    return {
        "resourceType": rtype,
        "id": rid,
        "meta": {"tag": [dict(NOT_FOUND_TAG)]},
        "code": {"text": f"{rtype.lower()} not found in the record ({key})"},
    }


def is_not_found(resource: Resource | None) -> bool:
    """True for a ``not_found`` stand-in."""
    if resource is None:
        return False
    tags = (resource.get("meta") or {}).get("tag") or []
    return any(
        isinstance(t, Mapping)
        and t.get("system") == NOT_FOUND_TAG["system"]
        and t.get("code") == NOT_FOUND_TAG["code"]
        for t in tags
    )


def standing_in(lookup: Callable[[str], Resource | None]) -> Callable[[str], Resource | None]:
    """``lookup``, answering a ``not_found`` stand-in for a missing resource of
    ``STAND_IN_TYPES``."""

    def find(key: str) -> Resource | None:
        found = lookup(key)
        if found is None and key.partition("/")[0] in STAND_IN_TYPES:
            return not_found(key)
        return found

    return find


def resource_key(resource: Resource) -> str:
    """``Type/id`` of a resource."""
    return f"{resource.get('resourceType')}/{resource.get('id')}"


class PatientRecord:
    """The resources of one patient, indexed by type and by ``Type/id``.

    ``lookup`` fetches resources outside the patient compartment (Medication, Practitioner,
    Organization…) on demand; ``aliases`` maps Bundle fullUrls (``urn:uuid:…``) to ``Type/id``.
    """

    def __init__(
        self,
        patient_id: str,
        resources: Iterable[Resource],
        *,
        aliases: Mapping[str, str] | None = None,
        lookup: Callable[[str], Resource | None] | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> None:
        self.patient_id = patient_id
        by_key: dict[str, Resource] = {}
        by_type: dict[str, list[Resource]] = {}
        for resource in resources:
            by_key[resource_key(resource)] = resource
            by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
        self._by_key = by_key
        self._by_type = {rtype: tuple(items) for rtype, items in by_type.items()}
        self._aliases: Mapping[str, str] = aliases if aliases is not None else {}
        self._lookup = lookup
        self._origins = MappingProxyType(dict(origins or {}))

    @property
    def patient(self) -> Resource | None:
        """The Patient resource, when the record has it."""
        return self._by_key.get(f"Patient/{self.patient_id}")

    def resources(self) -> tuple[Resource, ...]:
        """Every resource of the record, including those fetched through ``lookup`` so far."""
        return tuple(self._by_key.values())

    def of_type(self, resource_type: str) -> tuple[Resource, ...]:
        """All resources of one type, in input order."""
        return self._by_type.get(resource_type, ())

    def key(self, reference: Any) -> str | None:
        """``Type/id`` of a reference, resolving this record's fullUrl aliases."""
        return reference_key(reference, self._aliases)

    def get(self, key: str) -> Resource | None:
        """The resource with this ``Type/id``, from the record or from ``lookup``."""
        found = self._by_key.get(key)
        if found is None and self._lookup is not None:
            found = self._lookup(key)
            if found is not None:
                self._by_key[key] = found
        return found

    def resolve(self, reference: Any) -> Resource | None:
        """The resource a Reference points at, or None when it is not in the input."""
        key = self.key(reference)
        return self.get(key) if key else None

    def origin(self, key: str) -> str:
        """Where a resource was read from (``file:line``), for messages; empty if unknown."""
        return self._origins.get(key, "")

    def __len__(self) -> int:
        return sum(len(items) for items in self._by_type.values())


@dataclass(frozen=True)
class StayScope:
    """What one stay takes from a patient's record, as the layer that builds stays defines it.

    ``build`` is run once on what was read, with a lookup that notes every reference it asks
    for, to learn which references to prefetch; the search's follow-up window is the stay's
    own, so it can never cut off what the stay includes."""

    resource_types: frozenset[str]
    follow_up_window: timedelta
    build: Callable[[PatientRecord, Resource], object]
