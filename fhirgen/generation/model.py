"""What model backends share: a prompt per model-written section, batched completion, parsing.

A backend implements ``complete_many`` (prompts in, text out); this class turns a batch of
(document kind, facts) requests into drafts. Sections no model writes (lists of diagnoses,
medications, results…) are template text; a model-written section that parses to nothing is
left empty here, and the verifier replaces it with its template text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from fhirgen.documents.base import DocumentKind, Draft, Section
from fhirgen.facts import FactSet
from fhirgen.generation.parsing import parse_sentences
from fhirgen.generation.prompts import RESPONSE_PREFIX, Prompt, model_sections, section_prompt


@dataclass(frozen=True)
class Completion:
    """A model's answer to one prompt, with what it cost."""

    text: str
    prompt_tokens: int
    output_tokens: int
    seconds: float
    batch_size: int


class ModelBackend:
    """Base of the transformers and openai backends."""

    name = "model"
    model = "unknown"
    version = ""

    def complete_many(self, prompts: Sequence[Prompt]) -> list[Completion]:
        """One completion per prompt, in order (batched as the backend sees fit)."""
        raise NotImplementedError

    def draft(self, kind: DocumentKind, facts: FactSet) -> Draft:
        return self.draft_many([(kind, facts)])[0]

    def draft_many(self, requests: Sequence[tuple[DocumentKind, FactSet]]) -> list[Draft]:
        """Drafts for many stays at once: every model-written section of every request is one
        prompt, and all prompts go to ``complete_many`` together."""
        prompts = [
            section_prompt(index, kind, spec, facts)
            for index, (kind, facts) in enumerate(requests)
            for spec in model_sections(kind)
        ]
        started = time.perf_counter()
        completions = self.complete_many(prompts) if prompts else []
        elapsed = time.perf_counter() - started
        answers = {p.key: c for p, c in zip(prompts, completions, strict=True)}
        drafts = []
        for index, (kind, facts) in enumerate(requests):
            sections: list[Section] = []
            problems: dict[str, str] = {}
            used = [c for (i, _), c in answers.items() if i == index]
            for spec in kind.sections:
                answer = answers.get((index, spec.key))
                if answer is None:
                    sections.append(kind.template_section(spec.key, facts))
                    continue
                parsed = parse_sentences(answer.text, prefix=RESPONSE_PREFIX)
                if parsed.problem:
                    problems[spec.key] = parsed.problem
                sections.append(Section(spec.key, spec.title, parsed.sentences))
            usage = {
                "prompts": len(used),
                "prompt_tokens": sum(c.prompt_tokens for c in used),
                "output_tokens": sum(c.output_tokens for c in used),
                "model_ms": round(sum(c.seconds for c in used) * 1000, 1),
                "batch_ms": round(elapsed * 1000, 1),
                "batch_sizes": sorted({c.batch_size for c in used}),
                "parse_problems": problems,
            }
            drafts.append(
                Draft(kind.key, kind.title, tuple(sections), self.name, self.model, usage)
            )
        return drafts
