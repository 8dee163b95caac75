"""Facts of the Encounter itself: the stay, the care team, the reason for admission, the
discharge disposition."""

from __future__ import annotations

from fhirgen.clinical.facts.builder import FactBuilder, codes_of
from fhirgen.clinical.facts.model import FactKind, Value
from fhirgen.clinical.stay import encounter_class_codes
from fhirgen.fhir.record import resource_key
from fhirgen.fhir.values import concept_key, concept_name, concept_names, format_date, parse_time


def stay(builder: FactBuilder) -> None:
    ctx = builder.ctx
    kind = concept_name((ctx.encounter.get("type") or [{}])[0], "Inpatient stay")
    start, end = parse_time(ctx.admitted), parse_time(ctx.discharged)
    values = [Value("admitted", format_date(ctx.admitted), when=ctx.admitted)]
    text = f"{kind} from {format_date(ctx.admitted)} to {format_date(ctx.discharged)}"
    if ctx.discharged:
        values.append(Value("discharged", format_date(ctx.discharged), when=ctx.discharged))
    if start and end:
        days = (end.date() - start.date()).days
        values.append(Value("length of stay", str(days), "days"))
        text += " (same day)" if days == 0 else f" ({days} day{'s' if days != 1 else ''})"
    classes = ", ".join(sorted(encounter_class_codes(ctx.encounter)))
    builder.add(
        FactKind.STAY,
        text,
        [builder.encounter],
        names=[kind],
        values=values,
        date=ctx.admitted,
        encounter_class=classes,
    )


def care_team(builder: FactBuilder) -> None:
    """Clinicians named on the Encounter (resolved Practitioners, or their display)."""
    roles: dict[str, list[str]] = {}
    sources: list[str] = [builder.encounter]
    for participant in builder.ctx.encounter.get("participant") or []:
        individual = (participant or {}).get("individual")
        resolved = builder.ctx.resolved(individual)
        if resolved is not None and resolved.get("resourceType") == "Patient":
            continue
        name = builder.ctx.name_of(individual)
        if not name:
            continue
        held = roles.setdefault(name, [])
        for concept in (participant or {}).get("type") or []:
            role = concept_name(concept).lower()
            if role and role not in held:
                held.append(role)
        if resolved is not None:
            sources.append(resource_key(resolved))
    if roles:
        members = [f"{n} ({', '.join(r)})" if r else n for n, r in roles.items()]
        builder.add(FactKind.CARE_TEAM, f"Care team: {'; '.join(members)}", sources)


def reasons(builder: FactBuilder) -> None:
    ctx = builder.ctx
    found = False
    for concept in ctx.encounter.get("reasonCode") or []:
        name = concept_name(concept)
        if name:
            builder.add(
                FactKind.REASON,
                f"Reason for admission: {name}",
                [builder.encounter],
                names=concept_names(concept),
                code=concept_key(concept),
                codes=codes_of(concept),
            )
            found = True
    for condition in ctx.reasons:
        builder.add(
            FactKind.REASON,
            f"Reason for admission: {concept_name(condition.get('code'), 'a condition')}",
            [builder.encounter, resource_key(condition)],
            names=concept_names(condition.get("code")),
            codes=codes_of(condition.get("code")),
        )
        found = True
    if not found:
        builder.nothing("reason", "The record does not state a reason for admission.")


def disposition(builder: FactBuilder) -> None:
    hospitalization = builder.ctx.encounter.get("hospitalization") or {}
    disposition = hospitalization.get("dischargeDisposition")
    if disposition and concept_name(disposition):
        name = concept_name(disposition)
        builder.add(
            FactKind.DISPOSITION,
            f"Discharge disposition: {name}",
            [builder.encounter],
            names=concept_names(disposition),
        )
    else:
        builder.nothing("disposition", "The record does not state the discharge disposition.")
