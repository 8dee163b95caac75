"""One stay's evaluation (``evaluate_stay``), and the items of the chart its summary must name
(``expected_mentions``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fhirgen.cli.evaluation.measures import (
    artefacts,
    reading_ease,
    repeated_sentences,
    trend_contradictions,
    word_count,
)
from fhirgen.cli.evaluation.results import Coverage, StayEvaluation
from fhirgen.cli.evaluation.texts import (
    PATIENT_INSTRUCTIONS_LOINC,
    care_plan_text,
    document_body,
    document_text,
)
from fhirgen.clinical.facts import NO_KNOWN_ALLERGY_CODES
from fhirgen.clinical.medications import medication_concept, reconcile
from fhirgen.clinical.stay import StayContext
from fhirgen.drafting.documents import DOCUMENT_KINDS, discharge_summary
from fhirgen.drafting.pipeline import StayDraft
from fhirgen.fhir.validation import validation_errors
from fhirgen.fhir.values import clean_name, concept_names, has_code


def evaluate_stay(result: StayDraft) -> StayEvaluation:
    """Check one stay's drafts and Bundle."""
    errors = tuple(validation_errors(result.bundle))
    text = document_text(result.bundle, discharge_summary.LOINC_CODE)
    body = text.split("\nSOURCES\n", 1)[0].lower()
    kind = DOCUMENT_KINDS[discharge_summary.KIND.key]
    missing_sections = tuple(
        spec.title for spec in kind.sections if f"\n{spec.title.upper()}\n" not in f"\n{text}"
    )
    known = result.facts.ids
    sentences = [s for draft in result.drafts.values() for _, s in draft.sentences()]
    coverage = {
        family: Coverage(
            len(items), tuple(name for name, names in items if not _named(names, body))
        )
        for family, items in expected_mentions(result.context).items()
    }
    instructions = document_text(result.bundle, PATIENT_INSTRUCTIONS_LOINC)
    bodies = {
        "discharge summary": document_body(text),
        "patient instructions": document_body(instructions),
        "care plan": document_body(care_plan_text(result.bundle)),
    }
    return StayEvaluation(
        encounter_id=result.context.encounter_id,
        valid=not errors,
        validation_errors=errors,
        sections_expected=len(kind.sections),
        sections_missing=missing_sections,
        sentences=len(sentences),
        uncited_sentences=sum(1 for s in sentences if not s.cites),
        unknown_citations=sum(1 for s in sentences for c in s.cites if c not in known),
        coverage=coverage,
        dropped_by_verifier=sum(len(r.dropped) for r in result.reports.values()),
        milliseconds=round(sum(result.timings.values()), 3),
        body_words=word_count(bodies["discharge summary"]),
        repeated_sentences=repeated_sentences("discharge summary", bodies["discharge summary"])
        + repeated_sentences("patient instructions", bodies["patient instructions"]),
        artefacts=tuple(a for name, b in bodies.items() for a in artefacts(name, b)),
        trend_contradictions=trend_contradictions(result.drafts, result.facts),
        has_patient_instructions=bool(instructions),
        reading_ease=reading_ease(bodies["patient instructions"], result.facts)
        if instructions
        else None,
    )


def expected_mentions(context: StayContext) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Per family, each item the summary must name: (its main name, every name it goes by)."""
    diagnoses = _distinct(concept_names(c.get("code")) for c in context.diagnoses)
    procedures = _distinct(concept_names(p.get("code")) for p in context.procedures)
    allergies = _distinct(
        concept_names(a.get("code"))
        for a in context.allergies
        if not has_code(a.get("code"), None, *NO_KNOWN_ALLERGY_CODES)
    )
    medications = _distinct(
        tuple(
            n
            for r in change.after or change.before
            for n in concept_names(medication_concept(r, context.referenced))
        )
        for change in reconcile(context)
        if change.change != "stopped"
    )
    return {
        "diagnoses": diagnoses,
        "discharge_medications": medications,
        "procedures": procedures,
        "allergies": allergies,
    }


# --- Recall helpers --------------------------------------------------------------------------


def _distinct(groups: Iterable[Sequence[str]]) -> list[tuple[str, tuple[str, ...]]]:
    seen: dict[str, tuple[str, ...]] = {}
    for names in groups:
        cleaned = tuple(clean_name(n) for n in names if n)
        if cleaned and cleaned[0].lower() not in seen:
            seen[cleaned[0].lower()] = cleaned
    return [(names[0], names) for names in seen.values()]


def _named(names: Sequence[str], body: str) -> bool:
    return any(name.lower() in body for name in names)
