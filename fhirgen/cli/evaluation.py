"""``fhirgen eval``: our own quality gauge, measured on what the EHR would receive.

For each stay it checks the written Bundle (FHIR validity with the R4B models), the sections of
the discharge summary as text, every sentence's citations, and whether each encounter diagnosis,
discharge medication, procedure and allergy of the stay is named in the summary's text (not in
its source list). The expected items come from the chart (the stay's context), not from the
facts the drafts were written from, so a backend that leaves something out is caught.

It also measures what a physician objects to in a draft, and fails on it:

- the length of the discharge summary's body (median and p95 words over the stays of a run,
  limits ``MAX_MEDIAN_BODY_WORDS`` and ``MAX_P95_BODY_WORDS``);
- sentences said twice within the discharge summary, or within the patient instructions;
- raw codes and units left in the text of any document (``ARTEFACT_PATTERNS``);
- trend words ("rising", "improved"…) that the cited results' numbers contradict
  (``fhirgen.clinical.trends.contradiction``);
- the Flesch reading ease of the patient instructions (at least ``MIN_READING_EASE``).
"""

from __future__ import annotations

import base64
import html
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fhirgen.clinical.facts import NO_KNOWN_ALLERGY_CODES, FactKind, FactSet
from fhirgen.clinical.medications import medication_concept, reconcile
from fhirgen.clinical.readability import flesch_reading_ease
from fhirgen.clinical.stay import StayContext
from fhirgen.drafting.documents import DOCUMENT_KINDS, discharge_summary
from fhirgen.drafting.documents.base import Draft
from fhirgen.drafting.pipeline import StayDraft
from fhirgen.drafting.verify import trend_contradictions_in
from fhirgen.fhir.validation import validation_errors
from fhirgen.fhir.values import LOINC, clean_name, concept_names, has_code

# The discharge summary's body (header and source list left out) may run to this many words at
# the median stay of a run, and to this many at its 95th percentile: a physician reads it.
MAX_MEDIAN_BODY_WORDS = 700
MAX_P95_BODY_WORDS = 1000
# The patient instructions must score at least this Flesch reading ease ("plain English").
MIN_READING_EASE = 60.0
# The patient-instructions DocumentReference's type (LOINC "Discharge instructions").
PATIENT_INSTRUCTIONS_LOINC = "8653-8"
# Lines of the plain-text header every document starts with (title, "Preliminary…", "Stay…").
HEADER_LINES = 3

# Raw codes and units a physician should never read: (what it is, pattern). Every match in the
# body of a generated document is reported, by its token. Citation marks ("[12]") never match:
# the bracket patterns need a letter, "#" or "/" inside. Extend here.
ARTEFACT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("UCUM power of ten", re.compile(r"\b10\*[-+]?\d+(?:/[A-Za-z]+)?")),  # 10*3/uL, 10*9/L
    ("UCUM microlitre", re.compile(r"(?<![A-Za-z])uL\b")),  # /uL, 250 uL
    ("UCUM Celsius", re.compile(r"\bCel\b")),
    ("UCUM bracketed unit", re.compile(r"[A-Za-z]*\[(?:[a-z][\w.]*|IU|Hg|H2O)\]")),  # mm[Hg]
    ("UCUM annotation", re.compile(r"\{[^{}\n]*\}")),  # {cells}, {score}
    ("UCUM per square metre", re.compile(r"\w*_m2\b")),
    ("LOINC property", re.compile(r"\[[^\]\n]*/[^\]\n]*\]")),  # [Moles/volume], [#/volume]
    (
        "LOINC marker",
        re.compile(
            r"\[(?:Score|Presence|Interpretation|Identifier|Type|Percentile|Ratio|Titer"
            r"|Susceptibility)\]"
        ),
    ),
    (
        "LOINC system",
        re.compile(
            r"\bin (?:Serum or Plasma|Serum|Plasma|Blood|Urine|Arterial blood|Venous blood"
            r"|Capillary blood)\b"
        ),
    ),
    ("LOINC method", re.compile(r"\bby (?:Automated count|Manual count|Test strip)\b")),
    ("snake_case token", re.compile(r"\b[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+\b")),
    (
        "SNOMED semantic tag",
        re.compile(
            r"\((?:disorder|finding|procedure|situation|morphologic abnormality"
            r"|observable entity|regime/therapy|qualifier value|body structure|substance"
            r"|record artifact|assessment scale|specimen|physical object|clinical drug"
            r"|medicinal product)\)",
            re.IGNORECASE,
        ),
    ),
    (
        "code system and code",
        re.compile(
            r"\b(?:SNOMED(?:[ -]?CT)?|LOINC|RxNorm|ICD-?10(?:-CM|-PCS)?|ICD-?9(?:-CM)?|CPT"
            r"|HCPCS|CVX|NDC)(?:\s+code)?:?\s+#?[A-Z]?\d[\w-]*(?:\.[\w-]+)*",
            re.IGNORECASE,
        ),
    ),
)

_MARKS = re.compile(r"\[\d+\]")
_WORD = re.compile(r"\S*[A-Za-z0-9]\S*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_ABBREVIATION = re.compile(r"(?:^|\s)(?:Dr|Mr|Mrs|Ms|St|vs|e\.g|i\.e)\.$", re.IGNORECASE)
_SOURCES = re.compile(r"^sources$", re.IGNORECASE | re.MULTILINE)
_CLAUSE = re.compile(r";|,(?!\d)")
_COMPARATOR = re.compile(r"^\s*(?:<=|>=|≤|≥|<|>|=)\s*")
_RESULT_KINDS = (FactKind.LAB, FactKind.VITAL)


@dataclass(frozen=True)
class Coverage:
    """How many items of one family the text names, and which it misses."""

    expected: int
    missing: tuple[str, ...]

    @property
    def mentioned(self) -> int:
        return self.expected - len(self.missing)


@dataclass(frozen=True)
class Repeat:
    """A sentence said more than once in one document (marks stripped, case folded)."""

    document: str
    sentence: str
    times: int


@dataclass(frozen=True)
class Artefact:
    """A raw code or unit token found in a document's body."""

    document: str
    token: str
    kind: str  # the ARTEFACT_PATTERNS entry that found it
    times: int


@dataclass(frozen=True)
class Contradiction:
    """A trend word in a sentence (or clause) that the cited result's numbers contradict."""

    document: str
    text: str
    fact: str
    reason: str


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
    body_words: int = 0
    repeated_sentences: tuple[Repeat, ...] = ()
    artefacts: tuple[Artefact, ...] = ()
    trend_contradictions: tuple[Contradiction, ...] = ()
    has_patient_instructions: bool = False
    reading_ease: float | None = None

    @property
    def raw_codes(self) -> int:
        """Raw code and unit tokens in the text, every occurrence counted."""
        return sum(a.times for a in self.artefacts)

    @property
    def readable(self) -> bool:
        """The patient instructions, where present, score at least MIN_READING_EASE."""
        if not self.has_patient_instructions:
            return True
        return self.reading_ease is not None and self.reading_ease >= MIN_READING_EASE

    @property
    def passed(self) -> bool:
        """Every per-stay check passes (the run-wide ones are EvaluationTotals.run_failures)."""
        return (
            self.valid
            and not self.sections_missing
            and not self.uncited_sentences
            and not self.unknown_citations
            and all(not c.missing for c in self.coverage.values())
            and not self.repeated_sentences
            and not self.artefacts
            and not self.trend_contradictions
            and self.readable
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["raw_codes"] = self.raw_codes
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
    body_words: list[int] = field(default_factory=list)
    repeated_sentences: int = 0
    raw_codes: int = 0
    trend_contradictions: int = 0
    reading_ease: list[float] = field(default_factory=list)
    patient_instructions: int = 0
    unreadable: int = 0

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
        self.body_words.append(result.body_words)
        self.repeated_sentences += len(result.repeated_sentences)
        self.raw_codes += result.raw_codes
        self.trend_contradictions += len(result.trend_contradictions)
        self.patient_instructions += result.has_patient_instructions
        self.unreadable += not result.readable
        if result.reading_ease is not None:
            self.reading_ease.append(result.reading_ease)

    def run_failures(self) -> list[str]:
        """The run-wide rules broken: body length over the stays, patient instructions missing."""
        failures = []
        median, p95 = _median(self.body_words), _p95(self.body_words)
        if median is not None and median > MAX_MEDIAN_BODY_WORDS:
            failures.append(f"median body words {median} > {MAX_MEDIAN_BODY_WORDS}")
        if p95 is not None and p95 > MAX_P95_BODY_WORDS:
            failures.append(f"p95 body words {p95} > {MAX_P95_BODY_WORDS}")
        if 0 < self.patient_instructions < self.stays:
            missing = self.stays - self.patient_instructions
            failures.append(f"{missing} stays have no patient instructions")
        return failures

    @property
    def ok(self) -> bool:
        return (
            self.stays > 0
            and self.passed == self.stays
            and not self.failed_stays
            and not self.run_failures()
        )

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
            "body_words_median": _median(self.body_words),
            "body_words_p95": _p95(self.body_words),
            "repeated_sentences": self.repeated_sentences,
            "raw_codes": self.raw_codes,
            "trend_contradictions": self.trend_contradictions,
            "patient_instructions": self.patient_instructions,
            "reading_ease_min": min(self.reading_ease) if self.reading_ease else None,
            "reading_ease_median": _median(self.reading_ease),
            "reading_ease_below_minimum": self.unreadable,
            "run_failures": self.run_failures(),
            "ms_per_stay_mean": round(sum(ms) / len(ms), 2) if ms else None,
            "ms_per_stay_p95": round(ms[int(0.95 * (len(ms) - 1))], 2) if ms else None,
        }


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


# --- The texts -------------------------------------------------------------------------------


def document_text(bundle: Mapping[str, Any], loinc: str) -> str:
    """The plain text of the Bundle's DocumentReference of this LOINC type ('' if none)."""
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "DocumentReference":
            continue
        if not has_code(resource.get("type"), LOINC, loinc):
            continue
        for content in resource.get("content") or []:
            attachment = content.get("attachment") or {}
            if str(attachment.get("contentType", "")).startswith("text/plain"):
                return base64.b64decode(attachment.get("data", "")).decode("utf-8")
    return ""


def care_plan_text(bundle: Mapping[str, Any]) -> str:
    """The CarePlan's narrative as plain text, one line per heading or paragraph ('' if none)."""
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "CarePlan":
            div = str((resource.get("text") or {}).get("div", ""))
            lines = re.sub(r"<[^>]+>", "", re.sub(r"</(?:p|h\d|li|div)>", "\n", div))
            return html.unescape(lines)
    return ""


def document_body(text: str) -> str:
    """A document's text without its header lines and its source list."""
    head = _SOURCES.split(text, maxsplit=1)[0]
    return "\n".join(head.split("\n")[HEADER_LINES:]).strip("\n")


# --- The measures ----------------------------------------------------------------------------


def word_count(body: str) -> int:
    """Words in ``body`` (headings included, citation marks not)."""
    return len(_WORD.findall(_MARKS.sub(" ", body)))


def sentences_of(body: str) -> list[str]:
    """The sentences of a body: one or more per line, citation marks stripped, headings skipped.

    A line breaks after ".", "!" or "?" followed by a capital, a digit or a quote, except after
    a title such as "Dr.". An all-capitals line without a full stop is a heading.
    """
    found: list[str] = []
    for line in body.split("\n"):
        line = " ".join(_MARKS.sub("", line).split())
        if not line or (line.upper() == line and line[-1] not in ".!?"):
            continue
        pending = ""
        for part in _SENTENCE_BREAK.split(line):
            pending = f"{pending} {part}".strip()
            if not _ABBREVIATION.search(pending):
                found.append(pending)
                pending = ""
        if pending:
            found.append(pending)
    return found


def repeated_sentences(document: str, body: str) -> tuple[Repeat, ...]:
    """Each sentence of ``body`` said twice or more (case and whitespace folded)."""
    counts = Counter(" ".join(s.lower().split()) for s in sentences_of(body))
    return tuple(Repeat(document, s, n) for s, n in counts.items() if n > 1)


def artefacts(document: str, body: str) -> tuple[Artefact, ...]:
    """The raw code and unit tokens in ``body`` (ARTEFACT_PATTERNS; overlaps count once)."""
    matches = sorted(
        (m.start(), -len(m.group()), kind, m.group())
        for kind, pattern in ARTEFACT_PATTERNS
        for m in pattern.finditer(body)
    )  # by position, the longest first where two start together
    counts: Counter[tuple[str, str]] = Counter()
    end = 0
    for start, negative_length, kind, token in matches:
        if start >= end and token:
            counts[(token, kind)] += 1
            end = start - negative_length
    return tuple(Artefact(document, token, kind, n) for (token, kind), n in counts.items())


def trend_contradictions(drafts: Mapping[str, Draft], facts: FactSet) -> tuple[Contradiction, ...]:
    """Trend words in the drafts' sentences that the cited lab and vital results contradict
    (the verifier's own check, ``verify.trend_contradictions_in``, counted over every draft)."""
    found = []
    for document, draft in drafts.items():
        for _, sentence in draft.sentences():
            cited = [f for f in (facts.get(c) for c in dict.fromkeys(sentence.cites)) if f]
            for text, fact, reason in trend_contradictions_in(sentence.text, cited):
                found.append(Contradiction(document, text, fact.name, reason))
    return tuple(found)


def reading_ease(body: str, facts: FactSet) -> float | None:
    """The Flesch reading ease of a patient text; medicine and test names count as plain words."""
    names = [n for f in facts.of_kind(FactKind.MEDICATION) for n in f.names]
    names += [n for f in facts.of_kind(FactKind.LAB, FactKind.PENDING) for n in f.names]
    return flesch_reading_ease(_MARKS.sub("", body), names)


def _number(text: str) -> float | None:
    try:
        number = float(_COMPARATOR.sub("", text).replace(",", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _p95(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))] if ordered else None


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


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None
