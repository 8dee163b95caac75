"""Reading a model's answer: JSON sentences with citations, however untidy the answer is.

Models wrap JSON in code fences, add chatter before or after it, or stop mid-sentence when they
reach the token limit. The parser takes every complete ``{"text": …, "cites": […]}`` object it
can find, in order, and says what it had to skip. What it returns still goes through the
verifier.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fhirgen.drafting.documents.base import Sentence

_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Parsed:
    """Sentences found in an answer, and what was wrong with the answer ('' if nothing)."""

    sentences: tuple[Sentence, ...]
    problem: str


def parse_sentences(answer: str, *, prefix: str = "") -> Parsed:
    """Sentences from a model's answer (``prefix`` is text we placed before it, if any)."""
    if not answer.strip():
        return Parsed((), "empty answer")
    # The answer usually continues our prefix; a model may also restart the object itself.
    candidates = [prefix + answer, answer] if prefix else [answer]
    for candidate in candidates:
        whole = _whole_object(_strip_fences(candidate))
        if whole is not None and isinstance(whole.get("sentences"), list):
            sentences, skipped = _sentences(whole["sentences"])
            return Parsed(sentences, f"{skipped} malformed item(s) skipped" if skipped else "")
    text = _strip_fences(answer if answer.lstrip().startswith(("{", "`", "[")) else prefix + answer)
    whole = _whole_object(text)
    if whole is not None:
        items = whole.get("sentences")
        if isinstance(items, list):
            sentences, skipped = _sentences(items)
            problem = f"{skipped} malformed item(s) skipped" if skipped else ""
            return Parsed(sentences, problem)
    items = list(_objects(text))
    sentences, skipped = _sentences(items)
    if not items:
        return Parsed((), "no JSON sentences in the answer")
    problem = "answer is not complete JSON (truncated or with extra text); complete items kept"
    if skipped:
        problem += f"; {skipped} malformed item(s) skipped"
    return Parsed(sentences, problem)


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        if "```" in stripped:
            stripped = stripped.rsplit("```", 1)[0]
    return stripped


def _whole_object(text: str) -> dict | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _objects(text: str):
    """Every decodable JSON object that looks like a sentence, scanning left to right."""
    position = 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(value, dict) and "text" in value:
            yield value
            position = end
        else:
            position = start + 1


def _sentences(items: list) -> tuple[tuple[Sentence, ...], int]:
    found: list[Sentence] = []
    skipped = 0
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            skipped += 1
            continue
        cites = item.get("cites", [])
        if isinstance(cites, str):
            cites = [cites]
        if not isinstance(cites, list):
            skipped += 1
            continue
        text = " ".join(item["text"].split())
        found.append(Sentence(text, tuple(str(c).strip() for c in cites if str(c).strip())))
    return tuple(found), skipped
