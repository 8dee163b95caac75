"""Small wording helpers the facts' texts share: dates as spans, lists, counts in words."""

from __future__ import annotations

from collections.abc import Sequence

from fhirgen.fhir.values import clean_name, format_date


def lower_first(text: str) -> str:
    """'Take 1 tablet…' -> 'take 1 tablet…' (a dosage read after a comma); 'IV …' kept."""
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and first[1:].islower():
        return text[:1].lower() + text[1:]
    return text


def count_word(count: int) -> str:
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    return words[count].capitalize() if count < len(words) else str(count)


def listed(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def date_span(first: str | None, last: str | None) -> str:
    """Two dates as a short span: '2–6 Mar 2026', '28 Feb–3 Mar 2026', or one date."""
    a, b = format_date(first), format_date(last)
    if a == b:
        return a
    head, tail = a.split(" "), b.split(" ")
    if len(head) == 3 and len(tail) == 3:
        if head[1:] == tail[1:]:
            return f"{head[0]}–{b}"
        if head[2] == tail[2]:
            return f"{head[0]} {head[1]}–{b}"
    return f"{a} to {b}"


def one_line(text: str) -> str:
    return clean_name(" ".join(text.split()))
