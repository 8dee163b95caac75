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

``stay`` evaluates one stay, ``texts`` reads the documents back from the Bundle, ``measures``
holds the measures and ``results`` what is reported, per stay and over a run.
"""

from fhirgen.cli.evaluation.measures import (
    ARTEFACT_PATTERNS,
    artefacts,
    reading_ease,
    repeated_sentences,
    sentences_of,
    trend_contradictions,
    word_count,
)
from fhirgen.cli.evaluation.results import (
    MAX_MEDIAN_BODY_WORDS,
    MAX_P95_BODY_WORDS,
    MIN_READING_EASE,
    Artefact,
    Contradiction,
    Coverage,
    EvaluationTotals,
    Repeat,
    StayEvaluation,
)
from fhirgen.cli.evaluation.stay import evaluate_stay, expected_mentions
from fhirgen.cli.evaluation.texts import (
    HEADER_LINES,
    PATIENT_INSTRUCTIONS_LOINC,
    care_plan_text,
    document_body,
    document_text,
)

__all__ = [
    "ARTEFACT_PATTERNS",
    "HEADER_LINES",
    "MAX_MEDIAN_BODY_WORDS",
    "MAX_P95_BODY_WORDS",
    "MIN_READING_EASE",
    "PATIENT_INSTRUCTIONS_LOINC",
    "Artefact",
    "Contradiction",
    "Coverage",
    "EvaluationTotals",
    "Repeat",
    "StayEvaluation",
    "artefacts",
    "care_plan_text",
    "document_body",
    "document_text",
    "evaluate_stay",
    "expected_mentions",
    "reading_ease",
    "repeated_sentences",
    "sentences_of",
    "trend_contradictions",
    "word_count",
]
