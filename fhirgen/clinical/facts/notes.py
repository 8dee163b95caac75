"""Facts of what the record says in prose: report conclusions and clinical notes."""

from __future__ import annotations

from fhirgen.clinical.facts.builder import FactBuilder
from fhirgen.clinical.facts.model import FactKind
from fhirgen.clinical.facts.phrasing import one_line
from fhirgen.fhir.record import resource_key
from fhirgen.fhir.values import concept_name, concept_names, format_date, period_bounds


def reports(builder: FactBuilder) -> None:
    for report in builder.ctx.reports:
        if report.get("status") in {"registered", "partial", "preliminary"}:
            continue  # reported as pending
        conclusion = str(report.get("conclusion") or "").strip()
        coded = "; ".join(concept_name(c) for c in report.get("conclusionCode") or [])
        finding = conclusion or coded
        if not finding:
            continue  # a lab panel: its results are facts of their own
        name = concept_name(report.get("code"), "Report")
        when, _ = period_bounds(report, "effectiveDateTime", "effectivePeriod")
        when = when or report.get("issued")
        builder.add(
            FactKind.REPORT,
            f"{name} on {format_date(when)}: {one_line(finding)}",
            [resource_key(report)],
            names=concept_names(report.get("code")),
            date=when,
        )


def notes(builder: FactBuilder) -> None:
    for note in builder.ctx.notes:
        builder.add(
            FactKind.NOTE,
            f"{note.title} written on {format_date(note.date)}",
            [note.source],
            names=[note.title],
            date=note.date,
            excerpt=note.text[:4000],
        )
