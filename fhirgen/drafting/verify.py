"""Grounding checks on every draft, whichever backend wrote it (the template included).

A sentence stays only if it
- cites at least one fact, and only facts that exist;
- states no number that is missing from the facts it cites (doses, values, dates, durations);
- names no medication, diagnosis, procedure, allergen or result of the stay without citing a
  fact that names it too (the record's own synonyms count: a coding's display and its text);
- names no drug or serious diagnosis from outside the chart (``fhirgen.drafting.vocabulary``)
  unless a cited fact names it; a drug must be named by a structured fact, never only by a
  note's text, so an instruction written in a note ("add warfarin") cannot become a medication;
- is at most ``MAX_SENTENCE_CHARS`` long, in a section of at most ``MAX_SECTION_SENTENCES``.

A sentence the draft already said is dropped. A section left without sentences, or missing,
falls back to its template text. The report
says what was dropped and why, per section.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from fhirgen.clinical.facts import Fact, FactKind, FactSet
from fhirgen.clinical.trends import contradiction
from fhirgen.drafting.documents.base import DocumentKind, Draft, Section, Sentence
from fhirgen.drafting.vocabulary import clinical_words, is_drug

MAX_SENTENCE_CHARS = 1200
MAX_SECTION_SENTENCES = 200
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)")
_MIN_NAME = 4  # shorter names ("BP", "INR") are too ambiguous to police by substring
_CLAUSE = re.compile(r";|,(?!\d)")  # clauses of a sentence; "1,000" is one number
_COMPARATOR = re.compile(r"^\s*(?:<=|>=|[<>≤≥~=])\s*")


@dataclass(frozen=True)
class Dropped:
    """A sentence the verifier removed."""

    section: str
    text: str
    reason: str


@dataclass(frozen=True)
class VerificationReport:
    """What verification changed in one draft."""

    kind: str
    dropped: tuple[Dropped, ...]
    fallbacks: tuple[str, ...]  # sections replaced by their template text

    @property
    def clean(self) -> bool:
        """True when the draft passed unchanged."""
        return not self.dropped and not self.fallbacks


def verify(draft: Draft, kind: DocumentKind, facts: FactSet) -> tuple[Draft, VerificationReport]:
    """The draft with unsupported sentences removed, and what was removed.

    A section left empty falls back to its template text. In a section told by topic (the
    hospital course, one paragraph per problem) a problem whose every sentence was dropped, or
    that the draft left out, gets its template paragraph, so no problem of the stay is lost.
    """
    dropped: list[Dropped] = []
    fallbacks: list[str] = []
    sections: list[Section] = []
    support = _Support(facts)
    said: set[str] = set()
    for spec in kind.sections:
        section = draft.section(spec.key)
        kept: list[Sentence] = []
        for sentence in section.sentences if section else ():
            reason = sentence_problem(sentence, facts, support)
            folded = " ".join(sentence.text.lower().split())
            if not reason and folded in said:
                reason = "says again what the draft already said"
            said.add(folded)
            if not reason and len(kept) >= MAX_SECTION_SENTENCES:
                reason = f"section longer than {MAX_SECTION_SENTENCES} sentences"
            if reason:
                dropped.append(Dropped(spec.key, sentence.text, reason))
            else:
                kept.append(sentence)
        if not kept:
            fallbacks.append(spec.key)
            sections.append(kind.template_section(spec.key, facts))
            continue
        if draft.backend != "template":  # the template tells every topic itself
            template = kind.template_section(spec.key, facts).sentences
            if any(s.topic for s in template):
                kept, filled = _fill_topics(kept, template)
                fallbacks.extend(f"{spec.key}: {topic}" for topic in filled)
        sections.append(Section(spec.key, spec.title, tuple(kept)))
    verified = Draft(
        draft.kind, draft.title, tuple(sections), draft.backend, draft.model, draft.usage
    )
    return verified, VerificationReport(draft.kind, tuple(dropped), tuple(fallbacks))


def _fill_topics(
    kept: list[Sentence], template: tuple[Sentence, ...]
) -> tuple[list[Sentence], list[str]]:
    """Kept sentences in the template's topic order, template paragraphs where none is kept."""
    by_topic: dict[str, list[Sentence]] = {}
    for sentence in kept:
        by_topic.setdefault(sentence.topic, []).append(sentence)
    result: list[Sentence] = list(by_topic.pop("", []))
    filled: list[str] = []
    for topic in dict.fromkeys(s.topic for s in template if s.topic):
        if topic in by_topic:
            result.extend(by_topic.pop(topic))
        else:
            result.extend(s for s in template if s.topic == topic)
            filled.append(topic)
    for rest in by_topic.values():  # topics the template does not know (kept as written)
        result.extend(rest)
    return result, filled


def sentence_problem(sentence: Sentence, facts: FactSet, support: _Support | None = None) -> str:
    """Why a sentence cannot go into the chart, or '' when it can."""
    support = support or _Support(facts)
    text = sentence.text.strip()
    if not text:
        return "empty sentence"
    if len(text) > MAX_SENTENCE_CHARS:
        return f"sentence longer than {MAX_SENTENCE_CHARS} characters"
    if not sentence.cites:
        return "cites no fact"
    unknown = [c for c in sentence.cites if facts.get(c) is None]
    if unknown:
        return f"cites unknown fact(s): {', '.join(unknown)}"
    missing = sorted(numbers_in(text) - support.numbers(sentence.cites))
    if missing:
        return f"states number(s) not in the cited facts: {', '.join(missing)}"
    lowered = " ".join(text.lower().split())
    cited_text = support.text(sentence.cites)
    for name, owner in support.names:
        if owner in sentence.cites or name not in lowered or name in cited_text:
            continue
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", lowered):
            return f"names {name!r} ({owner}) without citing it"
    structured = support.text(sentence.cites, structured=True)
    for word in sorted(clinical_words(lowered)):
        if is_drug(word):
            if word not in structured:
                return f"names the drug {word!r}, which no cited medication or result names"
        elif word not in cited_text:
            return f"names {word!r}, which the cited facts do not"
    cited = [f for f in (facts.get(c) for c in sentence.cites) if f is not None]
    return trend_contradiction(text, cited)


def trend_contradiction(text: str, cited: Sequence[Fact]) -> str:
    """Why a sentence's trend words contradict the result series it cites, or ''."""
    found = trend_contradictions_in(text, cited)
    if not found:
        return ""
    _, fact, reason = found[0]
    return f"trend words contradict {fact.name}: {reason}"


def trend_contradictions_in(text: str, cited: Sequence[Fact]) -> list[tuple[str, Fact, str]]:
    """(clause, result fact, reason) for each trend word a cited series' numbers contradict.

    A sentence citing one series is read whole; one citing several is read clause by clause
    (split at ';' and at ',' outside numbers), each clause against the series it names.
    """
    series = [f for f in cited if f.kind in (FactKind.LAB, FactKind.VITAL)]
    if len(series) == 1:
        pairs = [(text, series[0])]
    else:
        clauses = [c.strip() for c in _CLAUSE.split(text) if c.strip()]
        pairs = [(c, f) for c in clauses for f in series if _mentions(c, f)]
    found = []
    for clause, fact in pairs:
        values = result_series(fact)
        if len(values) < 2:
            continue
        reason = contradiction(
            clause,
            values,
            _number(fact.attr("threshold")),
            _number(fact.attr("low")),
            _number(fact.attr("high")),
        )
        if reason:
            found.append((clause, fact, reason))
    return found


def result_series(fact: Fact) -> tuple[float, ...]:
    """The numbers of a result fact's readings in time order (non-numeric readings skipped)."""
    numbers = (_number(v.value) for v in fact.values if v.label == "result")
    return tuple(n for n in numbers if n is not None)


def _mentions(clause: str, fact: Fact) -> bool:
    lowered = clause.lower()
    return any(n.lower() in lowered for n in (fact.name, *fact.names) if n)


def _number(text: str) -> float | None:
    """A number written as the facts write it ('<0.01', '1,200'), or None."""
    try:
        number = float(_COMPARATOR.sub("", text).replace(",", "")) if text else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def numbers_in(*texts: str) -> set[str]:
    """Numbers written in texts, normalised ('40.0' -> '40', '1,000' -> '1000')."""
    return {_normal_number(match) for text in texts for match in _NUMBER.findall(text)}


@lru_cache(maxsize=65536)
def _normal_number(match: str) -> str:
    if "," in match:
        # '1,000' groups thousands; '0,5' is a decimal comma.
        thousands = re.fullmatch(r"\d{1,3}(,\d{3})+", match)
        match = match.replace(",", "") if thousands else match.replace(",", ".")
    return format(Decimal(match).normalize(), "f")


class _Support:
    """What each fact of a stay supports, computed once per draft."""

    def __init__(self, facts: FactSet) -> None:
        self._facts = facts
        self._text: dict[tuple[str, bool], str] = {}
        self._numbers: dict[str, set[str]] = {}
        names: dict[str, str] = {}
        for fact in facts:
            if fact.kind in (FactKind.ABSENT, FactKind.STAY, FactKind.CARE_TEAM, FactKind.NOTE):
                continue  # their "names" are words any sentence may use
            for name in fact.names:
                key = " ".join(name.lower().split())
                if len(key) >= _MIN_NAME:
                    names.setdefault(key, fact.id)
        # Longest first: "acute kidney injury" is reported rather than "kidney".
        self.names = sorted(names.items(), key=lambda item: -len(item[0]))

    def text(self, fact_ids: tuple[str, ...], *, structured: bool = False) -> str:
        return " ".join(self._fact_text(f, structured) for f in fact_ids)

    def numbers(self, fact_ids: tuple[str, ...]) -> set[str]:
        found: set[str] = set()
        for fact_id in fact_ids:
            if fact_id not in self._numbers:
                self._numbers[fact_id] = numbers_in(self._fact_text(fact_id, False))
            found |= self._numbers[fact_id]
        return found

    def _fact_text(self, fact_id: str, structured: bool) -> str:
        key = (fact_id, structured)
        if key not in self._text:
            fact = self._facts.get(fact_id)
            self._text[key] = " ".join(_support(fact, structured).lower().split()) if fact else ""
        return self._text[key]


def _support(fact: Fact, structured: bool) -> str:
    """The words and numbers a fact stands behind; ``structured`` leaves out note text."""
    texts = [fact.text, *fact.names]
    texts.extend(f"{v.value} {v.unit} {v.when or ''}" for v in fact.values)
    texts.extend(value for name, value in fact.attrs if not (structured and name == "excerpt"))
    if fact.date:
        texts.append(fact.date)
    if structured and fact.kind is FactKind.NOTE:
        return fact.date or ""
    return " ".join(texts)
