"""Diagnoses and procedures in prose: repeats and qualifier tails dropped (``distinct_names``,
``plain_name``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from fhirgen.clinical.wording.displays import _RUN, humanize

_QUALIFIER_TAIL = re.compile(
    r"(?:(?:,\s*|\s+)(?:unspecified|NOS|not otherwise specified)|\s*\(disorder\))\s*$",
    re.IGNORECASE,
)


def _strip_qualifiers(name: str) -> str:
    text = name.strip()
    while True:
        shorter = _QUALIFIER_TAIL.sub("", text).rstrip(" ,;:-")
        if shorter == text or not shorter:
            return text
        text = shorter


def _words(name: str) -> list[str]:
    return _RUN.findall(name.lower())


def _contains(longer: Sequence[str], shorter: Sequence[str]) -> bool:
    """True if every word of ``shorter`` appears in ``longer``, in order."""
    remaining = iter(longer)
    return all(word in remaining for word in shorter)


def distinct_names(names: Iterable[str]) -> list[str]:
    """The names without repeats, in first-seen order.

    Case- and punctuation-insensitive duplicates go; qualifier tails (", unspecified", " NOS",
    " (disorder)" ...) are dropped; a name whose words all appear, in order, in another is
    replaced by the more specific one, which takes the place of the first seen.
    """
    kept: list[tuple[str, list[str]]] = []
    for name in names:
        display = _strip_qualifiers(name)
        words = _words(display)
        if not words or any(_contains(other, words) for _, other in kept):
            continue
        covered = [i for i, (_, other) in enumerate(kept) if _contains(words, other)]
        if not covered:
            kept.append((display, words))
            continue
        kept[covered[0]] = (display, words)
        for index in reversed(covered[1:]):
            del kept[index]
    return [display for display, _ in kept]


def plain_name(name: str) -> str:
    """A diagnosis or procedure name for prose: ``humanize`` it, then drop qualifier tails."""
    return _strip_qualifiers(humanize(name))
