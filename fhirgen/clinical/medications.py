"""Medication reconciliation: what changed between admission and discharge.

Home medications (before admission) are compared with prescriptions for after discharge, drug by
drug. A drug is matched by its ingredient words (the name before the first strength), so
"Metoprolol succinate 25 MG" at home and "metoprolol succinate 50 MG" at discharge are one drug
whose dose changed. Each drug gets one outcome:

- ``new``: prescribed at discharge, not taken before admission;
- ``changed``: taken before and prescribed at discharge with a different strength, dose or
  frequency;
- ``continued``: taken before and prescribed unchanged, or taken before with nothing recorded
  that stops it;
- ``stopped``: taken before, recorded as stopped or completed during the stay, and not
  prescribed at discharge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhirgen.clinical.stay import StayContext
from fhirgen.fhir.record import Resource, is_not_found, resource_key
from fhirgen.fhir.values import concept_name, concept_names, format_quantity, parse_time

_FORM_WORDS = frozenset(
    """oral tablet tablets capsule capsules solution suspension injection injectable extended
    release delayed er xr sr dr ec hcl hydrochloride chewable film coated
    disintegrating topical cream ointment patch inhaler inhalation powder prefilled syringe
    pen auto-injector metered dose actuat actuation spray nasal ophthalmic drops pack mg ml
    mcg g unt unit units xl la cr odt ir mucosal sublingual transdermal rectal vaginal otic
    buccal""".split()
)
_LEADING_AMOUNT = re.compile(r"^(\d+(\.\d+)?\s*(ml|mg|g|mcg|unt|hr|actuat)?\s+)+", re.IGNORECASE)
_STRENGTH = re.compile(
    r"(\d+(?:\.\d+)?)\s*(mg|mcg|g|ml|unt|units?|%|meq|mmol)\b(?:\s*/\s*(ml|hr|actuat|\d+\s*ml))?",
    re.IGNORECASE,
)
_TIMING_CODES = {
    "QD": 1.0,
    "DAILY": 1.0,
    "QOD": 0.5,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "AM": 1.0,
    "PM": 1.0,
    "QHS": 1.0,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "Q12H": 2.0,
    "WK": 1 / 7,
    "QWK": 1 / 7,
}
_PER_DAY = {
    "s": 86400.0,
    "min": 1440.0,
    "h": 24.0,
    "d": 1.0,
    "wk": 1 / 7,
    "mo": 1 / 30,
    "a": 1 / 365,
}


@dataclass(frozen=True)
class MedicationChange:
    """One drug's reconciliation outcome, with the resources it rests on."""

    change: str  # new | changed | continued | stopped
    name: str  # the name as prescribed at discharge, else as taken before
    names: tuple[str, ...]  # every name the record uses for it
    before: tuple[Resource, ...]
    after: tuple[Resource, ...]
    before_dose: str
    after_dose: str
    reason: str  # a recorded reason for stopping or changing, if any
    # Every distinct order of the drug on the side that counts (discharge, else home) as
    # "name, dose", when there is more than one: all are stated and flagged, none dropped.
    variants: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(resource_key(r) for r in (*self.before, *self.after))


def medication_concept(resource: Resource, referenced: Mapping[str, Resource]) -> Any:
    """The CodeableConcept naming a medication resource's drug (inline or via Medication)."""
    concept = resource.get("medicationCodeableConcept")
    if concept:
        return concept
    reference = resource.get("medicationReference")
    if isinstance(reference, Mapping):
        medication = referenced.get(str(reference.get("reference")))
        named = reference.get("display")
        # A Medication the record lacks (a stand-in): the order's own display, where it has one,
        # names the drug (a medication check says the Medication is missing).
        stand_in_named = bool(named) and is_not_found(medication)
        if medication is not None and medication.get("code") and not stand_in_named:
            return medication["code"]
        if named:
            return {"text": named}
    return {}


def missing_medication(resource: Resource, referenced: Mapping[str, Resource]) -> str | None:
    """``Medication/<id>`` when the resource names its drug by a Medication the record does not
    hold (the readers serve a ``not_found`` stand-in for it), else None."""
    reference = resource.get("medicationReference")
    if not isinstance(reference, Mapping):
        return None
    medication = referenced.get(str(reference.get("reference")))
    return resource_key(medication) if medication is not None and is_not_found(medication) else None


def medication_name(resource: Resource, referenced: Mapping[str, Resource]) -> str:
    """The drug's name as the record writes it."""
    return concept_name(medication_concept(resource, referenced), "unnamed medication")


_UNIT_CASE = {
    "mg": "mg",
    "ml": "mL",
    "mcg": "mcg",
    "g": "g",
    "unt": "units",
    "hr": "hr",
    "meq": "mEq",
}
_DRUG_WORD = re.compile(r"\b([A-Za-z]+)\b")


def readable_drug_name(name: str) -> str:
    """An RxNorm-style display as a prescriber writes it: 'Digoxin 0.125 MG Oral Tablet' ->
    'Digoxin 0.125 mg oral tablet'. Only letter case changes (units in lower case, Title Case
    form words lower-cased; tall-man and brand capitals kept), so the name still matches."""

    def word(match: re.Match[str]) -> str:
        token = match.group(1)
        lowered = token.lower()
        if lowered in _UNIT_CASE and token.isupper():
            return _UNIT_CASE[lowered] if lowered != "unt" else token.lower()
        title = token[:1].isupper() and token[1:].islower()
        if lowered in _FORM_WORDS and (title or (token.isupper() and len(token) > 3)):
            return lowered  # 'Oral Tablet' -> 'oral tablet'; 'ER', 'XR', 'HCl' kept
        return token

    return _DRUG_WORD.sub(word, name)


def ingredient_key(name: str) -> str:
    """Ingredient words of a drug name: '10 ML Furosemide 10 MG/ML Injection' -> 'furosemide'.

    A combination product keeps every ingredient ('Acetaminophen 300 MG / HYDROcodone
    Bitartrate 5 MG' -> 'acetaminophen / hydrocodone bitartrate'), so it is never merged with
    one of its parts given alone.
    """
    parts = [_ingredient_words(part) for part in re.split(r"\s+/\s+", name.strip())]
    return " / ".join(p for p in parts if p) or name.strip().lower()


def _ingredient_words(name: str) -> str:
    text = _LEADING_AMOUNT.sub("", name.strip()).lower()
    words: list[str] = []
    for word in re.split(r"[\s/,\-\[\]()]+", text):
        if not word:
            continue
        if any(ch.isdigit() for ch in word):
            break
        if word not in _FORM_WORDS:
            words.append(word)
    return " ".join(words)


def dosage_text(resource: Resource) -> str:
    """How the drug is taken: the order's own text, else built from its structured dosage."""
    dosages = resource.get("dosageInstruction") or resource.get("dosage") or []
    if isinstance(dosages, Mapping):  # MedicationAdministration.dosage is one object
        dosages = [dosages]
    parts: list[str] = []
    for dosage in dosages:
        if not isinstance(dosage, Mapping):
            continue
        if dosage.get("text"):
            parts.append(str(dosage["text"]).strip().rstrip("."))
            continue
        dose = _dose_quantity(dosage)
        route = concept_name(dosage.get("route")).lower()
        frequency = _frequency_text(dosage.get("timing"))
        as_needed = " as needed" if dosage.get("asNeededBoolean") else ""
        built = " ".join(p for p in (format_quantity(dose), route, frequency) if p) + as_needed
        if built.strip():
            parts.append(built.strip())
    return "; ".join(parts)


def reconcile(context: StayContext) -> tuple[MedicationChange, ...]:
    """Compare home medications with discharge prescriptions, one outcome per drug."""
    referenced = context.referenced
    home = _group(context.meds_before, referenced)
    discharge = _group(context.meds_discharge, referenced)
    changes: list[MedicationChange] = []
    for key in sorted(set(home) | set(discharge)):
        before = tuple(home.get(key, ()))
        after = tuple(discharge.get(key, ()))
        latest_before = before[-1] if before else None
        latest_after = after[-1] if after else None
        before_dose = _describe(latest_before, referenced)
        after_dose = _describe(latest_after, referenced)
        if before and after:
            same = _signature(latest_before, referenced) == _signature(latest_after, referenced)
            change = "continued" if same else "changed"
        elif after:
            change = "new"
        else:
            change = "stopped" if _stopped_during(latest_before, context) else "continued"
        subject = latest_after or latest_before
        assert subject is not None
        name = medication_name(subject, referenced)
        names = tuple(
            dict.fromkeys(
                [name]
                + [
                    n
                    for r in (*after, *before)
                    for n in concept_names(medication_concept(r, referenced))
                ]
            )
        )
        changes.append(
            MedicationChange(
                change=change,
                name=name,
                names=names,
                before=before,
                after=after,
                before_dose=before_dose,
                after_dose=after_dose,
                reason=_reason(latest_before if change == "stopped" else latest_after),
                variants=_variants(after or before, referenced),
            )
        )
    return tuple(changes)


def _variants(orders: Sequence[Resource], referenced: Mapping[str, Resource]) -> tuple[str, ...]:
    """'name, dose' of each distinct order, when a drug has more than one distinct order."""
    distinct: dict[tuple[Any, ...], str] = {}
    for order in orders:
        if order.get("status") in {"stopped", "completed", "cancelled", "entered-in-error"}:
            continue
        text = ", ".join(p for p in (medication_name(order, referenced), dosage_text(order)) if p)
        distinct.setdefault(_signature(order, referenced), text)
    shown = tuple(dict.fromkeys(distinct.values()))
    return shown if len(shown) > 1 else ()


def _group(
    resources: Iterable[Resource], referenced: Mapping[str, Resource]
) -> dict[str, list[Resource]]:
    groups: dict[str, list[Resource]] = {}
    for resource in sorted(resources, key=_when):
        groups.setdefault(ingredient_key(medication_name(resource, referenced)), []).append(
            resource
        )
    return groups


def _when(resource: Resource) -> tuple[str, str]:
    period = resource.get("effectivePeriod") or {}
    when = (
        resource.get("authoredOn")
        or resource.get("effectiveDateTime")
        or period.get("start")
        or resource.get("dateAsserted")
        or ""
    )
    return (str(when), resource_key(resource))


def _describe(resource: Resource | None, referenced: Mapping[str, Resource]) -> str:
    if resource is None:
        return ""
    return dosage_text(resource)


def _signature(resource: Resource | None, referenced: Mapping[str, Resource]) -> tuple[Any, ...]:
    """What must match for a drug to count as unchanged: strength, dose and frequency."""
    if resource is None:
        return ()
    strengths = tuple(
        (float(v), u.lower(), (per or "").lower().replace(" ", ""))
        for v, u, per in _STRENGTH.findall(medication_name(resource, referenced))
    )
    dosages = resource.get("dosageInstruction") or resource.get("dosage") or []
    first = dosages[0] if isinstance(dosages, Sequence) and dosages else {}
    dose = _dose_quantity(first) if isinstance(first, Mapping) else None
    dose_key = (
        (float(dose["value"]), str(dose.get("unit") or dose.get("code") or "").lower())
        if (dose and dose.get("value") is not None)
        else None
    )
    per_day = _per_day(first.get("timing")) if isinstance(first, Mapping) else None
    text = str(first.get("text") or "").strip().lower() if isinstance(first, Mapping) else ""
    if dose_key is None and per_day is None:
        return (strengths, text)
    return (strengths, dose_key, per_day)


def _dose_quantity(dosage: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if isinstance(dosage.get("dose"), Mapping):  # MedicationAdministration.dosage.dose
        return dosage["dose"]
    for item in dosage.get("doseAndRate") or []:
        if isinstance(item, Mapping) and isinstance(item.get("doseQuantity"), Mapping):
            return item["doseQuantity"]
    return None


def _per_day(timing: Any) -> float | None:
    if not isinstance(timing, Mapping):
        return None
    repeat = timing.get("repeat") or {}
    frequency, period, unit = (
        repeat.get("frequency"),
        repeat.get("period"),
        repeat.get("periodUnit"),
    )
    if frequency and period and unit in _PER_DAY:
        return round(float(frequency) / float(period) * _PER_DAY[unit], 4)
    code = timing.get("code") or {}
    for coding in code.get("coding") or []:
        if str(coding.get("code", "")).upper() in _TIMING_CODES:
            return _TIMING_CODES[str(coding["code"]).upper()]
    return None


def _frequency_text(timing: Any) -> str:
    if not isinstance(timing, Mapping):
        return ""
    code = timing.get("code")
    if isinstance(code, Mapping) and concept_name(code):
        return concept_name(code).lower()
    repeat = timing.get("repeat") or {}
    frequency, period, unit = (
        repeat.get("frequency"),
        repeat.get("period"),
        repeat.get("periodUnit"),
    )
    named = {1: "once", 2: "twice", 3: "three times", 4: "four times"}
    if frequency == 1 and period and unit == "h":
        return f"every {float(period):g} hours"
    if frequency in named and period == 1 and unit in {"d", "wk"}:
        return f"{named[frequency]} {'daily' if unit == 'd' else 'weekly'}"
    per_day = _per_day(timing)
    if per_day is None:
        return ""
    if per_day >= 1:
        return f"{per_day:g} times daily"
    return f"every {1 / per_day:g} days"


def _stopped_during(resource: Resource | None, context: StayContext) -> bool:
    """A home medication recorded as stopped or completed before the patient went home."""
    if resource is None or resource.get("status") not in {"stopped", "completed", "on-hold"}:
        return False
    period = resource.get("effectivePeriod") or {}
    validity = (resource.get("dispenseRequest") or {}).get("validityPeriod") or {}
    ended = parse_time(period.get("end") or validity.get("end"))
    discharged = parse_time(context.discharged)
    return ended is None or discharged is None or ended <= discharged


def _reason(resource: Resource | None) -> str:
    if resource is None:
        return ""
    reasons = resource.get("statusReason")
    if isinstance(reasons, list):  # MedicationStatement.statusReason is a list
        reasons = reasons[0] if reasons else None
    text = concept_name(reasons) if isinstance(reasons, Mapping) else ""
    return text
