"""Generation backends: one interface, chosen by ``FHIRGEN_BACKEND`` or ``--backend``.

- ``template``: deterministic text from the facts (and every other backend's fallback);
- ``transformers``: a causal LM from a local directory or GGUF file, batched on the GPU worker;
- ``openai``: any OpenAI-compatible server (vLLM, TGI, llama.cpp's server).

Heavy dependencies (torch, transformers) are imported only inside the backend that needs them,
so the webhook and the io workers stay small and start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from fhirgen.config import BACKEND_NAMES, load_settings

if TYPE_CHECKING:
    from fhirgen.clinical.facts import FactSet
    from fhirgen.drafting.documents.base import DocumentKind, Draft


class Generator(Protocol):
    """Writes drafts of document kinds from stays' facts."""

    name: str  # the backend, e.g. "template"
    model: str  # what wrote the text, for the Provenance Device
    version: str

    def draft(self, kind: DocumentKind, facts: FactSet) -> Draft:
        """A draft whose every sentence cites the facts it states."""
        ...

    def draft_many(self, requests: Sequence[tuple[DocumentKind, FactSet]]) -> list[Draft]:
        """Drafts for many stays at once (model backends batch their calls)."""
        ...


def backend_names() -> tuple[str, ...]:
    """Names accepted by ``FHIRGEN_BACKEND``."""
    return BACKEND_NAMES


def get_generator(name: str, settings: Any = None) -> Generator:
    """The backend called ``name``, configured from ``settings`` (model backends need them)."""
    from fhirgen.errors import ConfigError

    if name == "template":
        from fhirgen.drafting.generation.template import TemplateGenerator

        return TemplateGenerator()
    if name not in BACKEND_NAMES:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if settings is None:
        settings = load_settings()
    if name == "transformers":
        from fhirgen.drafting.generation.transformers_backend import TransformersGenerator

        return TransformersGenerator.from_settings(settings)
    from fhirgen.drafting.generation.openai_backend import OpenAIGenerator

    return OpenAIGenerator.from_settings(settings)
