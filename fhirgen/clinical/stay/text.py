"""The text of clinical notes: HTML to text, a DocumentReference's attachment, a Composition's
sections.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from fhirgen.fhir.record import Resource


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"} and self._skip:
            self._skip -= 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment: tags dropped, entities decoded, blocks on new lines."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return tidy_text("".join(parser.parts))


def tidy_text(text: str) -> str:
    """Collapse runs of spaces and blank lines."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def document_text(document: Resource) -> str:
    texts: list[str] = []
    for content in document.get("content") or []:
        attachment = (content or {}).get("attachment") or {}
        data = attachment.get("data")
        if not isinstance(data, str):
            continue
        try:
            raw = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            continue
        content_type = str(attachment.get("contentType") or "text/plain").lower()
        charset = re.search(r"charset=([\w-]+)", content_type)
        try:
            text = raw.decode(charset.group(1) if charset else "utf-8", errors="replace")
        except LookupError:
            text = raw.decode("utf-8", errors="replace")
        if "html" in content_type or "xml" in content_type:
            texts.append(html_to_text(text))
        elif content_type.startswith("text/"):
            texts.append(tidy_text(text))
        if texts:
            break  # alternative renderings of the same note: the first readable one is enough
    return texts[0] if texts else ""


def composition_text(composition: Resource) -> str:
    parts: list[str] = []

    def walk(sections: Any) -> None:
        for section in sections or []:
            if not isinstance(section, Mapping):
                continue
            if section.get("title"):
                parts.append(str(section["title"]))
            div = (section.get("text") or {}).get("div")
            if isinstance(div, str):
                parts.append(html_to_text(div))
            walk(section.get("section"))

    walk(composition.get("section"))
    return tidy_text("\n".join(parts))
