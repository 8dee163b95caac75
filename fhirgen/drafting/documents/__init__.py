"""Document kinds fhirgen drafts; adding a kind is adding one module and one line here."""

from __future__ import annotations

from fhirgen.drafting.documents import care_plan, discharge_summary, patient_instructions
from fhirgen.drafting.documents.base import DocumentKind, Draft, Section, SectionSpec, Sentence

DOCUMENT_KINDS: dict[str, DocumentKind] = {
    discharge_summary.KIND.key: discharge_summary.KIND,
    care_plan.KIND.key: care_plan.KIND,
    patient_instructions.KIND.key: patient_instructions.KIND,
}

__all__ = ["DOCUMENT_KINDS", "DocumentKind", "Draft", "Section", "SectionSpec", "Sentence"]
