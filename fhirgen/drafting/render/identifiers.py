"""Deterministic identifiers of a stay's drafts: ``<encounter>.v<version>[.r<k>].<kind>``, or
with the deployment's key a keyed hash in place of the stay part (``draft_ids``)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fhirgen.clinical.stay import StayContext, encounter_version
from fhirgen.drafting.documents import care_plan, discharge_summary, patient_instructions


@dataclass(frozen=True)
class DraftIds:
    """Deterministic identifiers of one stay's drafts."""

    document: str
    care_plan: str
    provenance_id: str
    instructions: str


def stay_identifier(
    system: str, encounter_id: str, version: str, regeneration: int = 0, key: bytes | None = None
) -> str:
    """The part of a stay's draft identifiers before ``.<kind>`` (see ``draft_ids``)."""
    if key is not None:
        stay = f"{system}|Encounter/{encounter_id}|{version}|{regeneration}"
        return hmac.new(key, stay.encode(), hashlib.sha256).hexdigest()[:32]
    base = f"{encounter_id}.v{version}"
    return f"{base}.r{regeneration}" if regeneration else base


def draft_ids(
    context: StayContext, system: str, regeneration: int = 0, key: bytes | None = None
) -> DraftIds:
    """Identifiers for a stay's drafts: encounter, its version, regeneration and document kind.

    Without ``key`` they read ``<encounter>.v<version>[.r<k>].<kind>``: anyone who can read the
    Encounter can predict them. With ``key`` (the deployment's, ``secrets.identifier_key``) the
    stay part is a keyed hash, ``<HMAC-SHA256(key, system|Encounter/id|version|regeneration),
    32 hex>.<kind>``: nobody without the key can write a resource under the identifier before
    we do. The kind stays a readable suffix (the three drafts of one version share the hash and
    are written in one transaction, so one seen gives away none still to be written). The
    Provenance id derives from the summary's identifier, so it is as unguessable.
    """
    version = encounter_version(context.encounter)
    base = stay_identifier(system, context.encounter_id, version, regeneration, key)
    document = f"{base}.{discharge_summary.KIND.key}"
    digest = hashlib.sha256(f"{system}|{document}".encode()).hexdigest()
    return DraftIds(
        document,
        f"{base}.{care_plan.KIND.key}",
        f"fhirgen-{digest[:40]}",
        f"{base}.{patient_instructions.KIND.key}",
    )
