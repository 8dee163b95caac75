"""The measures a physician objects to: body words, sentences said twice, raw codes and units
(``ARTEFACT_PATTERNS``), trend words the numbers contradict, and the patient text's reading
ease."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

from fhirgen.cli.evaluation.results import Artefact, Contradiction, Repeat
from fhirgen.clinical.facts import FactKind, FactSet
from fhirgen.clinical.readability import flesch_reading_ease
from fhirgen.drafting.documents.base import Draft
from fhirgen.drafting.verify import trend_contradictions_in

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
_CLAUSE = re.compile(r";|,(?!\d)")
_COMPARATOR = re.compile(r"^\s*(?:<=|>=|≤|≥|<|>|=)\s*")
_RESULT_KINDS = (FactKind.LAB, FactKind.VITAL)


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
