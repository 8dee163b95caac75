"""``fhirgen eval``: our own quality gauge, measured on what the EHR would receive.

For each stay it checks the written Bundle (FHIR validity with the R4B models), the sections of
the discharge summary as text, every sentence's citations, and whether each encounter diagnosis,
discharge medication, procedure and allergy of the stay is named in the summary's text (not in
its source list). The expected items come from the chart (the stay's context), not from the
facts the drafts were written from, so a backend that leaves something out is caught.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fhirgen.context import StayContext
from fhirgen.documents import DOCUMENT_KINDS, discharge_summary
from fhirgen.facts import NO_KNOWN_ALLERGY_CODES
from fhirgen.fhir.validation import validation_errors
from fhirgen.fhir.values import clean_name, concept_names, has_code
from fhirgen.medications import medication_concept, reconcile
from fhirgen.pipeline import StayDraft


@dataclass(frozen=True)
class Coverage:
    """How many items of one family the text names, and which it misses."""

    expected: int
    missing: tuple[str, ...]

    @property
    def mentioned(self) -> int:
        return self.expected - len(self.missing)


@dataclass(frozen=True)
class StayEvaluation:
    """The checks of one stay."""

    encounter_id: str
    valid: bool
    validation_errors: tuple[str, ...]
    sections_expected: int
    sections_missing: tuple[str, ...]
    sentences: int
    uncited_sentences: int
    unknown_citations: int
    coverage: Mapping[str, Coverage]
    dropped_by_verifier: int
    milliseconds: float

    @property
    def passed(self) -> bool:
        return (
            self.valid
            and not self.sections_missing
            and not self.uncited_sentences
            and not self.unknown_citations
            and all(not c.missing for c in self.coverage.values())
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["coverage"] = {
            k: {"expected": c.expected, "mentioned": c.mentioned, "missing": list(c.missing)}
            for k, c in self.coverage.items()
        }
        return data


@dataclass
class EvaluationTotals:
    """Totals over a run."""

    stays: int = 0
    passed: int = 0
    valid: int = 0
    sentences: int = 0
    uncited_sentences: int = 0
    unknown_citations: int = 0
    sections_missing: int = 0
    failed_stays: int = 0
    expected: dict[str, int] = field(default_factory=dict)
    mentioned: dict[str, int] = field(default_factory=dict)
    milliseconds: list[float] = field(default_factory=list)

    def add(self, result: StayEvaluation) -> None:
        self.stays += 1
        self.passed += result.passed
        self.valid += result.valid
        self.sentences += result.sentences
        self.uncited_sentences += result.uncited_sentences
        self.unknown_citations += result.unknown_citations
        self.sections_missing += len(result.sections_missing)
        self.milliseconds.append(result.milliseconds)
        for family, coverage in result.coverage.items():
            self.expected[family] = self.expected.get(family, 0) + coverage.expected
            self.mentioned[family] = self.mentioned.get(family, 0) + coverage.mentioned

    @property
    def ok(self) -> bool:
        return self.stays > 0 and self.passed == self.stays and not self.failed_stays

    def as_dict(self) -> dict[str, Any]:
        ms = sorted(self.milliseconds)
        return {
            "stays": self.stays,
            "stays_failed_to_draft": self.failed_stays,
            "passed": self.passed,
            "valid_fhir_percent": _percent(self.valid, self.stays),
            "sentences": self.sentences,
            "uncited_sentences": self.uncited_sentences,
            "unknown_citations": self.unknown_citations,
            "sections_missing": self.sections_missing,
            "mentioned_percent": {
                family: _percent(self.mentioned.get(family, 0), expected)
                for family, expected in sorted(self.expected.items())
            },
            "mentioned": {
                k: [self.mentioned.get(k, 0), v] for k, v in sorted(self.expected.items())
            },
            "ms_per_stay_mean": round(sum(ms) / len(ms), 2) if ms else None,
            "ms_per_stay_p95": round(ms[int(0.95 * (len(ms) - 1))], 2) if ms else None,
        }


def evaluate_stay(result: StayDraft) -> StayEvaluation:
    """Check one stay's drafts and Bundle."""
    errors = tuple(validation_errors(result.bundle))
    text = _summary_text(result.bundle)
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


def _distinct(groups: Iterable[Sequence[str]]) -> list[tuple[str, tuple[str, ...]]]:
    seen: dict[str, tuple[str, ...]] = {}
    for names in groups:
        cleaned = tuple(clean_name(n) for n in names if n)
        if cleaned and cleaned[0].lower() not in seen:
            seen[cleaned[0].lower()] = cleaned
    return [(names[0], names) for names in seen.values()]


def _named(names: Sequence[str], body: str) -> bool:
    return any(name.lower() in body for name in names)


def _summary_text(bundle: Mapping[str, Any]) -> str:
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "DocumentReference":
            continue
        for content in resource.get("content") or []:
            attachment = content.get("attachment") or {}
            if str(attachment.get("contentType", "")).startswith("text/plain"):
                return base64.b64decode(attachment.get("data", "")).decode("utf-8")
    return ""


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None
