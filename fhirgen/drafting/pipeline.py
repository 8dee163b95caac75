"""The pipeline, step by step: record → context → facts → drafts → verified drafts → Bundle.

Each step takes immutable inputs and returns a new value. The offline CLI and the live workers
call these same functions, so the same record gives the same resources on both paths. Model
backends draft many stays in one call (``draft_stays``); the template backend does not care.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fhirgen.clinical.facts import FactSet, extract_facts
from fhirgen.clinical.stay import StayContext, build_context
from fhirgen.drafting.documents import care_plan, discharge_summary, patient_instructions
from fhirgen.drafting.documents.base import Draft
from fhirgen.drafting.generation import Generator
from fhirgen.drafting.render import Author, as_instant, render_bundle
from fhirgen.drafting.verify import VerificationReport, verify
from fhirgen.errors import InputError, PermanentError
from fhirgen.fhir.record import PatientRecord, Resource
from fhirgen.fhir.validation import written_bundle_errors

# Drafted for every stay, in this order (the Bundle's entries follow it).
KINDS = (discharge_summary.KIND, care_plan.KIND, patient_instructions.KIND)


@dataclass(frozen=True)
class StayDraft:
    """Everything one stay's run produced."""

    context: StayContext
    facts: FactSet
    drafts: Mapping[str, Draft]  # verified, by document kind
    reports: Mapping[str, VerificationReport]
    bundle: Mapping
    timings: Mapping[str, float]  # milliseconds per step


@dataclass(frozen=True)
class StayRequest:
    """One stay to draft, with the options that differ per stay."""

    record: PatientRecord
    encounter: Resource
    generated_at: str | None = None
    replaces: str | None = None
    regeneration: int = 0


@dataclass
class _Prepared:
    request: StayRequest
    context: StayContext
    facts: FactSet
    timings: dict[str, float] = field(default_factory=dict)


def draft_stay(
    record: PatientRecord,
    encounter: Resource,
    generator: Generator,
    *,
    identifier_system: str,
    identifier_key: bytes | None = None,
    generated_at: str | None = None,
    replaces: str | None = None,
    regeneration: int = 0,
    validate: bool = True,
) -> StayDraft:
    """Draft the discharge summary, care plan and patient instructions of one stay, as a
    transaction Bundle.

    ``generated_at`` stamps the resources; it defaults to the discharge time so that offline
    runs are reproducible. Raises ``InputError`` for a stay that cannot be summarised safely,
    and ``PermanentError`` if the Bundle fails FHIR validation (skip that with ``validate``
    only to report on the output, as ``fhirgen eval`` does). ``identifier_key`` makes the
    drafts' identifiers keyed hashes nobody can predict (``render.draft_ids``; the live
    write-back passes the deployment's, offline output keeps readable ones).
    """
    request = StayRequest(record, encounter, generated_at, replaces, regeneration)
    (result,) = draft_stays(
        [request],
        generator,
        identifier_system=identifier_system,
        identifier_key=identifier_key,
        validate=validate,
    )
    if isinstance(result, Exception):
        raise result
    return result


def draft_stays(
    requests: Sequence[StayRequest],
    generator: Generator,
    *,
    identifier_system: str,
    identifier_key: bytes | None = None,
    validate: bool = True,
) -> list[StayDraft | PermanentError]:
    """Draft many stays with one call to the generator; a stay that fails gets its error."""
    results: list[StayDraft | PermanentError | None] = [None] * len(requests)
    prepared: list[tuple[int, _Prepared]] = []
    for index, request in enumerate(requests):
        try:
            prepared.append((index, _prepare(request)))
        except PermanentError as exc:
            results[index] = exc
        except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
            # Input is not validated on the way in (too slow): a resource whose fields have
            # the wrong JSON shape surfaces here. This stay fails with a clear reason.
            key = f"Encounter/{request.encounter.get('id')}"
            results[index] = InputError(
                f"{key}: malformed FHIR data in this stay's record ({type(exc).__name__}: {exc})",
                where=request.record.origin(key) or key,
            )
    started = time.perf_counter()
    drafts = generator.draft_many([(kind, p.facts) for _, p in prepared for kind in KINDS])
    share = (time.perf_counter() - started) * 1000 / max(len(prepared), 1)
    for position, (index, stay) in enumerate(prepared):
        stay.timings["generate"] = round(share, 3)
        mine = drafts[position * len(KINDS) : (position + 1) * len(KINDS)]
        try:
            results[index] = _finish(
                stay, mine, generator, identifier_system, identifier_key, validate
            )
        except PermanentError as exc:
            results[index] = exc
    return [r for r in results if r is not None]


def _prepare(request: StayRequest) -> _Prepared:
    clock = time.perf_counter()
    context = build_context(request.record, request.encounter)
    built = time.perf_counter()
    facts = extract_facts(context)
    done = time.perf_counter()
    timings = {
        "context": round((built - clock) * 1000, 3),
        "facts": round((done - built) * 1000, 3),
    }
    return _Prepared(request, context, facts, timings)


def _finish(
    stay: _Prepared,
    drafts: Sequence[Draft],
    generator: Generator,
    identifier_system: str,
    identifier_key: bytes | None,
    validate: bool,
) -> StayDraft:
    clock = time.perf_counter()
    verified: dict[str, Draft] = {}
    reports: dict[str, VerificationReport] = {}
    for kind, draft in zip(KINDS, drafts, strict=True):
        verified[kind.key], reports[kind.key] = verify(draft, kind, stay.facts)
    context, request = stay.context, stay.request
    stamp = request.generated_at or as_instant(context.discharged) or as_instant(context.admitted)
    if stamp is None:
        raise PermanentError(f"Encounter/{context.encounter_id} has no period to date the draft")
    bundle = render_bundle(
        context,
        stay.facts,
        summary=verified[discharge_summary.KIND.key],
        plan=verified[care_plan.KIND.key],
        instructions=verified[patient_instructions.KIND.key],
        author=Author(generator.name, generator.model, generator.version),
        generated_at=stamp,
        identifier_system=identifier_system,
        replaces=request.replaces,
        regeneration=request.regeneration,
        identifier_key=identifier_key,
    )
    errors = written_bundle_errors(bundle) if validate else []
    if errors:
        raise PermanentError(f"generated Bundle is not valid FHIR R4: {'; '.join(errors[:5])}")
    stay.timings["render"] = round((time.perf_counter() - clock) * 1000, 3)
    return StayDraft(context, stay.facts, verified, reports, bundle, dict(stay.timings))
