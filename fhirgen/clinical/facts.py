"""Facts: the stay as short, citable statements, each tied to the FHIR resources it came from.

Every sentence fhirgen writes cites facts by id, and every fact cites resources, so each
statement in a draft can be traced to the chart. Fact ids are derived from the fact's kind and
sources, so the same record always yields the same ids. Where the record holds nothing of a kind
(no procedures, no allergies recorded…), an ``absent`` fact says so, citing the Encounter or
Patient whose record was searched; "nothing recorded" is then a statement with a source too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

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
from fhirgen.clinical.stay import StayContext, encounter_class_codes
from fhirgen.clinical.trends import Point, describe, meaningful_change
from fhirgen.clinical.wording import (
    humanize,
    in_sentence,
    quantity_text,
    readable_text,
    test_name,
    unit_text,
)
from fhirgen.fhir.record import Resource, resource_key
from fhirgen.fhir.values import (
    SNOMED,
    clean_name,
    concept_codes,
    concept_key,
    concept_name,
    concept_names,
    format_date,
    format_number,
    format_quantity,
    has_code,
    parse_time,
    period_bounds,
    quantity_parts,
)


class FactKind(StrEnum):
    """The families of facts, in the order a reader meets them."""

    STAY = "stay"
    CARE_TEAM = "care-team"
    REASON = "reason"
    DIAGNOSIS = "diagnosis"
    PROBLEM = "problem"
    PROCEDURE = "procedure"
    INPATIENT_MEDICATION = "inpatient-medication"
    MEDICATION = "medication"  # reconciliation: new, changed, stopped, continued
    MEDICATION_CHECK = "medication-check"  # orders to confirm (duplicates, a missing drug)
    LAB = "lab"
    VITAL = "vital"
    REPORT = "report"
    ALLERGY = "allergy"
    NO_KNOWN_ALLERGY = "no-known-allergy"
    NOTE = "note"
    PENDING = "pending"
    FOLLOW_UP = "follow-up"
    GOAL = "goal"
    PLAN_ACTIVITY = "plan-activity"
    DISPOSITION = "disposition"
    ABSENT = "absent"


_PREFIX = {
    FactKind.STAY: "stay",
    FactKind.CARE_TEAM: "team",
    FactKind.REASON: "rsn",
    FactKind.DIAGNOSIS: "dx",
    FactKind.PROBLEM: "prob",
    FactKind.PROCEDURE: "proc",
    FactKind.INPATIENT_MEDICATION: "iprx",
    FactKind.MEDICATION: "med",
    FactKind.MEDICATION_CHECK: "mchk",
    FactKind.LAB: "lab",
    FactKind.VITAL: "vital",
    FactKind.REPORT: "rpt",
    FactKind.ALLERGY: "alg",
    FactKind.NO_KNOWN_ALLERGY: "nka",
    FactKind.NOTE: "note",
    FactKind.PENDING: "pend",
    FactKind.FOLLOW_UP: "fu",
    FactKind.GOAL: "goal",
    FactKind.PLAN_ACTIVITY: "plan",
    FactKind.DISPOSITION: "disp",
    FactKind.ABSENT: "none",
}

NO_KNOWN_ALLERGY_CODES = ("716186003", "409137002", "428607008", "429625007")
_INTERPRETATION_WORDS = {
    "H": "high",
    "HU": "very high",
    "HH": "critically high",
    "L": "low",
    "LU": "very low",
    "LL": "critically low",
    "A": "abnormal",
    "AA": "critically abnormal",
    "POS": "positive",
    "DET": "detected",
    "R": "resistant",
    ">": "above the measurable range",
    "<": "below the measurable range",
}
_NORMAL_INTERPRETATIONS = {"N", "NEG", "ND", "S"}
_BLOOD_PRESSURE = ("8480-6", "8462-4")  # systolic, diastolic


@dataclass(frozen=True)
class Value:
    """A value a fact states: a measurement, a dose, a date."""

    label: str
    value: str
    unit: str = ""
    when: str | None = None

    def __str__(self) -> str:
        return f"{self.value} {self.unit}".strip()


@dataclass(frozen=True)
class Fact:
    """One citable statement about the stay."""

    id: str
    kind: FactKind
    text: str
    sources: tuple[str, ...]
    names: tuple[str, ...] = ()
    values: tuple[Value, ...] = ()
    date: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()

    def attr(self, name: str, default: str = "") -> str:
        """One of the fact's attributes (e.g. ``change`` of a medication fact)."""
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    @property
    def name(self) -> str:
        """The fact's main name (what it is about)."""
        return self.names[0] if self.names else self.text


@dataclass(frozen=True)
class FactSet:
    """The facts of one stay, in a stable order, with lookup by id."""

    encounter: str
    facts: tuple[Fact, ...]

    def __post_init__(self) -> None:
        index = {f.id: f for f in self.facts}
        if len(index) != len(self.facts):
            raise ValueError("fact ids must be unique")
        object.__setattr__(self, "_index", index)

    def __iter__(self) -> Iterator[Fact]:
        return iter(self.facts)

    def __len__(self) -> int:
        return len(self.facts)

    def get(self, fact_id: str) -> Fact | None:
        """The fact with this id, or None."""
        return self._index.get(fact_id)  # type: ignore[attr-defined]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._index)  # type: ignore[attr-defined]

    def of_kind(self, *kinds: FactKind) -> tuple[Fact, ...]:
        """Facts of the given kinds, in order."""
        return tuple(f for f in self.facts if f.kind in kinds)

    def absent(self, about: str) -> Fact | None:
        """The fact saying nothing of ``about`` is recorded, if the record holds none."""
        for fact in self.facts:
            if fact.kind is FactKind.ABSENT and fact.attr("about") == about:
                return fact
        return None


def extract_facts(context: StayContext) -> FactSet:
    """All facts of a stay: an immutable, deterministic list."""
    builder = _FactBuilder(context)
    builder.stay()
    builder.care_team()
    builder.reasons()
    builder.conditions()
    builder.procedures()
    builder.inpatient_medications()
    builder.medications()
    builder.results()
    builder.reports()
    builder.allergies()
    builder.notes()
    builder.pending()
    builder.follow_ups()
    builder.goals()
    builder.plan_activities()
    builder.disposition()
    return FactSet(resource_key(context.encounter), tuple(builder.facts))


class _FactBuilder:
    def __init__(self, context: StayContext) -> None:
        self.ctx = context
        self.encounter = resource_key(context.encounter)
        self.patient = resource_key(context.patient)
        self.facts: list[Fact] = []
        self._ids: set[str] = set()

    def add(
        self,
        kind: FactKind,
        text: str,
        sources: Iterable[str],
        *,
        names: Iterable[str] = (),
        values: Iterable[Value] = (),
        date: str | None = None,
        **attrs: str,
    ) -> Fact:
        cited = tuple(dict.fromkeys(sources))
        digest = hashlib.sha1(
            "|".join((kind.value, *cited, attrs.get("about", ""))).encode(), usedforsecurity=False
        ).hexdigest()
        fact_id = f"{_PREFIX[kind]}-{digest[:8]}"
        suffix = 2
        while fact_id in self._ids:
            fact_id = f"{_PREFIX[kind]}-{digest[:8]}-{suffix}"
            suffix += 1
        self._ids.add(fact_id)
        fact = Fact(
            id=fact_id,
            kind=kind,
            text=text,
            sources=cited,
            names=tuple(dict.fromkeys(n for n in names if n)),
            values=tuple(values),
            date=date,
            attrs=tuple(sorted((k, v) for k, v in attrs.items() if v)),
        )
        self.facts.append(fact)
        return fact

    def nothing(self, about: str, text: str, source: str | None = None) -> None:
        self.add(FactKind.ABSENT, text, [source or self.encounter], about=about)

    # -- the stay --------------------------------------------------------------------------

    def stay(self) -> None:
        ctx = self.ctx
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
        self.add(
            FactKind.STAY,
            text,
            [self.encounter],
            names=[kind],
            values=values,
            date=ctx.admitted,
            encounter_class=classes,
        )

    def care_team(self) -> None:
        """Clinicians named on the Encounter (resolved Practitioners, or their display)."""
        roles: dict[str, list[str]] = {}
        sources: list[str] = [self.encounter]
        for participant in self.ctx.encounter.get("participant") or []:
            individual = (participant or {}).get("individual")
            resolved = self.ctx.resolved(individual)
            if resolved is not None and resolved.get("resourceType") == "Patient":
                continue
            name = self.ctx.name_of(individual)
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
            self.add(FactKind.CARE_TEAM, f"Care team: {'; '.join(members)}", sources)

    def reasons(self) -> None:
        ctx = self.ctx
        found = False
        for concept in ctx.encounter.get("reasonCode") or []:
            name = concept_name(concept)
            if name:
                self.add(
                    FactKind.REASON,
                    f"Reason for admission: {name}",
                    [self.encounter],
                    names=concept_names(concept),
                    code=concept_key(concept),
                    codes=_codes(concept),
                )
                found = True
        for condition in ctx.reasons:
            self.add(
                FactKind.REASON,
                f"Reason for admission: {concept_name(condition.get('code'), 'a condition')}",
                [self.encounter, resource_key(condition)],
                names=concept_names(condition.get("code")),
                codes=_codes(condition.get("code")),
            )
            found = True
        if not found:
            self.nothing("reason", "The record does not state a reason for admission.")

    def conditions(self) -> None:
        ctx = self.ctx
        primary = {
            self_key
            for item in ctx.encounter.get("diagnosis") or []
            if isinstance(item, Mapping) and item.get("rank") == 1
            for self_key in [str((item.get("condition") or {}).get("reference"))]
        }
        for group in _group_by_concept(ctx.diagnoses, "code"):
            first = group[0]
            name = concept_name(first.get("code"), "unnamed condition")
            resolved = _resolved_by(first, ctx.discharged)
            qualifiers = [_code_labels(first.get("code"))]
            if resolved:
                qualifiers.append("resolved during the stay")
            shown = "; ".join(q for q in qualifiers if q)
            text = f"{name} ({shown})" if shown else name
            self.add(
                FactKind.DIAGNOSIS,
                text,
                [resource_key(c) for c in group],
                names=concept_names(first.get("code")),
                date=_onset(first),
                status="resolved" if resolved else "active",
                primary="yes" if any(resource_key(c) in primary for c in group) else "",
                codes=_codes(first.get("code")),
            )
        if not ctx.diagnoses:
            self.nothing("diagnoses", "No diagnoses are recorded for this stay.")
        for group in _group_by_concept(ctx.problems, "code"):
            first = group[0]
            name = concept_name(first.get("code"), "unnamed condition")
            self.add(
                FactKind.PROBLEM,
                f"{name} (active problem before and during the stay)",
                [resource_key(c) for c in group],
                names=concept_names(first.get("code")),
                date=_onset(first),
                codes=_codes(first.get("code")),
            )

    def procedures(self) -> None:
        groups = _group_by_concept(self.ctx.procedures, "code")
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
            self.add(
                FactKind.PROCEDURE,
                text,
                [resource_key(p) for p in group],
                names=concept_names(first.get("code")),
                values=[Value("count", str(len(group)))],
                date=known[0] if known else None,
            )
        if not groups:
            self.nothing("procedures", "No procedures are recorded for this stay.")

    def inpatient_medications(self) -> None:
        ctx = self.ctx
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
            doses = [_lower_first(dosage_text(r)) for r in (orders or given)]
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
            self.add(
                FactKind.INPATIENT_MEDICATION,
                text,
                [resource_key(r) for r in group],
                names=_medication_names(group, ctx.referenced),
                values=[Value("doses given", str(len(given)))] if given else [],
            )
        if not groups:
            self.nothing(
                "inpatient-medications", "No medications given during the stay are recorded."
            )

    def medications(self) -> None:
        changes = tuple(
            replace(
                c,
                name=readable_drug_name(c.name),
                variants=tuple(readable_drug_name(v) for v in c.variants),
            )
            for c in reconcile(self.ctx)
        )
        for change in changes:
            if change.change == "new":
                text = f"New at discharge: {change.name}"
                if change.after_dose:
                    text += f", {_lower_first(change.after_dose)}"
            elif change.change == "changed":
                before_name = readable_drug_name(
                    medication_name(change.before[-1], self.ctx.referenced)
                )
                text = (
                    f"Changed at discharge: {change.name}, "
                    f"{_lower_first(change.after_dose) or 'dose not stated'}"
                    f" (before admission: {before_name}, "
                    f"{_lower_first(change.before_dose) or 'dose not stated'})"
                )
            elif change.change == "stopped":
                text = f"Stopped: {change.name} (taken before admission)"
            elif change.after:
                text = f"Continued unchanged: {change.name}"
                if change.after_dose:
                    text += f", {_lower_first(change.after_dose)}"
            else:
                text = f"Continued from before admission: {change.name}"
                if change.before_dose:
                    text += f", {_lower_first(change.before_dose)}"
                text += " (no change recorded)"
            if change.reason:
                text += f"; reason recorded: {change.reason}"
            if change.variants:
                text += f" (orders: {'; '.join(change.variants)})"
            values = [Value("before", change.before_dose)] if change.before_dose else []
            if change.after_dose:
                values.append(Value("after", change.after_dose))
            self.add(
                FactKind.MEDICATION,
                text,
                change.sources,
                names=change.names,
                values=values,
                change=change.change,
                reason=change.reason,
            )
        if not any(c.change != "stopped" for c in changes):
            self.nothing("discharge-medications", "No discharge medications are recorded.")
        self._medication_checks(changes)

    def _medication_checks(self, changes: Sequence[MedicationChange]) -> None:
        """Orders a clinician must confirm: one drug at two doses, two drugs of one class, a
        drug named by a Medication the record does not hold."""
        ctx = self.ctx
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
            self.add(FactKind.MEDICATION_CHECK, text, list(orders), about=f"missing:{missing}")
        for change in changes:
            if change.variants and change.change != "stopped":
                side = "discharge" if change.after else "home"
                self.add(
                    FactKind.MEDICATION_CHECK,
                    f"{_count_word(len(change.variants))} active {side} orders for "
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
            self.add(
                FactKind.MEDICATION_CHECK,
                f"{_count_word(len(group))} {drug} at discharge ({listed(names)}): "
                f"confirm {both} intended",
                [s for c in group for s in c.sources],
                names=[n for c in group for n in c.names],
                about=f"class:{drug}",
            )

    def results(self) -> None:
        ctx = self.ctx
        groups: dict[str, list[Resource]] = {}
        for obs in ctx.observations:
            groups.setdefault(concept_key(obs.get("code")), []).append(obs)
        ordered = sorted(groups, key=lambda k: concept_name(groups[k][0].get("code")).lower())
        names = [self._short_name(groups[k][0]) for k in ordered]
        for key, name in zip(ordered, names, strict=True):
            if names.count(name) > 1:
                # Two tests of one name (serum and point-of-care glucose): say which is which.
                name = (
                    f"{name} ({_specimen(groups[key][0])})" if _specimen(groups[key][0]) else name
                )
            self._result_fact(groups[key], name)
        if not any(f.kind is FactKind.LAB for f in self.facts):
            self.nothing("labs", "No laboratory results are recorded for this stay.")

    @staticmethod
    def _short_name(obs: Resource) -> str:
        code = obs.get("code")
        return test_name(sorted(concept_codes(code)), concept_names(code)) or "unnamed result"

    def _result_fact(self, group: Sequence[Resource], name: str) -> None:
        """One fact per test: its course in words (first, extreme, last, with dates)."""
        first = group[0]
        codes = sorted(concept_codes(first.get("code")))
        long_names = concept_names(first.get("code"))
        vital = "vital-signs" in concept_codes(first.get("category") or [])
        readings = [r for r in (_reading(o) for o in group) if r is not None]
        if not readings:
            return
        flags = list(dict.fromkeys(r.flag for r in readings if r.flag))
        numeric = [r for r in readings if r.number is not None]
        unit = numeric[0].unit if numeric else ""
        low, high = _reference_range(group)
        threshold = (
            meaningful_change(codes, name, unit, baseline=numeric[0].number) if numeric else None
        )
        head, tail = readings[0], readings[-1]
        values = [Value("result", r.value, unit_text(r.unit), r.when) for r in readings]
        lead = name[:1].upper() + name[1:]
        if len(numeric) >= 2:
            points = [Point(r.number, r.value, format_date(r.when)) for r in numeric]  # type: ignore[arg-type]
            course = describe(points, unit_text(unit), threshold=threshold, low=low, high=high)
            text = (
                f"{lead} {course.phrase} ({len(readings)} results, "
                f"{date_span(head.when, tail.when)})"
            )
            high_r = max(numeric, key=lambda r: r.number or 0)
            low_r = min(numeric, key=lambda r: r.number or 0)
            values += [
                Value("highest", high_r.value, unit_text(high_r.unit), high_r.when),
                Value("lowest", low_r.value, unit_text(low_r.unit), low_r.when),
            ]
            direction, state, phrase = course.direction, course.state, course.phrase
        else:
            text = f"{lead} {tail.display} on {format_date(tail.when)}"
            if len(readings) > 1:
                text = (
                    f"{lead} {head.display} on {format_date(head.when)}, "
                    f"{tail.display} on {format_date(tail.when)}"
                )
            direction, state, phrase = "", "", ""
        values += [Value("first", head.value, unit_text(head.unit), head.when)]
        values += [Value("last", tail.value, unit_text(tail.unit), tail.when)]
        self.add(
            FactKind.VITAL if vital else FactKind.LAB,
            text,
            [resource_key(o) for o in group],
            names=[name, *long_names],
            values=values,
            date=head.when,
            abnormal=", ".join(flags),
            first_flag=head.flag,
            first=head.display,
            last_flag=tail.flag,
            last=tail.display,
            last_date=tail.when or "",
            marked="yes" if _marked(numeric, flags, low, high, threshold) else "",
            threshold=format_number(threshold) if threshold is not None else "",
            low=format_number(low) if low is not None else "",
            high=format_number(high) if high is not None else "",
            direction=direction,
            state=state,
            course=phrase,
            codes=",".join(codes),
        )

    def reports(self) -> None:
        for report in self.ctx.reports:
            if report.get("status") in {"registered", "partial", "preliminary"}:
                continue  # reported as pending
            conclusion = str(report.get("conclusion") or "").strip()
            coded = "; ".join(concept_name(c) for c in report.get("conclusionCode") or [])
            finding = conclusion or coded
            if not finding:
                continue  # a lab panel: its results are facts of their own
            name = concept_name(report.get("code"), "Report")
            when, _ = period_bounds(report, "effectiveDateTime", "effectivePeriod")
            when = when or report.get("issued")
            self.add(
                FactKind.REPORT,
                f"{name} on {format_date(when)}: {_one_line(finding)}",
                [resource_key(report)],
                names=concept_names(report.get("code")),
                date=when,
            )

    def allergies(self) -> None:
        ctx = self.ctx
        real = [a for a in ctx.allergies if not _no_known_allergy(a)]
        for allergy in real:
            name = allergen(concept_name(allergy.get("code"), "unnamed substance"))
            details = []
            for reaction in allergy.get("reaction") or []:
                shown = ", ".join(
                    concept_name(m).lower() for m in (reaction or {}).get("manifestation") or []
                )
                if shown:
                    severity = (reaction or {}).get("severity")
                    details.append(f"{shown} ({severity})" if severity else shown)
            text = f"Allergy to {name}"
            if details:
                text += f": {'; '.join(details)}"
            if allergy.get("criticality"):
                text += f"; criticality {allergy['criticality']}"
            self.add(
                FactKind.ALLERGY,
                text,
                [resource_key(allergy)],
                names=[name, *concept_names(allergy.get("code"))],
                criticality=str(allergy.get("criticality") or ""),
            )
        if real:
            return
        none_known = [a for a in ctx.allergies if _no_known_allergy(a)]
        if none_known:
            self.add(
                FactKind.NO_KNOWN_ALLERGY,
                "No known allergies",
                [resource_key(a) for a in none_known],
                names=[concept_name(none_known[0].get("code"))],
            )
        else:
            self.nothing("allergies", "No allergies are recorded.", self.patient)

    def notes(self) -> None:
        for note in self.ctx.notes:
            self.add(
                FactKind.NOTE,
                f"{note.title} written on {format_date(note.date)}",
                [note.source],
                names=[note.title],
                date=note.date,
                excerpt=note.text[:4000],
            )

    def pending(self) -> None:
        """Results not final at discharge and orders without a result, each said once."""
        grouped: dict[str, tuple[str, str | None, list[str]]] = {}
        for item in self.ctx.pending:
            name = humanize(concept_name(item.get("code"), "A result"))
            if item["resourceType"] == "ServiceRequest":
                when = item.get("authoredOn")
                text = f"{name}: ordered on {format_date(when)}, no result recorded by discharge"
            else:
                when, _ = period_bounds(item, "effectiveDateTime", "effectivePeriod")
                reading = _reading(item) if item["resourceType"] == "Observation" else None
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
            self.add(FactKind.PENDING, text, sources, names=[name], date=when)
        if not self.ctx.pending:
            self.nothing("pending", "No results were pending at discharge.")

    def follow_ups(self) -> None:
        ctx = self.ctx
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
                    for f in self.facts
                    if f.kind is FactKind.FOLLOW_UP and f.text.lower() == text.lower()
                ),
                None,
            )
            if said is not None:  # the same appointment or referral recorded twice
                index = self.facts.index(said)
                self.facts[index] = replace(said, sources=(*said.sources, resource_key(item)))
                continue
            self.add(FactKind.FOLLOW_UP, text, [resource_key(item)], names=names, date=when)
        if not ctx.follow_ups:
            self.nothing("follow-up", "No follow-up appointments or referrals are recorded.")

    def goals(self) -> None:
        for goal in self.ctx.goals:
            name = readable_text(concept_name(goal.get("description"), "unnamed goal"))
            text = f"Goal: {name}"
            targets = []
            for target in goal.get("target") or []:
                shown = _target_text(target or {})
                if shown:
                    targets.append(shown)
            if targets:
                text += f" (target {'; '.join(targets)})"
            said = next((f for f in self.facts if f.kind is FactKind.GOAL and f.text == text), None)
            if said is not None:  # one goal recorded in two plans
                index = self.facts.index(said)
                self.facts[index] = replace(said, sources=(*said.sources, resource_key(goal)))
                continue
            names = [name, *concept_names(goal.get("description"))]
            self.add(FactKind.GOAL, text, [resource_key(goal)], names=names)
        if not self.ctx.goals:
            self.nothing("goals", "No care goals are recorded.", self.patient)

    def plan_activities(self) -> None:
        seen: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for plan in self.ctx.care_plans:
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
            self.add(
                FactKind.PLAN_ACTIVITY,
                f"{names[key]} (in a care plan recorded during the stay)",
                seen[key],
                names=[names[key]],
            )

    def disposition(self) -> None:
        hospitalization = self.ctx.encounter.get("hospitalization") or {}
        disposition = hospitalization.get("dischargeDisposition")
        if disposition and concept_name(disposition):
            name = concept_name(disposition)
            self.add(
                FactKind.DISPOSITION,
                f"Discharge disposition: {name}",
                [self.encounter],
                names=concept_names(disposition),
            )
        else:
            self.nothing("disposition", "The record does not state the discharge disposition.")


@dataclass(frozen=True)
class _Reading:
    value: str
    unit: str
    number: float | None
    flag: str
    when: str | None

    @property
    def display(self) -> str:
        shown = quantity_text(self.value, self.unit)
        return f"{shown} ({self.flag})" if self.flag else shown


def _reading(obs: Resource) -> _Reading | None:
    when, _ = period_bounds(obs, "effectiveDateTime", "effectivePeriod", "effectiveInstant")
    when = when or obs.get("issued")
    flag = _flag(obs)
    quantity = obs.get("valueQuantity")
    if isinstance(quantity, Mapping) and quantity.get("value") is not None:
        parts = quantity_parts(quantity)
        assert parts is not None
        return _Reading(parts[0], parts[1], float(quantity["value"]), flag, when)
    components = [c for c in obs.get("component") or [] if isinstance(c, Mapping)]
    if components:
        by_code = {next(iter(concept_codes(c.get("code"))), ""): c for c in components}
        systolic, diastolic = (by_code.get(code) for code in _BLOOD_PRESSURE)
        if systolic and diastolic:
            high = (systolic.get("valueQuantity") or {}).get("value")
            low = (diastolic.get("valueQuantity") or {}).get("value")
            if high is not None and low is not None:
                unit = (systolic.get("valueQuantity") or {}).get("unit") or "mm[Hg]"
                value = f"{format_number(high)}/{format_number(low)}"
                return _Reading(value, str(unit), float(high), flag, when)
        shown = "; ".join(
            f"{test_name(concept_codes(c.get('code')), concept_names(c.get('code')))} "
            f"{quantity_text(*(quantity_parts(c.get('valueQuantity')) or ('', '')))}".strip()
            for c in components
            if quantity_parts(c.get("valueQuantity"))
        )
        if shown:
            return _Reading(shown, "", None, flag, when)
    for field in ("valueCodeableConcept",):
        if obs.get(field):
            return _Reading(in_sentence(humanize(concept_name(obs[field]))), "", None, flag, when)
    for field in ("valueString", "valueBoolean", "valueInteger"):
        if obs.get(field) is not None:
            return _Reading(_one_line(str(obs[field])), "", None, flag, when)
    return None


def _flag(obs: Resource) -> str:
    for concept in obs.get("interpretation") or []:
        for code in sorted(concept_codes(concept)):
            if code in _INTERPRETATION_WORDS:
                return _INTERPRETATION_WORDS[code]
            if code in _NORMAL_INTERPRETATIONS:
                return ""
    quantity = obs.get("valueQuantity") or {}
    value = quantity.get("value") if isinstance(quantity, Mapping) else None
    if value is None:
        return ""
    for reference in obs.get("referenceRange") or []:
        low = ((reference or {}).get("low") or {}).get("value")
        high = ((reference or {}).get("high") or {}).get("value")
        if high is not None and value > high:
            return "high"
        if low is not None and value < low:
            return "low"
    return ""


def _specimen(obs: Resource) -> str:
    """The specimen and method words of a LOINC long name: '… in Capillary blood by Glucometer'."""
    for name in concept_names(obs.get("code")):
        if " in " in name:
            tail = name.split(" in ", 1)[1]
            return " ".join(re.sub(r"[\[\]{}]", "", tail).split()).lower()
    return ""


def _reference_range(observations: Iterable[Resource]) -> tuple[float | None, float | None]:
    """The first reference range the series gives (low, high), either end may be missing."""
    for obs in observations:
        for reference in obs.get("referenceRange") or []:
            low = ((reference or {}).get("low") or {}).get("value")
            high = ((reference or {}).get("high") or {}).get("value")
            low = float(low) if isinstance(low, int | float) else None
            high = float(high) if isinstance(high, int | float) else None
            if low is not None or high is not None:
                return low, high
    return None, None


def _marked(
    numeric: Sequence[_Reading],
    flags: Sequence[str],
    low: float | None,
    high: float | None,
    threshold: float | None,
) -> bool:
    """Markedly abnormal: flagged critical, flagged with no range to judge by, or beyond the
    range by more than twice the change that matters (a fifth of the limit where no such figure
    is known). Mildly abnormal values that no problem claims are summarised in one line."""
    if any(f.startswith(("critically", "very")) for f in flags):
        return True
    if flags and low is None and high is None:
        return True  # flagged, with no range to measure by: show the values
    for reading in numeric:
        value = reading.number or 0.0
        for limit, beyond in ((high, value - (high or 0)), (low, (low or 0) - value)):
            if limit is None or beyond <= 0:
                continue
            margin = 2 * threshold if threshold else abs(limit) / 5
            if beyond > margin:
                return True
    return False


def _codes(concept: Any) -> str:
    return ",".join(sorted(concept_codes(concept))) if isinstance(concept, Mapping) else ""


def _group_by_concept(resources: Iterable[Resource], field: str) -> list[list[Resource]]:
    """Resources of one concept together; one code with different names stays apart.

    Records reuse a generic code for distinct things (two nebulised drugs under one SNOMED
    procedure code, told apart only by their text), so the name is part of the key.
    """
    groups: dict[tuple[str, str], list[Resource]] = {}
    for resource in resources:
        concept = resource.get(field)
        key = (concept_key(concept), concept_name(concept).lower())
        groups.setdefault(key, []).append(resource)
    return sorted(
        groups.values(), key=lambda g: (concept_name(g[0].get(field)).lower(), resource_key(g[0]))
    )


def _code_labels(concept: Any) -> str:
    labels = {
        "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
        "http://hl7.org/fhir/sid/icd-10": "ICD-10",
        SNOMED: "SNOMED CT",
    }
    found = []
    for coding in (concept or {}).get("coding") or []:
        label = labels.get(str(coding.get("system")))
        if label and coding.get("code"):
            found.append(f"{label} {coding['code']}")
    return ", ".join(found)


def _onset(condition: Resource) -> str | None:
    onset, _ = period_bounds(condition, "onsetDateTime", "onsetPeriod")
    return onset or condition.get("recordedDate")


def _resolved_by(condition: Resource, discharged: str | None) -> bool:
    abated, _ = period_bounds(condition, "abatementDateTime", "abatementPeriod")
    moment, end = parse_time(abated), parse_time(discharged)
    return moment is not None and end is not None and moment <= end


def allergen(name: str) -> str:
    """The substance of an allergy name: 'Allergy to penicillin' -> 'penicillin'."""
    lowered = name.lower()
    for prefix in ("allergy to ", "allergic to ", "allergy: "):
        if lowered.startswith(prefix):
            return name[len(prefix) :]
    return name


def _is_patient(reference: Any, resolved: Resource | None) -> bool:
    if resolved is not None:
        return resolved.get("resourceType") == "Patient"
    target = str((reference or {}).get("reference", "")) if isinstance(reference, Mapping) else ""
    return target.startswith("Patient/") or "/Patient/" in target or not target


def _no_known_allergy(allergy: Resource) -> bool:
    return has_code(allergy.get("code"), None, *NO_KNOWN_ALLERGY_CODES)


def _medication_names(group: Iterable[Resource], referenced: Mapping[str, Resource]) -> list[str]:
    return list(
        dict.fromkeys(n for r in group for n in concept_names(medication_concept(r, referenced)))
    )


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


def _lower_first(text: str) -> str:
    """'Take 1 tablet…' -> 'take 1 tablet…' (a dosage read after a comma); 'IV …' kept."""
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and first[1:].islower():
        return text[:1].lower() + text[1:]
    return text


def _count_word(count: int) -> str:
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    return words[count].capitalize() if count < len(words) else str(count)


def listed(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def date_span(first: str | None, last: str | None) -> str:
    """Two dates as a short span: '2–6 Mar 2026', '28 Feb–3 Mar 2026', or one date."""
    a, b = format_date(first), format_date(last)
    if a == b:
        return a
    head, tail = a.split(" "), b.split(" ")
    if len(head) == 3 and len(tail) == 3:
        if head[1:] == tail[1:]:
            return f"{head[0]}–{b}"
        if head[2] == tail[2]:
            return f"{head[0]} {head[1]}–{b}"
    return f"{a} to {b}"


def _one_line(text: str) -> str:
    return clean_name(" ".join(text.split()))
