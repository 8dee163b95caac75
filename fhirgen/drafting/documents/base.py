"""What a draft is made of, and how a document kind is described.

A ``Draft`` is sections of sentences; each sentence carries the ids of the facts it states.
A ``DocumentKind`` lists its sections, and for each one the deterministic template text (used by
the template backend, and as the fallback when a model's section fails verification).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhirgen.clinical.facts import Fact, FactSet


@dataclass(frozen=True)
class Sentence:
    """One statement and the facts it rests on.

    ``topic`` groups sentences into paragraphs within a section: the hospital course has one
    paragraph per problem, headed by the problem's name. Topics come from our own code (the
    stay's problems), never from a model's text.
    """

    text: str
    cites: tuple[str, ...]
    topic: str = ""


@dataclass(frozen=True)
class Section:
    """A titled part of a document."""

    key: str
    title: str
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True)
class Draft:
    """A document written by a backend: sections in the kind's order."""

    kind: str
    title: str
    sections: tuple[Section, ...]
    backend: str
    model: str
    # What writing it cost (model backends): tokens, milliseconds, batch size, parse problems.
    usage: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def section(self, key: str) -> Section | None:
        """The section with this key, if present."""
        return next((s for s in self.sections if s.key == key), None)

    def sentences(self) -> Iterable[tuple[Section, Sentence]]:
        """Every sentence with its section, in reading order."""
        for section in self.sections:
            for sentence in section.sentences:
                yield section, sentence

    def cited(self) -> tuple[str, ...]:
        """Fact ids cited anywhere in the draft, in first-cited order."""
        return tuple(dict.fromkeys(c for _, s in self.sentences() for c in s.cites))


Template = Callable[[FactSet], tuple[Sentence, ...]]


@dataclass(frozen=True)
class SectionSpec:
    """One section of a document kind."""

    key: str
    title: str
    template: Template
    guidance: str  # what the section should say, for model backends' prompts
    required: bool = True


@dataclass(frozen=True)
class DocumentKind:
    """A kind of document fhirgen drafts (one module per kind under
    ``fhirgen.drafting.documents``)."""

    key: str
    title: str
    sections: tuple[SectionSpec, ...]

    def template_section(self, key: str, facts: FactSet) -> Section:
        """The deterministic template text of one section."""
        spec = next(s for s in self.sections if s.key == key)
        return Section(spec.key, spec.title, spec.template(facts))


def say(text: str, facts: Sequence[Fact], topic: str = "") -> Sentence:
    """A sentence citing ``facts``; ends with a full stop."""
    text = text.strip()
    if text and text[-1] not in ".!?":
        text += "."
    cites = tuple(dict.fromkeys(f.id for f in facts))
    return Sentence(text[:1].upper() + text[1:], cites, topic)


def paragraphs(sentences: Sequence[Sentence]) -> list[tuple[str, list[Sentence]]]:
    """Consecutive sentences of one topic, as (topic, sentences); topic '' for plain lines."""
    groups: list[tuple[str, list[Sentence]]] = []
    for sentence in sentences:
        if groups and sentence.topic and groups[-1][0] == sentence.topic:
            groups[-1][1].append(sentence)
        else:
            groups.append((sentence.topic, [sentence]))
    return groups


def listing(items: Sequence[str], sep: str = ", ") -> str:
    """'a', 'a and b', 'a, b and c'; with ``sep='; '`` clauses: 'a; b; c'."""
    if len(items) <= 1:
        return "".join(items)
    if sep != ", ":
        return sep.join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def each(facts: Sequence[Fact]) -> tuple[Sentence, ...]:
    """One sentence per fact, stating its canonical text."""
    return tuple(say(f.text, [f]) for f in facts)


def absent(facts: FactSet, about: str) -> tuple[Sentence, ...]:
    """The plain 'nothing recorded' sentence for an empty section, citing the absence fact."""
    fact = facts.absent(about)
    return (say(fact.text, [fact]),) if fact else ()
