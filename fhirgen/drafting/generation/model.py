"""What model backends share: a prompt per model-written section, batched completion, parsing.

A backend implements ``complete_many`` (prompts in, text out); this class turns a batch of
(document kind, facts) requests into drafts. Sections no model writes (lists of diagnoses,
medications, results…) are template text; a model-written section that parses to nothing is
left empty here, and the verifier replaces it with its template text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from fhirgen.clinical.facts import FactSet
from fhirgen.drafting.documents.base import DocumentKind, Draft, Section, Sentence
from fhirgen.drafting.generation.parsing import parse_sentences
from fhirgen.drafting.generation.prompts import (
    COURSE_SECTION,
    RESPONSE_PREFIX,
    Prompt,
    draft_prompts,
)


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
            prompt
            for index, (kind, facts) in enumerate(requests)
            for prompt in draft_prompts(index, kind, facts)
        ]
        started = time.perf_counter()
        completions = self.complete_many(prompts) if prompts else []
        elapsed = time.perf_counter() - started
        answers = {p.key: c for p, c in zip(prompts, completions, strict=True)}
        drafts = []
        for index, (kind, facts) in enumerate(requests):
            sections: list[Section] = []
            problems: dict[str, str] = {}
            used = [c for (i, _, _), c in answers.items() if i == index]
            for spec in kind.sections:
                mine = {k: c for k, c in answers.items() if k[0] == index and k[1] == spec.key}
                if not mine:
                    sections.append(kind.template_section(spec.key, facts))
                    continue
                written: list[Sentence] = []
                if spec.key == COURSE_SECTION:
                    # The stay's opening line and the "other findings" stay template text;
                    # each problem's paragraph is the model's.
                    template = kind.template_section(spec.key, facts).sentences
                    written.extend(s for s in template if not s.topic)
                for (_, _, topic), answer in mine.items():
                    parsed = parse_sentences(answer.text, prefix=RESPONSE_PREFIX)
                    if parsed.problem:
                        problems[f"{spec.key}: {topic}" if topic else spec.key] = parsed.problem
                    written.extend(replace(s, topic=topic) for s in parsed.sentences)
                if spec.key == COURSE_SECTION:
                    written.extend(
                        s for s in template if s.topic and s.topic not in {k[2] for k in mine}
                    )
                sections.append(Section(spec.key, spec.title, tuple(written)))
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
