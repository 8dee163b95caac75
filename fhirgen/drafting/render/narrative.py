"""A draft as text and as HTML: sections, sentences with [n] citations, the source list."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from fhirgen.clinical.facts import Fact, FactSet
from fhirgen.clinical.stay import StayContext
from fhirgen.drafting.documents.base import Draft, Sentence, paragraphs
from fhirgen.fhir.values import format_date

SOURCE_TEXT_CHARS = 160  # a fact's text in the plain-text source list, cut on a word boundary
SOURCE_IDS_PER_TYPE = 3  # resource ids shown per type there; the rest are counted


def document_text(facts: FactSet, draft: Draft, context: StayContext) -> str:
    """The draft as plain text: sections, sentences with [n] citations, then the sources.

    Sentences with a topic run together as one paragraph per topic ("Topic: one. [1] two. [2]"),
    a blank line between paragraphs; the others stand one per line. The source list is compact
    (``source_line``); the HTML attachment and the Provenance keep every cited resource.
    """
    numbers = citation_numbers(draft)
    lines = [
        f"{draft.title.upper()} - AI-GENERATED DRAFT",
        "Preliminary: written by software from the chart; a clinician must review and sign it.",
        f"Stay: {format_date(context.admitted)} to {format_date(context.discharged)}",
        "",
    ]
    for section in draft.sections:
        lines.append(section.title.upper())
        previous: str | None = None
        for topic, group in paragraphs(section.sentences):
            if previous is not None and (topic or previous):
                lines.append("")  # a paragraph stands apart from what is next to it
            previous = topic
            cited = [_marked(s, numbers) for s in group]
            lines.append(f"{topic}: {' '.join(cited)}" if topic else cited[0])
        lines.append("")
    lines.append("SOURCES")
    for fact_id, number in numbers.items():
        fact = facts.get(fact_id)
        if fact is not None:
            lines.append(source_line(number, fact))
    return "\n".join(lines) + "\n"


def source_line(number: int, fact: Fact) -> str:
    """``[n] fact text (Type/a, b, c +K more; Other/d)``: the text cut at
    ``SOURCE_TEXT_CHARS`` on a word boundary, at most ``SOURCE_IDS_PER_TYPE`` ids per type."""
    return f"[{number}] {_shortened(fact.text, SOURCE_TEXT_CHARS)} ({_grouped(fact.sources)})"


def _marked(sentence: Sentence, numbers: Mapping[str, int]) -> str:
    marks = "".join(f"[{numbers[c]}]" for c in sentence.cites)
    return f"{sentence.text} {marks}".rstrip()


def _shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if not text[limit - 1].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-(") + "…"


def _grouped(sources: Sequence[str]) -> str:
    by_type: dict[str, list[str]] = {}
    for source in sources:
        rtype, _, rid = source.partition("/")
        by_type.setdefault(rtype, []).append(rid)
    groups = []
    for rtype, ids in by_type.items():
        shown = ", ".join(ids[:SOURCE_IDS_PER_TYPE])
        more = len(ids) - SOURCE_IDS_PER_TYPE
        groups.append(f"{rtype}/{shown}" + (f" +{more} more" if more > 0 else ""))
    return "; ".join(groups)


def document_html(facts: FactSet, draft: Draft, context: StayContext) -> str:
    """The draft as an HTML document with citation marks linked to its source list."""
    numbers = citation_numbers(draft)
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(draft.title)} (AI-generated draft)</title></head><body>",
        draft_body(facts, draft, context, numbers, heading="h1"),
        "</body></html>\n",
    ]
    return "".join(out)


def draft_body(
    facts: FactSet,
    draft: Draft,
    context: StayContext,
    numbers: Mapping[str, int],
    *,
    heading: str,
    banner: bool = True,
    sources: bool = True,
) -> str:
    """A draft as XHTML: title, AI banner, sections (a paragraph per topic), source list."""
    sub = "h2" if heading == "h1" else "h4"
    out = [f"<{heading}>{_esc(draft.title)}</{heading}>"]
    if banner:
        out += [
            "<p><b>AI-generated draft, preliminary.</b> Written by software from the chart; "
            "a clinician must review and sign it.</p>",
            f"<p>Stay: {_esc(format_date(context.admitted))} to "
            f"{_esc(format_date(context.discharged))}</p>",
        ]
    for section in draft.sections:
        out.append(f"<{sub}>{_esc(section.title)}</{sub}>")
        for topic, group in paragraphs(section.sentences):
            lead = f"<b>{_esc(topic)}:</b> " if topic else ""
            out.append(f"<p>{lead}{' '.join(_html_sentence(s, numbers) for s in group)}</p>")
    if sources:
        out.append(source_list(facts, numbers, sub))
    return "".join(out)


def _html_sentence(sentence: Sentence, numbers: Mapping[str, int]) -> str:
    marks = "".join(
        f'<sup><a href="#src-{numbers[c]}">[{numbers[c]}]</a></sup>' for c in sentence.cites
    )
    return f"{_esc(sentence.text)}{marks}"


def source_list(facts: FactSet, numbers: Mapping[str, int], heading: str) -> str:
    """Every cited fact with every resource it rests on: the clickable citation trail."""
    out = [f"<{heading}>Sources</{heading}><ol>"]
    for fact_id, number in numbers.items():
        fact = facts.get(fact_id)
        if fact is not None:
            refs = ", ".join(fact.sources)
            out.append(f'<li id="src-{number}">{_esc(fact.text)} ({_esc(refs)})</li>')
    out.append("</ol>")
    return "".join(out)


def citation_numbers(*drafts: Draft) -> dict[str, int]:
    """[n] per cited fact, in first-cited order across the drafts (one list for all of them)."""
    cited = dict.fromkeys(c for draft in drafts for c in draft.cited())
    return {fact_id: n for n, fact_id in enumerate(cited, start=1)}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
