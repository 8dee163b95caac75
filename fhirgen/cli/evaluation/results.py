"""What ``fhirgen eval`` reports: one stay's checks (``StayEvaluation`` and the findings it
holds), the totals over a run (``EvaluationTotals``, with the run-wide rules) and the limits they
are held to."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The discharge summary's body (header and source list left out) may run to this many words at
# the median stay of a run, and to this many at its 95th percentile: a physician reads it.
MAX_MEDIAN_BODY_WORDS = 700
MAX_P95_BODY_WORDS = 1000
# The patient instructions must score at least this Flesch reading ease ("plain English").
MIN_READING_EASE = 60.0


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


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _p95(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))] if ordered else None


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None
