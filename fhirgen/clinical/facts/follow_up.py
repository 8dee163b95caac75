"""Facts of what continues after discharge: pending results, follow-up appointments and
referrals, care goals, care-plan activities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fhirgen.clinical.facts.builder import FactBuilder
from fhirgen.clinical.facts.model import FactKind
from fhirgen.clinical.facts.results import read_value
from fhirgen.clinical.wording import humanize, readable_text
from fhirgen.fhir.record import Resource, resource_key
from fhirgen.fhir.values import (
    concept_name,
    concept_names,
    format_date,
    format_quantity,
    period_bounds,
)


def pending(builder: FactBuilder) -> None:
    """Results not final at discharge and orders without a result, each said once."""
    grouped: dict[str, tuple[str, str | None, list[str]]] = {}
    for item in builder.ctx.pending:
        name = humanize(concept_name(item.get("code"), "A result"))
        if item["resourceType"] == "ServiceRequest":
            when = item.get("authoredOn")
            text = f"{name}: ordered on {format_date(when)}, no result recorded by discharge"
        else:
            when, _ = period_bounds(item, "effectiveDateTime", "effectivePeriod")
            reading = read_value(item) if item["resourceType"] == "Observation" else None
            status = str(item.get("status"))
            text = f"{name}: result not final at discharge (status {status}"
            if reading is not None:
                text += f", so far: {reading.display}"
            text += ")"
        _, _, sources = grouped.setdefault(text.lower(), (text, when, []))
        sources.append(resource_key(item))
    for text, when, sources in grouped.values():
        if len(sources) > 1 and ": ordered on " in text:
            text = text.replace(": ordered on ", f": ordered {len(sources)} times, first on ")
        name = text.split(":", 1)[0]
        builder.add(FactKind.PENDING, text, sources, names=[name], date=when)
    if not builder.ctx.pending:
        builder.nothing("pending", "No results were pending at discharge.")


def follow_ups(builder: FactBuilder) -> None:
    ctx = builder.ctx
    for item in ctx.follow_ups:
        if item["resourceType"] == "Appointment":
            what = (
                str(item.get("description") or "")
                or concept_name((item.get("serviceType") or [{}])[0])
                or concept_name(item.get("appointmentType"))
                or "Appointment"
            )
            actors = [(p or {}).get("actor") for p in item.get("participant") or []]
            who = [
                ctx.name_of(actor)
                for actor in actors
                if not _is_patient(actor, ctx.resolved(actor))
            ]
            who = [w for w in who if w]
            when = item.get("start")
            text = f"{what.rstrip('.')} on {format_date(when)}"
            if when and "T" in when:
                text += f" at {when[11:16]}"
            if who:
                text += f" with {', '.join(who)}"
            names: tuple[str, ...] = (what,)
        else:
            what = concept_name(item.get("code"), "Follow-up")
            when, _ = period_bounds(item, "occurrenceDateTime", "occurrencePeriod")
            text = what + (f", due {format_date(when)}" if when else "")
            performers = [ctx.name_of(p) for p in item.get("performer") or []]
            performers = [p for p in performers if p]
            if performers:
                text += f" ({', '.join(performers)})"
            names = concept_names(item.get("code"))
        said = next(
            (
                f
                for f in builder.facts
                if f.kind is FactKind.FOLLOW_UP and f.text.lower() == text.lower()
            ),
            None,
        )
        if said is not None:  # the same appointment or referral recorded twice
            index = builder.facts.index(said)
            builder.facts[index] = replace(said, sources=(*said.sources, resource_key(item)))
            continue
        builder.add(FactKind.FOLLOW_UP, text, [resource_key(item)], names=names, date=when)
    if not ctx.follow_ups:
        builder.nothing("follow-up", "No follow-up appointments or referrals are recorded.")


def goals(builder: FactBuilder) -> None:
    for goal in builder.ctx.goals:
        name = readable_text(concept_name(goal.get("description"), "unnamed goal"))
        text = f"Goal: {name}"
        targets = []
        for target in goal.get("target") or []:
            shown = _target_text(target or {})
            if shown:
                targets.append(shown)
        if targets:
            text += f" (target {'; '.join(targets)})"
        said = next((f for f in builder.facts if f.kind is FactKind.GOAL and f.text == text), None)
        if said is not None:  # one goal recorded in two plans
            index = builder.facts.index(said)
            builder.facts[index] = replace(said, sources=(*said.sources, resource_key(goal)))
            continue
        names = [name, *concept_names(goal.get("description"))]
        builder.add(FactKind.GOAL, text, [resource_key(goal)], names=names)
    if not builder.ctx.goals:
        builder.nothing("goals", "No care goals are recorded.", builder.patient)


def plan_activities(builder: FactBuilder) -> None:
    seen: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for plan in builder.ctx.care_plans:
        for activity in plan.get("activity") or []:
            detail = (activity or {}).get("detail") or {}
            if detail.get("status") in {"cancelled", "entered-in-error", "stopped"}:
                continue
            name = concept_name(detail.get("code")) or str(detail.get("description") or "")
            if not name:
                continue
            key = name.lower()
            names.setdefault(key, name)
            seen.setdefault(key, []).append(resource_key(plan))
    for key in sorted(seen):
        builder.add(
            FactKind.PLAN_ACTIVITY,
            f"{names[key]} (in a care plan recorded during the stay)",
            seen[key],
            names=[names[key]],
        )


def _is_patient(reference: Any, resolved: Resource | None) -> bool:
    if resolved is not None:
        return resolved.get("resourceType") == "Patient"
    target = str((reference or {}).get("reference", "")) if isinstance(reference, Mapping) else ""
    return target.startswith("Patient/") or "/Patient/" in target or not target


def _target_text(target: Mapping[str, Any]) -> str:
    measure = readable_text(concept_name(target.get("measure")))
    detail = ""
    if isinstance(target.get("detailQuantity"), Mapping):
        detail = format_quantity(target["detailQuantity"])
    elif isinstance(target.get("detailRange"), Mapping):
        low = format_quantity(target["detailRange"].get("low"))
        high = format_quantity(target["detailRange"].get("high"))
        detail = f"{low} to {high}".strip(" to")
    elif target.get("detailString"):
        detail = str(target["detailString"])
    elif target.get("detailCodeableConcept"):
        detail = concept_name(target["detailCodeableConcept"])
    due = f"by {format_date(target['dueDate'])}" if target.get("dueDate") else ""
    return " ".join(p for p in (measure, detail, due) if p)
