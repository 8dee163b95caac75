"""Drafts as the FHIR resources the EHR receives: one ``transaction`` Bundle per stay.

The Bundle (``bundle``) holds the generating Device, the discharge-summary DocumentReference
(``document``: US Core clinical note, ``docStatus=preliminary``, plain text and HTML from
``narrative``), the CarePlan (``plan``: US Core, ``status=draft``), the patient-instructions
DocumentReference (LOINC 8653-8, same shape as the summary) and the Provenance that ties the three
to the model and to the chart resources they cite (``provenance``). Everything we generate is
labelled AI-asserted (``labels``: ``meta.security`` AIAST). Creates are conditional on a
deterministic identifier (``identifiers``), and the Provenance (R4 gives it no identifier) is PUT
to a deterministic id, so replaying the Bundle leaves exactly one of each.

A conditional create matches whatever carries the identifier, ours or not: ``claims`` names what
each create claims and ``claim_conflict`` says when a resource found under one of our identifiers
is not the draft we would have written (another patient's, another stay's, or not ours at all),
so the write step can refuse to write rather than tie our Provenance to it.
"""

from fhirgen.drafting.render.bundle import render_bundle
from fhirgen.drafting.render.claims import Claim, Conflict, claim_conflict, claims, provenance_key
from fhirgen.drafting.render.document import as_instant
from fhirgen.drafting.render.identifiers import DraftIds, draft_ids, stay_identifier
from fhirgen.drafting.render.labels import AIAST
from fhirgen.drafting.render.narrative import (
    SOURCE_TEXT_CHARS,
    document_html,
    document_text,
    source_line,
)
from fhirgen.drafting.render.provenance import Author

__all__ = [
    "AIAST",
    "SOURCE_TEXT_CHARS",
    "Author",
    "Claim",
    "Conflict",
    "DraftIds",
    "as_instant",
    "claim_conflict",
    "claims",
    "document_html",
    "document_text",
    "draft_ids",
    "provenance_key",
    "render_bundle",
    "source_line",
    "stay_identifier",
]
