"""Facts of the procedures done during the stay, one per procedure however often done."""

from __future__ import annotations

from fhirgen.clinical.facts.builder import FactBuilder, group_by_concept
from fhirgen.clinical.facts.model import FactKind, Value
from fhirgen.fhir.record import resource_key
from fhirgen.fhir.values import concept_name, concept_names, format_date, period_bounds


def procedures(builder: FactBuilder) -> None:
    groups = group_by_concept(builder.ctx.procedures, "code")
    for group in groups:
        first = group[0]
        name = concept_name(first.get("code"), "unnamed procedure")
        dates = [period_bounds(p, "performedDateTime", "performedPeriod")[0] for p in group]
        known = sorted(d for d in dates if d)
        if len(group) == 1:
            text = f"{name} on {format_date(known[0] if known else None)}"
        elif known:
            text = (
                f"{name}, {len(group)} times from {format_date(known[0])} "
                f"to {format_date(known[-1])}"
            )
        else:
            text = f"{name}, {len(group)} times"
        builder.add(
            FactKind.PROCEDURE,
            text,
            [resource_key(p) for p in group],
            names=concept_names(first.get("code")),
            values=[Value("count", str(len(group)))],
            date=known[0] if known else None,
        )
    if not groups:
        builder.nothing("procedures", "No procedures are recorded for this stay.")
