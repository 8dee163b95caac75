"""Facts of the medications: those given during the stay, the discharge reconciliation (new,
changed, stopped, continued), and the orders a clinician must confirm."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from fhirgen.clinical.facts.builder import FactBuilder
from fhirgen.clinical.facts.model import FactKind, Value
from fhirgen.clinical.facts.phrasing import count_word, date_span, listed, lower_first
from fhirgen.clinical.lexicon import drug_class
from fhirgen.clinical.medications import (
    MedicationChange,
    dosage_text,
    ingredient_key,
    medication_concept,
    medication_name,
    missing_medication,
    readable_drug_name,
    reconcile,
)
from fhirgen.fhir.record import Resource, resource_key
from fhirgen.fhir.values import concept_name, concept_names, period_bounds


def inpatient_medications(builder: FactBuilder) -> None:
    ctx = builder.ctx
    groups: dict[str, list[Resource]] = {}
    for resource in (*ctx.meds_during, *ctx.administrations):
        key = ingredient_key(medication_name(resource, ctx.referenced))
        groups.setdefault(key, []).append(resource)
    for key in sorted(groups):
        group = groups[key]
        orders = [r for r in group if r["resourceType"] == "MedicationRequest"]
        given = [r for r in group if r["resourceType"] == "MedicationAdministration"]
        name = readable_drug_name(medication_name((orders or given)[0], ctx.referenced))
        # Every distinct dose, route and frequency is stated: none is merged away.
        doses = [lower_first(dosage_text(r)) for r in (orders or given)]
        text = "; then ".join(
            [
                f"{name}, {d}" if i == 0 else d
                for i, d in enumerate(dict.fromkeys(d for d in doses if d))
            ]
        )
        text = text or name
        if given:
            times = sorted(
                t
                for t in (
                    period_bounds(g, "effectiveDateTime", "effectivePeriod")[0] for g in given
                )
                if t
            )
            count = f"{len(given)} dose{'s' if len(given) != 1 else ''} given"
            if times:
                count += f", {date_span(times[0], times[-1])}"
            text += f" ({count})"
        builder.add(
            FactKind.INPATIENT_MEDICATION,
            text,
            [resource_key(r) for r in group],
            names=_medication_names(group, ctx.referenced),
            values=[Value("doses given", str(len(given)))] if given else [],
        )
    if not groups:
        builder.nothing(
            "inpatient-medications", "No medications given during the stay are recorded."
        )


def medications(builder: FactBuilder) -> None:
    changes = tuple(
        replace(
            c,
            name=readable_drug_name(c.name),
            variants=tuple(readable_drug_name(v) for v in c.variants),
        )
        for c in reconcile(builder.ctx)
    )
    for change in changes:
        if change.change == "new":
            text = f"New at discharge: {change.name}"
            if change.after_dose:
                text += f", {lower_first(change.after_dose)}"
        elif change.change == "changed":
            before_name = readable_drug_name(
                medication_name(change.before[-1], builder.ctx.referenced)
            )
            text = (
                f"Changed at discharge: {change.name}, "
                f"{lower_first(change.after_dose) or 'dose not stated'}"
                f" (before admission: {before_name}, "
                f"{lower_first(change.before_dose) or 'dose not stated'})"
            )
        elif change.change == "stopped":
            text = f"Stopped: {change.name} (taken before admission)"
        elif change.after:
            text = f"Continued unchanged: {change.name}"
            if change.after_dose:
                text += f", {lower_first(change.after_dose)}"
        else:
            text = f"Continued from before admission: {change.name}"
            if change.before_dose:
                text += f", {lower_first(change.before_dose)}"
            text += " (no change recorded)"
        if change.reason:
            text += f"; reason recorded: {change.reason}"
        if change.variants:
            text += f" (orders: {'; '.join(change.variants)})"
        values = [Value("before", change.before_dose)] if change.before_dose else []
        if change.after_dose:
            values.append(Value("after", change.after_dose))
        builder.add(
            FactKind.MEDICATION,
            text,
            change.sources,
            names=change.names,
            values=values,
            change=change.change,
            reason=change.reason,
        )
    if not any(c.change != "stopped" for c in changes):
        builder.nothing("discharge-medications", "No discharge medications are recorded.")
    _medication_checks(builder, changes)


def _medication_checks(builder: FactBuilder, changes: Sequence[MedicationChange]) -> None:
    """Orders a clinician must confirm: one drug at two doses, two drugs of one class, a
    drug named by a Medication the record does not hold."""
    ctx = builder.ctx
    named_by: dict[str, dict[str, Resource]] = {}  # missing Medication -> orders naming it
    for order in (
        *ctx.meds_before, *ctx.meds_during, *ctx.administrations, *ctx.meds_discharge
    ):  # fmt: skip
        missing = missing_medication(order, ctx.referenced)
        if missing is not None:
            named_by.setdefault(missing, {})[resource_key(order)] = order
    for missing, orders in named_by.items():
        gap = concept_name(ctx.referenced[missing].get("code"), missing)
        display = next(
            (str(d) for o in orders.values() if (d := o["medicationReference"].get("display"))),
            None,
        )
        if display:
            text = (
                f"{readable_drug_name(display)}, ordered by name only: {gap}; "
                "confirm the drug and strength"
            )
        else:
            text = f"an order names a {gap}: confirm which drug is meant"
        builder.add(FactKind.MEDICATION_CHECK, text, list(orders), about=f"missing:{missing}")
    for change in changes:
        if change.variants and change.change != "stopped":
            side = "discharge" if change.after else "home"
            builder.add(
                FactKind.MEDICATION_CHECK,
                f"{count_word(len(change.variants))} active {side} orders for "
                f"{ingredient_key(change.name)} ({listed(change.variants)}): "
                "confirm which continues",
                change.sources,
                names=change.names,
                about=f"dose:{ingredient_key(change.name)}",
            )
    classes: dict[str, list[MedicationChange]] = {}
    for change in changes:
        drug = drug_class(ingredient_key(change.name))
        if drug and change.change != "stopped":
            classes.setdefault(drug, []).append(change)
    for drug, group in sorted(classes.items()):
        if len(group) < 2:
            continue
        names = [c.name for c in group]
        both = "both are" if len(group) == 2 else "all are"
        builder.add(
            FactKind.MEDICATION_CHECK,
            f"{count_word(len(group))} {drug} at discharge ({listed(names)}): "
            f"confirm {both} intended",
            [s for c in group for s in c.sources],
            names=[n for c in group for n in c.names],
            about=f"class:{drug}",
        )


def _medication_names(group: Iterable[Resource], referenced: Mapping[str, Resource]) -> list[str]:
    return list(
        dict.fromkeys(n for r in group for n in concept_names(medication_concept(r, referenced)))
    )
