"""Grounding checks on every draft, whichever backend wrote it.

A sentence stays only if it cites at least one fact, cites only facts that exist, and every
number it states appears in the facts it cites. A section left without sentences, or missing,
falls back to its template text. The report says what was dropped and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from fhirgen.documents.base import DocumentKind, Draft, Section, Sentence
from fhirgen.facts import Fact, FactSet

MAX_SENTENCE_CHARS = 1200
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)")


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
    """The draft with unsupported sentences removed, and what was removed."""
    dropped: list[Dropped] = []
    fallbacks: list[str] = []
    sections: list[Section] = []
    support: dict[str, set[str]] = {}
    for spec in kind.sections:
        section = draft.section(spec.key)
        kept: list[Sentence] = []
        for sentence in section.sentences if section else ():
            reason = sentence_problem(sentence, facts, support)
            if reason:
                dropped.append(Dropped(spec.key, sentence.text, reason))
            else:
                kept.append(sentence)
        if not kept:
            fallbacks.append(spec.key)
            sections.append(kind.template_section(spec.key, facts))
        else:
            sections.append(Section(spec.key, spec.title, tuple(kept)))
    verified = Draft(draft.kind, draft.title, tuple(sections), draft.backend, draft.model)
    return verified, VerificationReport(draft.kind, tuple(dropped), tuple(fallbacks))


def sentence_problem(
    sentence: Sentence, facts: FactSet, support: dict[str, set[str]] | None = None
) -> str:
    """Why a sentence cannot go into the chart, or '' when it can.

    ``support`` caches each fact's numbers across the sentences of one draft.
    """
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
    support = {} if support is None else support
    allowed: set[str] = set()
    for fact_id in sentence.cites:
        if fact_id not in support:
            support[fact_id] = numbers_in(*_support(facts.get(fact_id)))
        allowed |= support[fact_id]
    missing = sorted(numbers_in(text) - allowed)
    if missing:
        return f"states number(s) not in the cited facts: {', '.join(missing)}"
    return ""


def numbers_in(*texts: str) -> set[str]:
    """Numbers written in texts, normalised ('40.0' -> '40', '1,000' -> '1000')."""
    return {_normal_number(match) for text in texts for match in _NUMBER.findall(text)}


@lru_cache(maxsize=65536)
def _normal_number(match: str) -> str:
    if "," in match:
        # '1,000' groups thousands; '0,5' is a decimal comma.
        match = (
            match.replace(",", "")
            if re.fullmatch(r"\d{1,3}(,\d{3})+", match)
            else match.replace(",", ".")
        )
    return format(Decimal(match).normalize(), "f")


def _support(fact: Fact | None) -> list[str]:
    texts: list[str] = []
    if fact is not None:
        texts.append(fact.text)
        texts.extend(fact.names)
        texts.extend(f"{v.value} {v.unit} {v.when or ''}" for v in fact.values)
        texts.extend(value for _, value in fact.attrs)
        if fact.date:
            texts.append(fact.date)
    return texts
