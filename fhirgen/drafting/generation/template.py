"""The template backend: deterministic text written straight from the facts."""

from __future__ import annotations

from collections.abc import Sequence

from fhirgen.clinical.facts import FactSet
from fhirgen.drafting.documents.base import DocumentKind, Draft


class TemplateGenerator:
    """Writes every section from its template; no model, same input gives the same text."""

    name = "template"
    model = "fhirgen-template"
    version = "1"

    def draft(self, kind: DocumentKind, facts: FactSet) -> Draft:
        """All sections of ``kind`` written from their templates."""
        sections = tuple(kind.template_section(spec.key, facts) for spec in kind.sections)
        return Draft(kind.key, kind.title, sections, self.name, self.model)

    def draft_many(self, requests: Sequence[tuple[DocumentKind, FactSet]]) -> list[Draft]:
        return [self.draft(kind, facts) for kind, facts in requests]
