"""Generation backends: one interface, chosen by ``FHIRGEN_BACKEND`` or ``--backend``.

Heavy dependencies (torch, transformers) are imported only inside the backend that needs them,
so the webhook and the io workers stay small and start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fhirgen.documents.base import DocumentKind, Draft
    from fhirgen.facts import FactSet


class Generator(Protocol):
    """Writes a draft of one document kind from a stay's facts."""

    name: str  # the backend, e.g. "template"
    model: str  # what wrote the text, for the Provenance Device
    version: str

    def draft(self, kind: DocumentKind, facts: FactSet) -> Draft:
        """A draft whose every sentence cites the facts it states."""
        ...


_BACKENDS = ("template",)


def backend_names() -> tuple[str, ...]:
    """Names accepted by ``FHIRGEN_BACKEND``."""
    return _BACKENDS


def get_generator(name: str) -> Generator:
    """The backend called ``name``."""
    if name == "template":
        from fhirgen.generation.template import TemplateGenerator

        return TemplateGenerator()
    from fhirgen.errors import ConfigError

    raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(_BACKENDS)}")
