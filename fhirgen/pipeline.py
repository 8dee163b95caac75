"""The pipeline, step by step: record → context → facts → drafts → verified drafts → Bundle.

Each step takes immutable inputs and returns a new value. The offline CLI and the live workers
call these same functions, so the same record gives the same resources on both paths.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from fhirgen.context import StayContext, build_context
from fhirgen.documents import care_plan, discharge_summary
from fhirgen.documents.base import Draft
from fhirgen.errors import PermanentError
from fhirgen.facts import FactSet, extract_facts
from fhirgen.fhir.record import PatientRecord, Resource
from fhirgen.fhir.validation import written_bundle_errors
from fhirgen.generation import Generator
from fhirgen.render import Author, as_instant, render_bundle
from fhirgen.verify import VerificationReport, verify


@dataclass(frozen=True)
class StayDraft:
    """Everything one stay's run produced."""

    context: StayContext
    facts: FactSet
    drafts: Mapping[str, Draft]  # verified, by document kind
    reports: Mapping[str, VerificationReport]
    bundle: Mapping
    timings: Mapping[str, float]  # milliseconds per step


def draft_stay(
    record: PatientRecord,
    encounter: Resource,
    generator: Generator,
    *,
    identifier_system: str,
    generated_at: str | None = None,
    replaces: str | None = None,
    regeneration: int = 0,
    validate: bool = True,
) -> StayDraft:
    """Draft the discharge summary and care plan of one stay, as a transaction Bundle.

    ``generated_at`` stamps the resources; it defaults to the discharge time so that offline
    runs are reproducible. Raises ``InputError`` for a stay that cannot be summarised safely,
    and ``PermanentError`` if the Bundle fails FHIR validation (skip that with ``validate``
    only to report on the output, as ``fhirgen eval`` does).
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = round((now - clock) * 1000, 3)
        clock = now

    context = build_context(record, encounter)
    lap("context")
    facts = extract_facts(context)
    lap("facts")
    drafts: dict[str, Draft] = {}
    reports: dict[str, VerificationReport] = {}
    for kind in (discharge_summary.KIND, care_plan.KIND):
        drafts[kind.key], reports[kind.key] = verify(generator.draft(kind, facts), kind, facts)
    lap("generate")
    stamp = generated_at or as_instant(context.discharged) or as_instant(context.admitted)
    if stamp is None:
        raise PermanentError(f"Encounter/{context.encounter_id} has no period to date the draft")
    bundle = render_bundle(
        context,
        facts,
        drafts[discharge_summary.KIND.key],
        drafts[care_plan.KIND.key],
        author=Author(generator.name, generator.model, generator.version),
        generated_at=stamp,
        identifier_system=identifier_system,
        replaces=replaces,
        regeneration=regeneration,
    )
    errors = written_bundle_errors(bundle) if validate else []
    if errors:
        raise PermanentError(f"generated Bundle is not valid FHIR R4: {'; '.join(errors[:5])}")
    lap("render")
    return StayDraft(context, facts, drafts, reports, bundle, timings)
